//! The widget API (`/widget/v1`), used only by `widget.js` on tenants' websites:
//! configuration, callback requests, and the visitor's live status stream.
//!
//! `WidgetGate` guards every route: it finds the widget (from the publishable key, or for
//! the status stream from the callback's token, since EventSource sends no headers),
//! refuses any page origin the widget does not allow — before anything is read or
//! written — and answers CORS with that single origin (`Vary: Origin`). Preflights are
//! answered for any origin: they carry no credentials and the real request is judged.
//!
//! The Origin check binds browsers only: a script or a server sends any `Origin` it likes,
//! and the publishable key is in every page. What bounds such a client is the widget's
//! hourly caps (failing closed), the per-address and per-number limits, and that the call
//! a widget places must be confirmed by a person on the phone (`confirm: required`).

use std::time::Duration;

use futures::stream::BoxStream;
use futures::StreamExt;
use poem::http::{header, Method};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use poem_openapi::auth::Bearer;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{EventStream, Json};
use poem_openapi::types::ToJSON;
use poem_openapi::{ApiResponse, Object, OpenApi, SecurityScheme};
use pushdial_core::placing::{self, CallbackInput, Visitor};
use pushdial_core::store::widgets::{self as store, WhenUnavailable, WidgetRow};
use pushdial_core::{secrets, widgets, Ctx, Error};

use crate::cors;
use crate::problem::{catch_all, ApiError, Problem};
use crate::problems;
use crate::Tags;

pub struct WidgetApi;

/// The widget a request is for, and the page origin it came from (checked).
#[derive(Debug, Clone)]
pub struct WidgetRequest {
    pub widget: WidgetRow,
    pub origin: Option<String>,
}

/// The widget's publishable key: `Authorization: Bearer pd_pk_…` (from the tag's
/// `data-key`). Only the widget's allowed origins may use it.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", rename = "PublishableKey", checker = "check_widget_key")]
pub struct WidgetKey(WidgetRequest);

async fn check_widget_key(req: &Request, _bearer: Bearer) -> poem::Result<WidgetRequest> {
    // `WidgetGate` resolved and checked it before the handler runs.
    req.extensions()
        .get::<WidgetRequest>()
        .cloned()
        .ok_or_else(|| ApiError(invalid_key()).into())
}

fn invalid_key() -> Error {
    Error::unauthenticated(
        "invalid_api_key",
        "the widget's key is not valid (or the widget was deleted)",
    )
}

fn origin_refused() -> Error {
    Error::forbidden(
        "origin_not_allowed",
        "this widget may not be used on this website",
    )
}

/// Guards `/widget/v1`: see the module documentation.
pub struct WidgetGate;

impl<E: Endpoint> Middleware<E> for WidgetGate {
    type Output = WidgetGateEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        WidgetGateEndpoint { inner: ep }
    }
}

pub struct WidgetGateEndpoint<E> {
    inner: E,
}

impl<E: Endpoint> Endpoint for WidgetGateEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        if !cors::is_widget_path(req.uri().path()) {
            return self.inner.call(req).await.map(IntoResponse::into_response);
        }
        let origin = cors::origin(&req);
        if req.method() == Method::OPTIONS {
            return Ok(cors::preflight(origin.as_deref()));
        }
        let Some(ctx) = req.data::<Ctx>().cloned() else {
            return Err(ApiError(Error::Internal("no context".into())).into());
        };
        let widget = match resolve(&ctx, &req).await {
            Ok(w) => w,
            Err(e) => return Ok(Problem::from_core(&e).into_poem()),
        };
        let allowed = match &origin {
            Some(o) => widget.allowed_origins.iter().any(|a| a == o),
            // Without an Origin the request is a same-origin read (the console's live
            // preview) or not from a browser; only reading the configuration is allowed.
            None => req.method() == Method::GET && req.uri().path() == "/widget/v1/config",
        };
        let preview = origin.as_deref() == Some(ctx.config.public_origin().as_str())
            && req.method() == Method::GET
            && req.uri().path() == "/widget/v1/config";
        if !(allowed || preview) {
            return Ok(Problem::from_core(&origin_refused()).into_poem());
        }
        req.extensions_mut().insert(WidgetRequest {
            widget,
            origin: origin.clone(),
        });
        let mut resp = match self.inner.call(req).await {
            Ok(r) => r.into_response(),
            // As everywhere else: every error poem raises (a body that is not JSON, a
            // missing Content-Type) is a problem document, never poem's plain text.
            Err(e) => catch_all(e).await,
        };
        if let Some(o) = &origin {
            cors::allow(&mut resp, o);
        }
        Ok(resp)
    }
}

