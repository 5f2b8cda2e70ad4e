//! The request pipeline: what every request of the api goes through before and after its
//! route. It gives the request an id, refuses an address over the per-process flood
//! limit, bounds and reads the body, admits the request among those in progress (or
//! answers 503), writes the rate-limit headers handlers recorded, and counts the request
//! under its route's label.

use poem::{Endpoint, IntoResponse, Middleware, Request, Response};

use crate::cors;
use crate::limits::{Admission, FloodLimit};
use crate::problem::{catch_all, Problem};
use crate::request::{ClientIp, RateState, RATE, REQUEST_ID};

/// Largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// Gives each request an id (task-local and `Request-Id` header), refuses a client IP
/// over the per-process flood limit, refuses bodies over `MAX_BODY` — declared or streamed
/// — with a problem document before anything reads them, reads every body before the
/// request is admitted, answers 503 at once past the process's limit of requests in
/// progress (`Admission`), and writes the rate-limit headers (`RateLimit-Policy`,
/// `RateLimit`, `Retry-After`) that handlers recorded.
pub struct RequestIdMiddleware {
    pub flood: std::sync::Arc<FloodLimit>,
    pub routes: std::sync::Arc<Routes>,
    pub trusted: std::sync::Arc<Vec<ipnet::IpNet>>,
    pub admission: std::sync::Arc<Admission>,
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
    flood: std::sync::Arc<FloodLimit>,
    routes: std::sync::Arc<Routes>,
    trusted: std::sync::Arc<Vec<ipnet::IpNet>>,
    admission: std::sync::Arc<Admission>,
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
        let widget_origin = cors::widget_origin(&req);
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
                    cors::allow(&mut refused, origin);
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
