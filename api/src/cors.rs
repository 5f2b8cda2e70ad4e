//! CORS, which only the widget API (`/widget/v1/`) answers: `widget.js` runs on tenants'
//! websites and can read an answer only with these headers. Which origins a widget allows
//! is the widget gate's decision (`widget_api::WidgetGate`); this module says which
//! requests are the widget's, what a preflight answers and which headers an answer to an
//! origin carries — for the gate's answers and for the pipeline's refusals before it alike.

use poem::http::{header, HeaderValue, StatusCode};
use poem::{Request, Response};

/// Whether `path` is one of the widget API's, the only routes that answer CORS.
pub fn is_widget_path(path: &str) -> bool {
    path.starts_with("/widget/v1/")
}

/// The page origin a request names (`Origin`), if any.
pub fn origin(req: &Request) -> Option<String> {
    req.headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The origin of a request to the widget API; `None` for any other route.
pub fn widget_origin(req: &Request) -> Option<String> {
    is_widget_path(req.uri().path())
        .then(|| origin(req))
        .flatten()
}

/// The CORS headers of a widget's answer to `origin` (no credentials: the widget sends
/// its publishable key, never a cookie).
pub fn allow(resp: &mut Response, origin: &str) {
    if let Ok(v) = HeaderValue::from_str(origin) {
        resp.headers_mut()
            .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    resp.headers_mut().insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("retry-after, ratelimit, ratelimit-policy, request-id"),
    );
    resp.headers_mut()
        .append(header::VARY, HeaderValue::from_static("Origin"));
}

/// The answer to a preflight: for any origin, since it carries no credentials and the real
/// request is judged.
pub fn preflight(origin: Option<&str>) -> Response {
    let mut resp = Response::builder()
        .status(StatusCode::NO_CONTENT)
        .header(header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST")
        .header(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            "authorization, content-type",
        )
        .header(header::ACCESS_CONTROL_MAX_AGE, "600")
        .finish();
    if let Some(o) = origin {
        allow(&mut resp, o);
    }
    resp
}
