//! pushdial-api: the HTTP layer. Public API (`/v1`, secret keys), agent API (`/agent/v1`,
//! device tokens, plus the WebSocket stream), the OpenAPI document and its rendered
//! reference, and health checks. Handlers are thin: authenticate, parse, call core, map.

// Handlers return per-endpoint problem enums by value, as poem-openapi's response types
// require; boxing them would hide the statuses from the OpenAPI document.
#![allow(clippy::result_large_err)]

pub mod agent_api;
pub mod agents;
pub mod api_keys;
pub mod auth;
pub mod calls;
pub mod contract;
pub mod cors;
pub mod devices;
pub mod exports;
pub mod idempotency;
pub mod limits;
pub mod members;
pub mod models;
pub mod organization;
pub mod pipeline;
pub mod problem;
pub mod push_credentials;
pub mod request;
pub mod server;
pub mod signin;
pub mod stream;
pub mod streams;
pub mod web;
pub mod webhooks;
pub mod widget_api;
pub mod widgets;

use std::sync::Arc;
use std::time::Duration;

use poem::web::Data;
use poem::{get, handler, EndpointExt, IntoResponse, Response, Route};
use poem_openapi::{OpenApiService, Tags as TagsDerive};
use pushdial_core::shutdown::Stop;
use pushdial_core::Ctx;

pub use stream::Sockets;

/// Groups of operations in the reference.
#[derive(TagsDerive)]
pub enum Tags {
    /// Calls placed through an agent's phone.
    Calls,
    /// People who take calls.
    Agents,
    /// Phones paired to agents.
    Devices,
    /// What the phone agent app calls.
    AgentApi,
    /// Events, and their delivery to the organization's endpoints.
    Webhooks,
    /// The organization and its dialing policy.
    Organization,
    /// Signed-in users, members and their roles, invitations, and the audit log.
    Members,
    /// Secret and publishable API keys.
    ApiKeys,
    /// Embeddable widgets and visitors' callback requests.
    Widgets,
    /// What `widget.js` calls (publishable key, CORS limited to the widget's origins).
    WidgetApi,
}

/// Every resource of the API, one `#[OpenApi]` impl each.
pub type Apis = (
    calls::CallsApi,
    exports::ExportsApi,
    agents::AgentsApi,
    devices::DevicesApi,
    agent_api::AgentApi,
    webhooks::WebhooksApi,
    organization::OrganizationApi,
    push_credentials::PushCredentialsApi,
    members::MembersApi,
    api_keys::ApiKeysApi,
    widgets::WidgetsApi,
    widget_api::WidgetApi,
);

/// The whole API, as one service: the server mounts it and the spec test renders it.
pub fn api_service() -> OpenApiService<Apis, webhooks::Events> {
    OpenApiService::new(
        (
            calls::CallsApi,
            exports::ExportsApi,
            agents::AgentsApi,
            devices::DevicesApi,
            agent_api::AgentApi,
            webhooks::WebhooksApi,
            organization::OrganizationApi,
            push_credentials::PushCredentialsApi,
            members::MembersApi,
            api_keys::ApiKeysApi,
            widgets::WidgetsApi,
            widget_api::WidgetApi,
        ),
        "pushdial",
        env!("CARGO_PKG_VERSION"),
    )
    .webhooks::<webhooks::Events>()
    .description(
        "Click-to-call through the caller's own phone. Secret keys (`pd_sk_…`) open the public \
         API with the current role of the member who made them (the organization's own key, \
         as an owner); a console session (cookie `pd_session`, from sign-in at \
         `/auth/{provider}/login`) opens it with the member's role, in the organization named \
         by the `Pushdial-Organization` header, and state-changing requests must then come \
         from an allowed `Origin`. Device tokens (`pd_dev_…`) open the agent API. Errors are \
         RFC 9457 problem documents with a stable `code`; every response carries `Request-Id`. \
         Any request may be answered `503` with code `overloaded` and `Retry-After` when the \
         instance is at its limit of requests in progress: retry it after that delay (with \
         the same `Idempotency-Key` for a create). A body over 64 KiB is answered `413` \
         (`payload_too_large`), and one that does not arrive whole within 15 s `408` \
         (`request_timeout`).",
    )
}

