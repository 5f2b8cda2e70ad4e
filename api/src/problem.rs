//! Errors as RFC 9457 problem documents (`application/problem+json`) with a stable `code`
//! and the request id. Every endpoint declares the statuses it can return with
//! `problems!`, so the OpenAPI document lists them; anything poem itself rejects (bad JSON,
//! missing credentials, unknown routes, oversized bodies) is turned into the same shape by
//! `catch_all`. `Request-Id` is set on every response by `RequestIdEndpoint`.

use poem::http::StatusCode;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use poem_openapi::Object;

tokio::task_local! {
    /// The id of the request being served, for problem documents and logs.
    pub static REQUEST_ID: String;
    /// What rate limiting decided for the request being served, for its response headers.
    pub static RATE: std::cell::RefCell<RateState>;
}

/// Rate-limit facts about one request, turned into headers by the middleware.
#[derive(Debug, Default, Clone)]
pub struct RateState {
    /// (policy name, quota, window in seconds, remaining, seconds until reset) of the
    /// policy reported in `RateLimit-Policy` / `RateLimit`.
    pub policy: Option<(&'static str, u32, u64, u32, u64)>,
    /// Set when the request was refused: the `Retry-After` to send.
    pub retry_after: Option<std::time::Duration>,
}

/// Records the policy reported in this response's `RateLimit` headers.
pub fn report_rate(
    policy: &'static str,
    quota: u32,
    window_s: u64,
    d: &pushdial_core::ratelimit::Decision,
) {
    let reset = d.reset.as_secs_f64().ceil() as u64;
    let _ = RATE
        .try_with(|r| r.borrow_mut().policy = Some((policy, quota, window_s, d.remaining, reset)));
}

/// The current request's id (empty outside a request).
pub fn request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_default()
}

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

/// Largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// Gives each request an id (task-local and `Request-Id` header), refuses a client IP
/// over the per-process flood limit, refuses bodies over `MAX_BODY` — declared or streamed
/// — with a problem document before anything reads them, reads every body before the
/// request is admitted, answers 503 at once past the process's limit of requests in
/// progress (`Admission`), and writes the rate-limit headers (`RateLimit-Policy`,
/// `RateLimit`, `Retry-After`) that handlers recorded.
/// The client's address (behind trusted proxies: from `X-Forwarded-For`).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub std::net::IpAddr);

pub struct RequestIdMiddleware {
    pub flood: std::sync::Arc<crate::limits::FloodLimit>,
    pub routes: std::sync::Arc<Routes>,
    pub trusted: std::sync::Arc<Vec<ipnet::IpNet>>,
    pub admission: std::sync::Arc<crate::limits::Admission>,
}

impl<E: Endpoint> Middleware<E> for RequestIdMiddleware {
    type Output = RequestIdEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        RequestIdEndpoint {
            inner: ep,
            flood: self.flood.clone(),
            routes: self.routes.clone(),
            trusted: self.trusted.clone(),
            admission: self.admission.clone(),
        }
    }
}

pub struct RequestIdEndpoint<E> {
    inner: E,
    flood: std::sync::Arc<crate::limits::FloodLimit>,
    routes: std::sync::Arc<Routes>,
    trusted: std::sync::Arc<Vec<ipnet::IpNet>>,
    admission: std::sync::Arc<crate::limits::Admission>,
}

