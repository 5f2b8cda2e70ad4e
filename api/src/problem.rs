//! Errors as RFC 9457 problem documents (`application/problem+json`) with a stable `code`
//! and the request id. Every endpoint declares the statuses it can return with
//! `problems!`, so the OpenAPI document lists them; anything poem itself rejects (bad JSON,
//! missing credentials, unknown routes, oversized bodies) is turned into the same shape by
//! `catch_all`. `Request-Id` is set on every response by the request pipeline (`pipeline`).

use poem::http::StatusCode;
use poem::Response;
use poem_openapi::Object;

use crate::request::{request_id, RATE};

/// One invalid field.
#[derive(Debug, Clone, Object)]
pub struct ProblemField {
    pub field: String,
    pub message: String,
}

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Object)]
pub struct Problem {
    /// A URI naming the problem type.
    #[oai(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable machine-readable code, e.g. `no_device_reachable`.
    pub code: String,
    pub request_id: String,
    pub errors: Vec<ProblemField>,
}

/// When to retry a request refused for want of PostgreSQL or Redis: a restart or a
/// failover is usually over within seconds.
const DEPENDENCY_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

impl Problem {
    pub fn new(status: u16, code: &str, detail: impl Into<String>) -> Self {
        let title = StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Error")
            .to_owned();
        Problem {
            kind: format!("https://pushdial.dev/problems/{code}"),
            title,
            status,
            detail: detail.into(),
            code: code.to_owned(),
            request_id: request_id(),
            errors: vec![],
        }
    }

    pub fn from_core(e: &pushdial_core::Error) -> Self {
        let status = e.status();
        if let pushdial_core::Error::RateLimited { retry_after, .. } = e {
            // The refusal speaks for itself: Retry-After, and no other policy's remaining.
            let _ = RATE.try_with(|r| {
                let mut r = r.borrow_mut();
                r.retry_after = Some(*retry_after);
                r.policy = None;
            });
        }
        if let Some((dependency, cause)) = e.dependency_failure() {
            // Not our fault, and likely gone in a moment (a restart, a failover): say when
            // to come back, and count it apart from our own failures.
            tracing::warn!(error = ?e, dependency, cause, "request failed: dependency unavailable");
            pushdial_core::metrics::METRICS
                .dependency_unavailable
                .with_label_values(&[dependency, cause])
                .inc();
        } else if e.is_internal() {
            tracing::error!(error = ?e, "request failed");
        }
        if status == 503 {
            // Every 503 carries Retry-After; a fail-closed limit may have set a longer one.
            let _ = RATE.try_with(|r| {
                r.borrow_mut()
                    .retry_after
                    .get_or_insert(DEPENDENCY_RETRY_AFTER);
            });
        }
        let detail = if let Some((dependency, _)) = e.dependency_failure() {
            let name = if dependency == "redis" {
                "Redis"
            } else {
                "PostgreSQL"
            };
            format!("{name} is unavailable right now (restarting or unreachable); retry after the Retry-After delay")
        } else if e.is_internal() {
            "something went wrong on our side; retry later, and quote the request id if it persists"
                .to_owned()
        } else {
            e.to_string()
        };
        let mut p = Problem::new(status, e.code(), detail);
        p.errors = e
            .field_errors()
            .iter()
            .map(|f| ProblemField {
                field: f.field.clone(),
                message: f.message.clone(),
            })
            .collect();
        p
    }

    /// Renders the document as a response.
    pub fn into_poem(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::json!({
            "type": self.kind, "title": self.title, "status": self.status, "detail": self.detail,
            "code": self.code, "request_id": self.request_id,
            "errors": self.errors.iter().map(|f| serde_json::json!({"field": f.field, "message": f.message})).collect::<Vec<_>>(),
        });
        Response::builder()
            .status(status)
            .content_type("application/problem+json")
            .body(body.to_string())
    }
}