/// The OpenAPI 3.1 document as pretty JSON, exactly as committed in `openapi/openapi.json`
/// (poem-openapi's rendering, finished by `contract::finish`).
pub fn openapi_json() -> String {
    contract::finish(&api_service().spec())
}

/// `GET /`: the console, where a person who opens the printed URL wants to be. (Answered
/// before the router: the API's service, nested at `/`, would take `/` for itself.)
async fn root_redirect<E: poem::Endpoint>(
    ep: Arc<E>,
    req: poem::Request,
) -> poem::Result<Response> {
    let get = matches!(
        *req.method(),
        poem::http::Method::GET | poem::http::Method::HEAD
    );
    if get && req.uri().path() == "/" {
        return Ok(Response::builder()
            .status(poem::http::StatusCode::FOUND)
            .header(poem::http::header::LOCATION, "/console/")
            .finish());
    }
    ep.call(req).await.map(IntoResponse::into_response)
}

/// The routes served beside the OpenAPI document's, with their methods, for `Allow`.
const PLAIN_ROUTES: &[(&str, &str)] = &[
    ("/agent/v1/stream", "GET, HEAD"),
    ("/healthz", "GET, HEAD"),
    ("/readyz", "GET, HEAD"),
    ("/metrics", "GET, HEAD"),
    ("/openapi.json", "GET, HEAD"),
    ("/asyncapi.yaml", "GET, HEAD"),
    ("/docs", "GET, HEAD"),
    ("/auth/providers", "GET, HEAD"),
    ("/auth/{provider}/login", "GET, HEAD"),
    ("/auth/{provider}/callback", "GET, HEAD"),
    ("/auth/logout", "POST"),
];

/// Prometheus metrics of this process.
#[handler]
async fn metrics(ctx: Data<&Ctx>) -> Response {
    metrics_text(&ctx).await
}

/// Prometheus metrics on the public listener, for the holder of `PUSHDIAL_METRICS_TOKEN`
/// only: anyone else is answered as if the route did not exist.
#[handler]
async fn metrics_with_token(ctx: Data<&Ctx>, req: &poem::Request) -> Response {
    let expected = ctx.config.metrics_token.as_deref().unwrap_or_default();
    let given = req
        .headers()
        .get(poem::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    // Digests are compared, so the comparison's time says nothing about the token.
    use pushdial_core::secrets::hash;
    if expected.is_empty() || hash(given) != hash(expected) {
        return problem::Problem::new(404, "route_not_found", "no such route").into_poem();
    }
    metrics_text(&ctx).await
}

async fn metrics_text(ctx: &Ctx) -> Response {
    pushdial_core::metrics::refresh(&ctx.db, ctx.config.db_max_connections).await;
    Response::builder()
        .content_type("text/plain; version=0.0.4")
        .body(pushdial_core::metrics::METRICS.render())
}

#[handler]
fn healthz() -> &'static str {
    "ok"
}

/// Fires when the process was asked to stop (SIGTERM): `/readyz` fails from then on, while
/// requests are still served until the drain period ends and the server's own `Stop` fires.
#[derive(Clone)]
pub struct Draining(pub Stop);