impl<E: Endpoint> Endpoint for RequestIdEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let id = format!("req_{}", &pushdial_core::secrets::new_token("")[..24]);
        let header = poem::http::HeaderValue::from_str(&id).ok();
        let ip = req.remote_addr().as_socket_addr().map(|a| {
            let forwarded = req
                .headers()
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok());
            pushdial_core::limits::client_ip(a.ip(), forwarded, &self.trusted)
        });
        if let Some(ip) = ip {
            req.extensions_mut().insert(ClientIp(ip));
        }
        let started = std::time::Instant::now();
        let route = route_label(&self.routes, req.uri().path());
        let method: &'static str = match req.method().as_str() {
            "GET" => "GET",
            "POST" => "POST",
            "PUT" => "PUT",
            "PATCH" => "PATCH",
            "DELETE" => "DELETE",
            "HEAD" => "HEAD",
            "OPTIONS" => "OPTIONS",
            _ => "other",
        };
        // Every log line and trace span of the request carries its id, and the call it is
        // about when the path names one (`/v1/calls/call_…`, `/agent/v1/calls/call_…`);
        // creating a call records it in the handler.
        let span = tracing::info_span!(
            "request",
            request_id = %id,
            method,
            route,
            call_id = tracing::field::Empty,
        );
        if let Some(call_id) = req.uri().path().split('/').find(|s| s.starts_with("call_")) {
            span.record("call_id", call_id);
        }
        // A website's widget can read a refusal only with CORS headers; these refusals come
        // before the widget's gate, which adds them to everything else it lets through.
        let widget_origin = req
            .uri()
            .path()
            .starts_with("/widget/v1/")
            .then(|| req.headers().get(poem::http::header::ORIGIN))
            .flatten()
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // A preflight costs nothing to answer, and a refused one would hide the real
        // request's answer (and its Retry-After) from the page.
        let preflight = widget_origin.is_some() && method == "OPTIONS";
        // `Err`: refused here, before the request reached the service.
        let work = async {
            if let Some(wait) =
                ip.and_then(|ip| self.flood.check(pushdial_core::limits::ip_key(ip)))
            {
                pushdial_core::metrics::METRICS
                    .rate_limit_refusals
                    .with_label_values(&["ip"])
                    .inc();
                let detail = "too many requests from this address; slow down";
                let mut resp = Problem::new(429, "rate_limited", detail).into_poem();
                let refusal = RateState {
                    policy: None,
                    retry_after: Some(wait),
                };
                rate_headers(&mut resp, &refusal);
                return Err(resp);
            }
            let declared = req
                .headers()
                .get(poem::http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<usize>().ok());
            if declared.is_some_and(|n| n > MAX_BODY) {
                return Err(too_large());
            }
            let upgrade = is_upgrade(&req);
            if !upgrade {
                // The body is read whole (up to the limit, within a time) before the
                // request is admitted, so that a slow sender holds no place among the
                // requests in progress.
                let read = req.take_body().into_bytes_limit(MAX_BODY);
                match tokio::time::timeout(BODY_READ_TIMEOUT, read).await {
                    Ok(Ok(bytes)) => req.set_body(bytes),
                    Ok(Err(poem::error::ReadBodyError::PayloadTooLarge)) => return Err(too_large()),
                    Ok(Err(e)) => {
                        return Err(Problem::new(400, "unreadable_body", e.to_string()).into_poem())
                    }
                    Err(_) => {
                        let detail = format!(
                            "the request body did not arrive within {} s",
                            BODY_READ_TIMEOUT.as_secs()
                        );
                        return Err(Problem::new(408, "request_timeout", detail).into_poem());
                    }
                }
            }
            // Sockets live for hours and are capped on their own; health checks and
            // metrics must answer precisely when the process is busiest.
            let counted =
                !upgrade && !preflight && !matches!(route, "/healthz" | "/readyz" | "/metrics");
            let _place = if counted {
                match self.admission.try_admit() {
                    Some(place) => Some(place),
                    None => return Err(overloaded(route, self.admission.limit())),
                }
            } else {
                None
            };
            let mut resp = match self.inner.call(req).await {
                Ok(r) => r.into_response(),
                Err(e) => catch_all(e).await,
            };
            let rate = RATE.try_with(|r| r.borrow().clone()).unwrap_or_default();
            rate_headers(&mut resp, &rate);
            Ok(resp)
        };
        let resp = {
            use tracing::Instrument;
            REQUEST_ID
                .scope(
                    id,
                    RATE.scope(std::cell::RefCell::new(RateState::default()), work),
                )
                .instrument(span.clone())
                .await
        };
        let mut resp = match resp {
            Ok(resp) => resp,
            Err(mut refused) => {
                if let Some(origin) = &widget_origin {
                    crate::widget_api::cors(&mut refused, origin);
                }
                refused
            }
        };
        let elapsed = started.elapsed();
        let status = resp.status().as_u16();
        span.in_scope(|| {
            let ms = elapsed.as_secs_f64() * 1000.0;
            if matches!(route, "/healthz" | "/readyz" | "/metrics") {
                tracing::debug!(status, duration_ms = ms, "request");
            } else {
                tracing::info!(status, duration_ms = ms, "request");
            }
        });
        if let Some(h) = header {
            resp.headers_mut().insert("request-id", h);
        }
        let m = &*pushdial_core::metrics::METRICS;
        m.http_requests
            .with_label_values(&[route, method, resp.status().as_str()])
            .inc();
        m.http_duration
            .with_label_values(&[route, method])
            .observe(elapsed.as_secs_f64());
        Ok(resp)
    }
}