/// Declares an endpoint's error response: one variant per status it can return, each a
/// problem document, plus 500. Converts from `pushdial_core::Error`.
#[macro_export]
macro_rules! problems {
    ($(#[$meta:meta])* $name:ident { $($status:tt => $variant:ident),* $(,)? }) => {
        $(#[$meta])*
        #[derive(poem_openapi::ApiResponse, Debug)]
        pub enum $name {
            $(
                #[oai(status = $status, content_type = "application/problem+json")]
                $variant(poem_openapi::payload::Json<$crate::problem::Problem>),
            )*
            /// Something failed on our side.
            #[oai(status = 500, content_type = "application/problem+json")]
            Internal(poem_openapi::payload::Json<$crate::problem::Problem>),
            /// A rate limit refused the request; `Retry-After` says when to retry.
            #[oai(status = 429, content_type = "application/problem+json")]
            TooManyRequests(poem_openapi::payload::Json<$crate::problem::Problem>),
            /// A dependency (PostgreSQL or Redis) is unavailable, or this instance is at its
            /// limit of requests in progress; retry after `Retry-After`.
            #[oai(status = 503, content_type = "application/problem+json")]
            Unavailable(poem_openapi::payload::Json<$crate::problem::Problem>),
        }

        impl From<$crate::problem::Problem> for $name {
            fn from(p: $crate::problem::Problem) -> Self {
                match p.status {
                    $($status => $name::$variant(poem_openapi::payload::Json(p)),)*
                    503 => $name::Unavailable(poem_openapi::payload::Json(p)),
                    429 => $name::TooManyRequests(poem_openapi::payload::Json(p)),
                    other => {
                        if other != 500 {
                            tracing::error!(status = other, code = %p.code, "undeclared error status");
                        }
                        $name::Internal(poem_openapi::payload::Json(p))
                    }
                }
            }
        }

        impl From<pushdial_core::Error> for $name {
            fn from(e: pushdial_core::Error) -> Self {
                $crate::problem::Problem::from_core(&e).into()
            }
        }

        impl From<sqlx::Error> for $name {
            fn from(e: sqlx::Error) -> Self {
                pushdial_core::Error::from(e).into()
            }
        }
    };
}

/// An error raised before a handler runs (in a security checker or an extractor), rendered
/// as a problem document.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ApiError(pub pushdial_core::Error);

impl poem::error::ResponseError for ApiError {
    fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn as_response(&self) -> Response {
        Problem::from_core(&self.0).into_poem()
    }
}

/// Turns every error poem or poem-openapi produced into a problem document.
pub async fn catch_all(err: poem::Error) -> Response {
    if err.is_from_response() || err.is::<ApiError>() {
        return err.into_response();
    }
    use poem_openapi::error::*;
    let status = err.status().as_u16();
    let message = err.to_string();
    let (status, code, detail) = if err.is::<AuthorizationError>() {
        (
            401,
            "missing_credentials",
            "send `Authorization: Bearer <key>`, or sign in".to_owned(),
        )
    } else if err.is::<ParseRequestPayloadError>() {
        (400, "invalid_request_body", message)
    } else if err.is::<ContentTypeError>() {
        (
            415,
            "unsupported_media_type",
            "send a JSON body with `Content-Type: application/json`".to_owned(),
        )
    } else if err.is::<ParseParamError>()
        || err.is::<ParsePathError>()
        || err.is::<ParseMultipartError>()
    {
        (400, "invalid_parameter", message)
    } else if err.is::<poem::error::NotFoundError>() || status == 404 {
        (404, "route_not_found", "no such route".to_owned())
    } else if err.is::<poem::error::MethodNotAllowedError>() || status == 405 {
        (
            405,
            "method_not_allowed",
            "this route does not accept that method".to_owned(),
        )
    } else if status == 413 {
        (413, "payload_too_large", message)
    } else if status >= 500 {
        tracing::error!(error = %message, "request failed");
        (
            status,
            "internal_error",
            "something went wrong on our side".to_owned(),
        )
    } else {
        (status, "bad_request", message)
    };
    Problem::new(status, code, detail).into_poem()
}