/// The widget of a request: from the callback and its token for the status stream, else
/// from the publishable key.
async fn resolve(ctx: &Ctx, req: &Request) -> Result<WidgetRow, Error> {
    let path = req.uri().path();
    let mut conn = ctx.db.acquire().await?;
    if let Some(rest) = path.strip_prefix("/widget/v1/callbacks/") {
        if let Some(id) = rest.strip_suffix("/events") {
            let token = req
                .uri()
                .query()
                .and_then(|q| {
                    url::form_urlencoded::parse(q.as_bytes())
                        .find(|(k, _)| k == "token")
                        .map(|(_, v)| v.into_owned())
                })
                .unwrap_or_default();
            let cb = store::callback_by_token(&mut conn, id, &secrets::hash(&token))
                .await?
                .ok_or(Error::NotFound("callback"))?;
            return store::by_id(&mut conn, &cb.widget_id)
                .await?
                .ok_or(Error::NotFound("callback"));
        }
    }
    let key = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .filter(|k| k.starts_with("pd_pk_"))
        .ok_or_else(invalid_key)?;
    store::by_key_hash(&mut conn, &secrets::hash(key.trim()))
        .await?
        .ok_or_else(invalid_key)
}

/// What the widget shows now.
#[derive(Debug, Clone, Object)]
pub struct WidgetConfig {
    pub widget_id: String,
    /// An agent is reachable now, within business hours.
    pub available: bool,
    /// `call_now` (an agent calls the visitor at once), `callback` (a request for later)
    /// or `hidden` (show nothing).
    pub mode: String,
    /// Within business hours.
    pub open_now: bool,
    /// The organization's country: the default of the country picker.
    pub country: String,
    /// The countries the visitor may choose.
    pub allowed_countries: Vec<String>,
    pub theme: serde_json::Value,
    /// The tenant's texts by language, overriding the widget's defaults.
    pub texts: serde_json::Value,
}

/// A visitor asks to be called.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct CreateCallback {
    /// E.164 (`+14155550123`), or the national number with `country`.
    pub phone: String,
    /// ISO 3166 alpha-2 country of a national number.
    pub country: Option<String>,
    /// Up to 100 characters.
    pub name: Option<String>,
    /// The visitor agreed to be called at this number; must be `true`.
    pub consent: bool,
    /// `en` or `zh`.
    pub locale: Option<String>,
}

/// A visitor's callback request, as the visitor sees it.
#[derive(Debug, Clone, Object)]
pub struct CallbackCreated {
    pub id: String,
    /// `calling` (an agent's phone is being asked now) or `scheduled` (an agent will call
    /// back later).
    pub status: String,
    /// The live status (server-sent events), authorised by the token in it.
    pub stream_url: String,
}

/// The visitor's status.
#[derive(Debug, Clone, Object)]
pub struct VisitorStatus {
    /// `calling`, `connected`, `completed`, `failed` (nobody could be reached now; an
    /// agent will call back) or `scheduled`.
    pub status: String,
}

#[derive(ApiResponse)]
pub enum CallbackAnswer {
    #[oai(status = 201)]
    Created(Json<CallbackCreated>),
}

problems!(
    /// Errors of the widget API.
    WidgetApiError { 400 => BadRequest, 401 => Unauthorized, 403 => Forbidden, 404 => NotFound, 409 => Conflict, 413 => PayloadTooLarge, 422 => UnprocessableEntity }
);

/// Whether an agent of the widget is reachable, remembered for two seconds per widget: a
/// busy site's page views must not each cost the routing queries.
async fn recently_available(ctx: &Ctx, w: &WidgetRow) -> Result<bool, Error> {
    use std::collections::HashMap;
    use std::sync::{LazyLock, Mutex};
    use std::time::Instant;
    static SEEN: LazyLock<Mutex<HashMap<String, (Instant, bool)>>> =
        LazyLock::new(Default::default);
    const FRESH: Duration = Duration::from_secs(2);
    if let Some((at, available)) = SEEN.lock().unwrap_or_else(|e| e.into_inner()).get(&w.id) {
        if at.elapsed() < FRESH {
            return Ok(*available);
        }
    }
    let available = !widgets::available_agents(ctx, w).await?.is_empty();
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    if seen.len() > 10_000 {
        seen.retain(|_, (at, _)| at.elapsed() < FRESH);
    }
    seen.insert(w.id.clone(), (Instant::now(), available));
    Ok(available)
}