/// Writes `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers-10)
/// and, on a refusal, `Retry-After`.
fn rate_headers(resp: &mut Response, rate: &RateState) {
    let headers = resp.headers_mut();
    if let Some((name, quota, window, remaining, reset)) = rate.policy {
        if let Ok(v) =
            poem::http::HeaderValue::from_str(&format!("\"{name}\";q={quota};w={window}"))
        {
            headers.insert("ratelimit-policy", v);
        }
        if let Ok(v) =
            poem::http::HeaderValue::from_str(&format!("\"{name}\";r={remaining};t={reset}"))
        {
            headers.insert("ratelimit", v);
        }
    }
    if let Some(wait) = rate.retry_after {
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        if let Ok(v) = poem::http::HeaderValue::from_str(&secs.to_string()) {
            headers.insert("retry-after", v);
        }
    }
}

/// The routes of the API as metric labels (`/v1/calls/:id`), so labels stay a fixed set.
pub type Routes = std::collections::HashSet<String>;

/// Every route template: the OpenAPI paths with `{param}` as `:id`, and the plain routes.
pub fn known_routes(spec_paths: impl Iterator<Item = String>) -> Routes {
    let mut routes: Routes = spec_paths
        .map(|p| {
            p.split('/')
                .map(|seg| if seg.starts_with('{') { ":id" } else { seg })
                .collect::<Vec<_>>()
                .join("/")
        })
        .collect();
    for extra in [
        "/agent/v1/stream",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/asyncapi.yaml",
        "/docs",
        "/auth/providers",
        "/auth/logout",
        "/widget.js",
        "/console",
        "/agent",
    ] {
        routes.insert(extra.to_owned());
    }
    for provider in ["oidc", "google", "github"] {
        routes.insert(format!("/auth/{provider}/login"));
        routes.insert(format!("/auth/{provider}/callback"));
    }
    routes
}

/// The route label of a path: its template if it is one of ours (ids become `:id`), else
/// `other` — whatever a client sends, the label set stays the routes of the API.
fn route_label<'a>(routes: &'a Routes, path: &str) -> &'a str {
    let shape: String = path
        .split('/')
        .map(|seg| {
            let id_like = seg.split_once('_').is_some_and(|(p, rest)| {
                !p.is_empty()
                    && p.len() <= 4
                    && !rest.is_empty()
                    && p.bytes().all(|b| b.is_ascii_lowercase())
            });
            if id_like || (!seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit())) {
                ":id"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/");
    routes.get(&shape).map_or("other", String::as_str)
}

/// Whether the request is a WebSocket handshake to the agents' stream, the only upgrade the
/// API offers. Anything else claiming `Upgrade` is an ordinary request, with its body read
/// under the limits and counted by admission: the header alone once let a 50 MiB body
/// through unbounded.
fn is_upgrade(req: &Request) -> bool {
    use poem::http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING, UPGRADE};
    let headers = req.headers();
    let names_upgrade = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    let websocket = headers
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket"));
    // A handshake has no body: one that declares a body is not a handshake.
    let bodiless = !headers.contains_key(TRANSFER_ENCODING)
        && headers
            .get(CONTENT_LENGTH)
            .is_none_or(|v| v.as_bytes() == b"0");
    req.method() == poem::http::Method::GET
        && req.uri().path() == "/agent/v1/stream"
        && names_upgrade
        && websocket
        && bodiless
}

/// How long a request's body may take to arrive.
const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// The answer when this process already serves as many requests as it admits.
fn overloaded(route: &str, limit: usize) -> Response {
    pushdial_core::metrics::METRICS
        .requests_shed
        .with_label_values(&[route])
        .inc();
    let detail = format!(
        "this instance is serving its limit of {limit} requests at once; retry in a moment"
    );
    let mut resp = Problem::new(503, "overloaded", detail).into_poem();
    rate_headers(
        &mut resp,
        &RateState {
            policy: None,
            retry_after: Some(std::time::Duration::from_secs(1)),
        },
    );
    resp
}

fn too_large() -> Response {
    Problem::new(
        413,
        "payload_too_large",
        format!("request bodies are limited to {MAX_BODY} bytes"),
    )
    .into_poem()
}