/// Ready when Postgres and Redis both answer (and the process is not shutting down).
#[handler]
async fn readyz(ctx: Data<&Ctx>, draining: Data<&Draining>) -> Response {
    if draining.0 .0.is_stopped() {
        return problem::Problem::new(503, "shutting_down", "this instance is shutting down")
            .into_poem();
    }
    let db = tokio::time::timeout(
        Duration::from_secs(2),
        sqlx::query("select 1").execute(&ctx.db),
    )
    .await;
    let redis = tokio::time::timeout(Duration::from_secs(2), ctx.presence.ping()).await;
    let db_ok = matches!(db, Ok(Ok(_)));
    let redis_ok = matches!(redis, Ok(Ok(())));
    if db_ok && redis_ok {
        poem::web::Json(serde_json::json!({"status": "ready", "postgres": "ok", "redis": "ok"}))
            .into_response()
    } else {
        let mut p = problem::Problem::new(
            503,
            "not_ready",
            format!(
                "postgres: {}, redis: {}",
                if db_ok { "ok" } else { "unavailable" },
                if redis_ok { "ok" } else { "unavailable" }
            ),
        );
        p.title = "Service Unavailable".into();
        p.into_poem()
    }
}

/// The rendered reference, self-contained: the stock page's web-font link is removed so
/// that reading the docs sends no request outside the deployment.
fn docs_page(stock: &str) -> String {
    let page = stock.replace(
        "<title>Redoc</title>",
        "<title>pushdial API reference</title>",
    );
    match page.find("<link href=\"https://fonts.googleapis.com") {
        Some(start) => match page[start..].find('>') {
            Some(len) => format!("{}{}", &page[..start], &page[start + len + 1..]),
            None => page,
        },
        None => page,
    }
}

/// What a worker-only process serves on its listener: liveness, readiness and metrics.
pub fn ops_app(ctx: Ctx, draining: Draining) -> impl poem::Endpoint<Output = Response> {
    Route::new()
        .at("/healthz", get(healthz))
        .at("/readyz", get(readyz))
        .at("/metrics", get(metrics))
        .data(ctx)
        .data(draining)
        .catch_all_error(problem::catch_all)
}

/// Serves `ops_app` on `listener` until `stop` fires: a worker's listener, or an api's
/// `PUSHDIAL_METRICS_LISTEN`.
pub async fn run_ops(
    listener: std::net::TcpListener,
    ctx: Ctx,
    draining: Draining,
    stop: Stop,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let limits = server::ConnLimits {
        header_timeout: ctx.config.header_timeout,
    };
    server::serve(
        listener,
        ops_app(ctx, draining),
        limits,
        async move { stop.wait().await },
        Duration::from_secs(2),
    )
    .await
}