#[OpenApi(tag = "Tags::WidgetApi")]
impl WidgetApi {
    /// Widget configuration
    ///
    /// Whether an agent can take a call now, the mode to show, texts and theme.
    #[oai(
        path = "/widget/v1/config",
        method = "get",
        operation_id = "widget_config"
    )]
    async fn config(
        &self,
        auth: WidgetKey,
        ctx: poem::web::Data<&Ctx>,
    ) -> Result<Json<WidgetConfig>, WidgetApiError> {
        let w = auth.0.widget;
        let open_now = widgets::open_now(&w, chrono::Utc::now());
        let available = open_now && recently_available(&ctx, &w).await?;
        let mode = if available {
            "call_now"
        } else if w.when_unavailable == WhenUnavailable::Callback {
            "callback"
        } else {
            "hidden"
        };
        let mut conn = ctx.db.acquire().await?;
        let org = pushdial_core::store::orgs::get(&mut conn, &w.org_id)
            .await?
            .ok_or(Error::NotFound("widget"))?;
        Ok(Json(WidgetConfig {
            widget_id: w.id,
            available,
            mode: mode.into(),
            open_now,
            country: org.country,
            allowed_countries: org.allowed_countries,
            theme: w.theme,
            texts: w.texts,
        }))
    }

    /// Request a callback
    ///
    /// When an agent is available now their phone is asked to call the visitor at once
    /// (`calling`; the phone always asks its user first: `confirm` is `required`);
    /// otherwise the request waits for an agent (`scheduled`), unless the widget is set to
    /// hide itself then (`409 unavailable`). A number the organization will not call is
    /// refused with `422 number_not_callable`, whatever the reason. Past the widget's
    /// hourly caps (`max_callbacks_per_hour`, `max_scheduled_callbacks_per_hour`) the
    /// answer is `429 rate_limited` with `Retry-After`; while the caps cannot be checked,
    /// `503 limits_unavailable` (they never fail open).
    #[oai(
        path = "/widget/v1/callbacks",
        method = "post",
        operation_id = "widget_create_callback"
    )]
    async fn create_callback(
        &self,
        auth: WidgetKey,
        req: &Request,
        ctx: poem::web::Data<&Ctx>,
        body: Json<CreateCallback>,
    ) -> Result<CallbackAnswer, WidgetApiError> {
        let w = auth.0.widget;
        let b = body.0;
        let (ip, user_agent) = crate::auth::client_of(req);
        let visitor = Visitor {
            key: crate::auth::client_key(req),
            ip,
            user_agent,
        };
        let input = CallbackInput {
            phone: b.phone,
            country: b.country,
            name: b.name,
            locale: b.locale,
            consent: b.consent,
        };
        // The widget's caps fail closed: their 503 tells the page when to come back.
        let taken = placing::request_callback(&ctx, &w, &visitor, input).await;
        let taken = crate::limits::retry_later(taken)?;
        Ok(CallbackAnswer::Created(Json(CallbackCreated {
            id: taken.id,
            status: taken.status.as_str().into(),
            stream_url: taken.stream_url,
        })))
    }

    /// Follow a callback request
    ///
    /// Server-sent events `status` (`{"status": …}`), first the current one, then each
    /// change; the stream ends at `completed`, `failed` or `scheduled`. Authorised by the
    /// token of `stream_url` (EventSource sends no headers).
    #[oai(
        path = "/widget/v1/callbacks/:callback_id/events",
        method = "get",
        operation_id = "widget_callback_events"
    )]
    async fn events(
        &self,
        req: &Request,
        ctx: poem::web::Data<&Ctx>,
        callback_id: Path<String>,
        /// The token from `stream_url`.
        token: Query<String>,
    ) -> Result<EventStream<BoxStream<'static, VisitorStatus>>, WidgetApiError> {
        // Fail closed should the gate ever not have run.
        if req.extensions().get::<WidgetRequest>().is_none() {
            return Err(origin_refused().into());
        }
        let token_hash = secrets::hash(&token.0);
        let mut conn = ctx.db.acquire().await?;
        store::callback_by_token(&mut conn, &callback_id.0, &token_hash)
            .await?
            .ok_or(Error::NotFound("callback"))?;
        drop(conn);
        let slot = std::sync::Arc::new(crate::streams::acquire(&[
            (format!("sse-cb:{}", callback_id.0), 2),
            (format!("sse-ip:{}", crate::auth::client_key(req)), 20),
        ])?);
        let ctx = ctx.0.clone();
        let id = callback_id.0.clone();
        let started = std::time::Instant::now();
        let stream = futures::stream::unfold(
            (ctx, id, token_hash, None::<&'static str>, false),
            move |(ctx, id, hash, last, done)| {
                // The stream's slot lives as long as the stream.
                let _slot = slot.clone();
                async move {
                    let _slot = _slot;
                    if done {
                        return None;
                    }
                    loop {
                        if last.is_some() {
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                        if started.elapsed() > Duration::from_secs(15 * 60) {
                            return None;
                        }
                        let row = match ctx.db.acquire().await {
                            Ok(mut conn) => store::callback_by_token(&mut conn, &id, &hash)
                                .await
                                .ok()
                                .flatten(),
                            Err(_) => None,
                        };
                        let Some(row) = row else {
                            last?;
                            continue;
                        };
                        let status = widgets::visitor_status(&row);
                        if last != Some(status) {
                            let done = widgets::is_final(status);
                            let item = VisitorStatus {
                                status: status.into(),
                            };
                            return Some((item, (ctx, id, hash, Some(status), done)));
                        }
                    }
                }
            },
        );
        Ok(EventStream::new(stream.boxed())
            .keep_alive(Duration::from_secs(15))
            .to_event(|s| poem::web::sse::Event::message(s.to_json_string()).event_type("status")))
    }
}
