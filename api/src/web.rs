//! The web surfaces, served from `PUSHDIAL_WEB_DIR` (built by `npm run build` in
//! `web/console`, `web/widget` and `web/agent`): the console at `/console/` (any path
//! without a file is the single-page app), `/widget.js`, and the installable web agent at
//! `/agent/`. Nothing they load comes from another site: the console's and agent's pages
//! carry a Content-Security-Policy that allows only this origin.

use std::path::{Path, PathBuf};

use poem::endpoint::{StaticFileEndpoint, StaticFilesEndpoint};
use poem::http::{header, HeaderValue};
use poem::{Endpoint, IntoResponse, Response};

use crate::problem::Problem;

/// The policy of the console's and the web agent's pages: this origin only (inline styles
/// for the UI library; `data:` images for QR codes and icons).
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
                   script-src 'self'; connect-src 'self'; frame-src 'self'; worker-src 'self'; \
                   manifest-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; \
                   frame-ancestors 'self'";

fn missing(what: &str, dir: &Path) -> Response {
    Problem::new(
        503,
        "web_not_built",
        format!(
            "the {what} is not built: run `npm ci && npm run build` in web/{what} (serving {})",
            dir.display()
        ),
    )
    .into_poem()
}

/// Adds the headers every page needs; `cache` for hashed assets.
fn harden(mut resp: Response, page: bool) -> Response {
    let h = resp.headers_mut();
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    if page {
        h.insert("content-security-policy", HeaderValue::from_static(CSP));
    }
    resp
}

/// A directory of a single-page app (`index.html` for unknown paths), or a 503 problem
/// saying how to build it.
fn app_dir(dir: PathBuf, what: &'static str) -> impl Endpoint<Output = Response> {
    let built = dir.join("index.html").is_file();
    let files = std::sync::Arc::new(
        StaticFilesEndpoint::new(&dir)
            .index_file("index.html")
            .fallback_to_index()
            .no_cache_index()
            .prefer_utf8(true),
    );
    poem::endpoint::make(move |req: poem::Request| {
        let dir = dir.clone();
        let files = files.clone();
        let path = req.uri().path().to_owned();
        async move {
            if !built && !dir.join("index.html").is_file() {
                return missing(what, &dir);
            }
            let is_asset = path.contains("/assets/");
            let mut resp = match files.call(req).await {
                Ok(r) => r.into_response(),
                Err(e) => e.into_response(),
            };
            let html = resp
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|t| t.starts_with("text/html"));
            // Hashed assets never change; a missing one (answered with the page, during a
            // rolling deploy) must not be cached as if it were one.
            if is_asset && resp.status().is_success() && !html {
                resp.headers_mut().insert(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=31536000, immutable"),
                );
            }
            if path.ends_with("/sw.js") {
                // The web agent's service worker controls /agent/.
                resp.headers_mut().insert(
                    "service-worker-allowed",
                    HeaderValue::from_static("/agent/"),
                );
                resp.headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            }
            harden(resp, html)
        }
    })
}

/// The console (`/console/`).
pub fn console(dir: &Path) -> impl Endpoint<Output = Response> {
    app_dir(dir.join("console"), "console")
}

/// The installable web agent (`/agent/`). It shares its prefix with the agent API
/// (`/agent/v1/…`), so it is mounted on exact shapes (`/agent/`, `/agent/:file`,
/// `/agent/assets/*`, `/agent/icons/*`) and maps the request path to a file itself.
pub fn agent(dir: &Path) -> impl Endpoint<Output = Response> {
    let root = dir.join("agent");
    poem::endpoint::make(move |req: poem::Request| {
        let root = root.clone();
        async move {
            let rel = req
                .uri()
                .path()
                .strip_prefix("/agent/")
                .unwrap_or("")
                .to_owned();
            let safe = rel
                .split('/')
                .all(|seg| !seg.is_empty() && seg != ".." && seg != "." && !seg.contains('\\'));
            let file = if rel.is_empty() {
                root.join("index.html")
            } else if safe {
                root.join(&rel)
            } else {
                return Problem::new(404, "route_not_found", "no such route").into_poem();
            };
            if !root.join("index.html").is_file() {
                return missing("agent", &root);
            }
            if !file.is_file() {
                return Problem::new(404, "route_not_found", "no such file").into_poem();
            }
            let mut resp = match StaticFileEndpoint::new(&file)
                .prefer_utf8(true)
                .call(req)
                .await
            {
                Ok(r) => r.into_response(),
                Err(e) => e.into_response(),
            };
            let html = file.extension().is_some_and(|e| e == "html");
            if rel == "sw.js" {
                // The web agent's service worker controls /agent/.
                resp.headers_mut().insert(
                    "service-worker-allowed",
                    HeaderValue::from_static("/agent/"),
                );
            }
            if html || rel == "sw.js" || rel == "manifest.webmanifest" {
                resp.headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            }
            harden(resp, html)
        }
    })
}

/// `/widget.js`, loaded by tenants' pages from their own origin.
pub fn widget_js(dir: &Path) -> impl Endpoint<Output = Response> {
    let widget = dir.join("widget.js");
    let widget_dir = dir.to_owned();
    poem::endpoint::make(move |req: poem::Request| {
        let widget = widget.clone();
        let widget_dir = widget_dir.clone();
        async move {
            if !widget.is_file() {
                return missing("widget", &widget_dir);
            }
            let mut resp = match StaticFileEndpoint::new(&widget).call(req).await {
                Ok(r) => r.into_response(),
                Err(e) => e.into_response(),
            };
            // Short cache (a new build reaches sites within minutes), usable cross-origin.
            resp.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            );
            resp.headers_mut().insert(
                "cross-origin-resource-policy",
                HeaderValue::from_static("cross-origin"),
            );
            harden(resp, false)
        }
    })
}