/// The routes of the api, with request ids, body limits and problem documents for every
/// error. `stop` closes agent sockets (with a reconnect hint); `draining` fails readiness.
pub fn app(
    ctx: Ctx,
    sockets: Arc<Sockets>,
    draining: Draining,
    stop: Stop,
) -> impl poem::Endpoint<Output = Response> {
    let flood = Arc::new(limits::FloodLimit::new(ctx.config.limit_ip_per_second));
    let admission = Arc::new(limits::Admission::new(ctx.config.in_flight_limit()));
    let trusted = ctx.trusted_proxies.clone();
    let spec: serde_json::Value = serde_json::from_str(&openapi_json()).unwrap_or_default();
    let paths = spec["paths"]
        .as_object()
        .map(|p| p.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default();
    let routes = Arc::new(pipeline::known_routes(paths.into_iter()));
    let methods = Arc::new(contract::Methods::new(&spec, PLAIN_ROUTES));
    let bodies = Arc::new(contract::BodySchemas::new(&spec));
    let service = api_service().server(ctx.config.public_url());
    // The served document is the finished one, with this deployment's server URL; the
    // reference renders the same document.
    let stock_spec = service.spec();
    let served = contract::finish(&stock_spec);
    let docs = docs_page(&service.redoc_html().replace(&stock_spec, &served));
    let spec = poem::endpoint::make_sync(move |_| {
        Response::builder()
            .content_type("application/json")
            .body(served.clone())
    });
    let web_dir = ctx.config.web_dir.clone();
    Route::new()
        .nest("/", service.with(widget_api::WidgetGate))
        .nest("/console", web::console(&web_dir))
        .at("/agent/", web::agent(&web_dir))
        .at("/agent/:file", web::agent(&web_dir))
        .at("/agent/assets/*rest", web::agent(&web_dir))
        .at("/agent/icons/*rest", web::agent(&web_dir))
        .at("/widget.js", web::widget_js(&web_dir))
        .at("/agent/v1/stream", get(stream::stream))
        .at("/auth/providers", get(signin::providers))
        .at("/auth/:provider/login", get(signin::login))
        .at("/auth/:provider/callback", get(signin::callback))
        .at("/auth/logout", poem::post(signin::logout))
        .at("/openapi.json", spec)
        // The agent stream's AsyncAPI document, as committed.
        .at(
            "/asyncapi.yaml",
            get(poem::endpoint::make_sync(|_| {
                Response::builder()
                    .content_type("application/yaml")
                    .body(include_str!("../../openapi/asyncapi.yaml"))
            })),
        )
        .at(
            "/docs",
            get(poem::endpoint::make_sync(move |_| {
                poem::web::Html(docs.clone())
            })),
        )
        .at("/healthz", get(healthz))
        .at("/readyz", get(readyz))
        .at("/metrics", get(metrics_with_token))
        .data(ctx)
        .data(sockets)
        .data(draining)
        .data(stop)
        .around(root_redirect)
        .with(contract::StrictBodies(bodies))
        .with(contract::AllowHeader(methods))
        .with(pipeline::RequestIdMiddleware {
            flood,
            routes,
            trusted: Arc::new(trusted),
            admission,
        })
        .with(contract::Observe)
}

/// Serves the api on an already-bound listener until `stop` fires, then lets in-flight
/// requests finish within the configured grace.
pub async fn run(
    listener: std::net::TcpListener,
    ctx: Ctx,
    draining: Draining,
    stop: Stop,
) -> std::io::Result<()> {
    let sockets = Arc::new(Sockets::default());
    // Forward messages published for this instance (offers, cancels) to its sockets.
    let follower = {
        let ctx = ctx.clone();
        let sockets = sockets.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let instance = ctx.instance_id.clone();
            ctx.presence
                .follow_instance(&instance, stop, |device_id, message| {
                    let text = message.to_string();
                    // A revocation is the last frame: the socket closes after it.
                    let revoked = matches!(
                        serde_json::from_value(message),
                        Ok(pushdial_core::protocol::ToPhone::DeviceRevoked)
                    );
                    let outgoing = if revoked {
                        stream::Outgoing::Close(text)
                    } else {
                        stream::Outgoing::Text(text)
                    };
                    if !sockets.send(&device_id, outgoing) {
                        tracing::debug!(device_id = %device_id, "message for a socket no longer here");
                    }
                })
                .await;
        })
    };
    // Keeps the in-memory answers of secret keys in step with the database.
    let key_changes = {
        let ctx = ctx.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            pushdial_core::keycache::follow(&ctx.keys, &ctx.config.database_url, stop).await;
        })
    };
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let grace = ctx.config.shutdown_grace;
    let limits = server::ConnLimits {
        header_timeout: ctx.config.header_timeout,
    };
    let app = app(ctx, sockets.clone(), draining, stop.clone());
    let result = server::serve(
        listener,
        app,
        limits,
        async move { stop.wait().await },
        grace,
    )
    .await;
    // Upgraded sockets live outside the server's connections: each is telling its agent to
    // reconnect elsewhere and closing. Wait for them (within the grace), or the process
    // could end before an agent heard why its socket closed.
    let closing = async {
        while !sockets.is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    if tokio::time::timeout(grace, closing).await.is_err() {
        tracing::warn!("agent sockets still open after the grace; closing them with the process");
    }
    follower.abort();
    key_changes.abort();
    result
}
