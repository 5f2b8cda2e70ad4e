//! `/v1/widgets` (the embeddable widget's settings, owners and admins) and `/v1/callbacks`
//! (visitors' callback requests).

use chrono::{DateTime, Utc};
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{ApiResponse, Object, OpenApi};
use pushdial_core::access::Action;
use pushdial_core::ids::{self, Kind};
use pushdial_core::store::widgets::{
    self as store, CallbackRow, Routing, WhenUnavailable, WidgetRow, WidgetSettings,
};
use pushdial_core::{accounts, tenants, text, widgets, Ctx, Error};

use crate::auth::OrgAuth;
use crate::models::{List, Pagination};
use crate::problems;
use crate::Tags;

pub struct WidgetsApi;

/// A "call me" widget for the organization's websites.
#[derive(Debug, Clone, Object)]
pub struct Widget {
    pub id: String,
    /// Always `widget`.
    pub object: String,
    pub name: String,
    /// The key in the widget's tag (public by design: it only opens the widget API).
    pub publishable_key: String,
    /// The only origins (`https://shop.example`) whose pages may use the widget.
    pub allowed_origins: Vec<String>,
    /// The agents who take its calls; empty: every agent of the organization.
    pub agent_ids: Vec<String>,
    /// `longest_idle` or `round_robin`.
    pub routing: String,
    /// `{"timezone": "Europe/London", "days": {"mon": [["09:00", "17:30"]], …}}`; null:
    /// always open.
    pub business_hours: Option<serde_json::Value>,
    /// Outside hours or with nobody reachable: `callback` (take a request for later) or
    /// `hidden` (show nothing).
    pub when_unavailable: String,
    /// `{"color": "#rrggbb", "position": "bottom-right" | "bottom-left"}`.
    pub theme: serde_json::Value,
    /// The tenant's texts by language (`en`, `zh`), overriding the widget's defaults.
    pub texts: serde_json::Value,
    /// At most this many callbacks an hour ring an agent's phone now (1 to 1000, default
    /// 30); past it a visitor is answered `429 rate_limited`. The publishable key is
    /// public and an origin check binds browsers only, so this is what bounds a script
    /// using the widget.
    pub max_callbacks_per_hour: i32,
    /// At most this many callback requests an hour are kept for later (`scheduled`: while
    /// nobody is available; 1 to 1000, default 30).
    pub max_scheduled_callbacks_per_hour: i32,
    pub created_at: DateTime<Utc>,
    /// The tag to paste into the website.
    pub embed_snippet: String,
}

impl Widget {
    fn new(w: WidgetRow, ctx: &Ctx) -> Self {
        let embed_snippet = format!(
            "<script src=\"{}/widget.js\" data-key=\"{}\" async></script>",
            ctx.config.public_url(),
            w.publishable_key
        );
        Widget {
            id: w.id,
            object: "widget".into(),
            name: w.name,
            publishable_key: w.publishable_key,
            allowed_origins: w.allowed_origins,
            agent_ids: w.agent_ids,
            routing: w.routing.as_str().into(),
            business_hours: w.business_hours,
            when_unavailable: w.when_unavailable.as_str().into(),
            theme: w.theme,
            texts: w.texts,
            max_callbacks_per_hour: w.max_callbacks_per_hour,
            max_scheduled_callbacks_per_hour: w.max_scheduled_callbacks_per_hour,
            created_at: w.created_at,
            embed_snippet,
        }
    }
}

/// Creates a widget (with its own publishable key).
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct CreateWidget {
    /// 1 to 100 characters.
    pub name: String,
    /// Exact origins (`https://shop.example`, up to 20).
    pub allowed_origins: Vec<String>,
    pub agent_ids: Option<Vec<String>>,
    pub routing: Option<String>,
    pub business_hours: Option<serde_json::Value>,
    pub when_unavailable: Option<String>,
    pub theme: Option<serde_json::Value>,
    pub texts: Option<serde_json::Value>,
    /// 1 to 1000 (default 30).
    pub max_callbacks_per_hour: Option<i64>,
    /// 1 to 1000 (default 30).
    pub max_scheduled_callbacks_per_hour: Option<i64>,
}

/// Changes a widget; absent fields stay as they are (`business_hours: null`: always open).
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct UpdateWidget {
    pub name: Option<String>,
    pub allowed_origins: Option<Vec<String>>,
    pub agent_ids: Option<Vec<String>>,
    pub routing: Option<String>,
    pub business_hours: MaybeUndefined<serde_json::Value>,
    pub when_unavailable: Option<String>,
    pub theme: Option<serde_json::Value>,
    pub texts: Option<serde_json::Value>,
    /// 1 to 1000 (default 30).
    pub max_callbacks_per_hour: Option<i64>,
    /// 1 to 1000 (default 30).
    pub max_scheduled_callbacks_per_hour: Option<i64>,
}

/// A visitor's request to be called.
#[derive(Debug, Clone, Object)]
pub struct Callback {
    pub id: String,
    /// Always `callback`.
    pub object: String,
    pub widget_id: String,
    /// The visitor's number (E.164).
    pub phone: String,
    pub name: Option<String>,
    /// `calling`, `connected`, `completed`, `failed` (nobody answered: call them back) or
    /// `scheduled` (taken while nobody was available: call them back).
    pub status: String,
    /// The call placed for it, if any.
    pub call_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<CallbackRow> for Callback {
    fn from(c: CallbackRow) -> Self {
        Callback {
            status: widgets::visitor_status(&c).into(),
            id: c.id,
            object: "callback".into(),
            widget_id: c.widget_id,
            phone: c.phone,
            name: c.name,
            call_id: c.call_id,
            created_at: c.created_at,
        }
    }
}

#[derive(ApiResponse)]
pub enum WidgetCreated {
    #[oai(status = 201)]
    Created(Json<Widget>),
}

problems!(
    /// Errors of widget endpoints.
    WidgetError { 400 => BadRequest, 401 => Unauthorized, 403 => Forbidden, 404 => NotFound, 413 => PayloadTooLarge }
);

/// Checks every setting; `agent_ids` must be agents of the organization.
#[allow(clippy::too_many_arguments)] // one argument per setting
async fn settings(
    ctx: &Ctx,
    org_id: &str,
    name: &str,
    origins: Vec<String>,
    agent_ids: Vec<String>,
    routing: String,
    business_hours: Option<serde_json::Value>,
    when_unavailable: String,
    theme: serde_json::Value,
    texts: serde_json::Value,
    caps: (Option<i64>, Option<i64>),
) -> Result<WidgetSettings, Error> {
    let name = text::required("name", name, 100)?.to_owned();
    if origins.is_empty() || origins.len() > 20 {
        return Err(Error::invalid("allowed_origins", "1 to 20 origins"));
    }
    let allowed_origins = origins
        .iter()
        .map(|o| widgets::check_origin("allowed_origins", o))
        .collect::<Result<Vec<_>, _>>()?;
    if agent_ids.len() > 100 {
        return Err(Error::invalid("agent_ids", "at most 100 agents"));
    }
    let agent_ids = agent_ids
        .iter()
        .map(|a| ids::parse(Kind::Agent, "agent_ids", a))
        .collect::<Result<Vec<_>, _>>()?;
    let routing = Routing::from_name(&routing)
        .ok_or_else(|| Error::invalid("routing", "longest_idle or round_robin"))?;
    let when_unavailable = WhenUnavailable::from_name(&when_unavailable)
        .ok_or_else(|| Error::invalid("when_unavailable", "callback or hidden"))?;
    let business_hours = match business_hours {
        Some(h) => widgets::check_hours(&h)?,
        None => None,
    };
    let theme = widgets::check_theme(&theme)?;
    let texts = widgets::check_texts(&texts)?;
    let max_callbacks_per_hour = widgets::check_cap("max_callbacks_per_hour", caps.0)?;
    let max_scheduled_callbacks_per_hour =
        widgets::check_cap("max_scheduled_callbacks_per_hour", caps.1)?;
    let mut conn = ctx.db.acquire().await?;
    for a in &agent_ids {
        if pushdial_core::store::agents::get(&mut conn, org_id, a)
            .await?
            .is_none()
        {
            return Err(Error::invalid(
                "agent_ids",
                format!("no agent {a} in this organization"),
            ));
        }
    }
    Ok(WidgetSettings {
        name,
        allowed_origins,
        agent_ids,
        routing,
        business_hours,
        when_unavailable,
        theme,
        texts,
        max_callbacks_per_hour,
        max_scheduled_callbacks_per_hour,
    })
}

async fn one(ctx: &Ctx, org_id: &str, id: &str) -> Result<WidgetRow, Error> {
    let id = ids::parse(Kind::Widget, "widget_id", id)?;
    let mut conn = ctx.db.acquire().await?;
    store::get(&mut conn, org_id, &id)
        .await?
        .ok_or(Error::NotFound("widget"))
}

#[OpenApi(tag = "Tags::Widgets")]
impl WidgetsApi {
    /// Create a widget
    ///
    /// With its own publishable key; the answer has the tag to embed.
    #[oai(path = "/v1/widgets", method = "post", operation_id = "create_widget")]
    async fn create(
        &self,
        auth: OrgAuth,
        ctx: poem::web::Data<&Ctx>,
        body: Json<CreateWidget>,
    ) -> Result<WidgetCreated, WidgetError> {
        let b = body.0;
        auth.require(Action::ManageWidgets)?;
        let s = settings(
            &ctx,
            &auth.org_id,
            &b.name,
            b.allowed_origins,
            b.agent_ids.unwrap_or_default(),
            b.routing
                .unwrap_or_else(|| Routing::LongestIdle.as_str().into()),
            b.business_hours.filter(|h| !h.is_null()),
            b.when_unavailable
                .unwrap_or_else(|| WhenUnavailable::Callback.as_str().into()),
            b.theme.unwrap_or_default(),
            b.texts.unwrap_or_default(),
            (b.max_callbacks_per_hour, b.max_scheduled_callbacks_per_hour),
        )
        .await?;
        let mut tx = ctx.db.begin().await?;
        let key_name = format!("Widget: {}", s.name);
        let (key, key_row) = tenants::new_key(
            &mut tx,
            &auth.org_id,
            "publishable",
            &key_name,
            auth.acting_user(),
        )
        .await?;
        let row = store::insert(
            &mut tx,
            &ids::new_id(Kind::Widget),
            &auth.org_id,
            &key_row.id,
            &key,
            &s,
        )
        .await?;
        let mut entry = auth.audit("widget.created", "widget", &row.id);
        entry.data =
            serde_json::json!({ "name": row.name, "allowed_origins": row.allowed_origins });
        accounts::audit(&mut tx, &entry).await?;
        tx.commit().await?;
        Ok(WidgetCreated::Created(Json(Widget::new(row, &ctx))))
    }

    /// List widgets
    #[oai(path = "/v1/widgets", method = "get", operation_id = "list_widgets")]
    async fn list(
        &self,
        auth: OrgAuth,
        ctx: poem::web::Data<&Ctx>,
        pagination: Pagination,
    ) -> Result<Json<List<Widget>>, WidgetError> {
        let page = pagination.page(Kind::Widget)?;
        auth.require(Action::ManageWidgets)?;
        let mut conn = ctx.db.acquire().await?;
        let rows = store::list(&mut conn, &auth.org_id, &page).await?;
        Ok(Json(List::new(
            rows.data
                .into_iter()
                .map(|w| Widget::new(w, &ctx))
                .collect(),
            rows.has_more,
        )))
    }

    /// Retrieve a widget
    #[oai(
        path = "/v1/widgets/:widget_id",
        method = "get",
        operation_id = "get_widget"
    )]
    async fn get(
        &self,
        auth: OrgAuth,
        ctx: poem::web::Data<&Ctx>,
        widget_id: Path<String>,
    ) -> Result<Json<Widget>, WidgetError> {
        auth.require(Action::ManageWidgets)?;
        Ok(Json(Widget::new(
            one(&ctx, &auth.org_id, &widget_id.0).await?,
            &ctx,
        )))
    }

    /// Update a widget
    #[oai(
        path = "/v1/widgets/:widget_id",
        method = "patch",
        operation_id = "update_widget"
    )]
    async fn update(
        &self,
        auth: OrgAuth,
        ctx: poem::web::Data<&Ctx>,
        widget_id: Path<String>,
        body: Json<UpdateWidget>,
    ) -> Result<Json<Widget>, WidgetError> {
        auth.require(Action::ManageWidgets)?;
        let current = one(&ctx, &auth.org_id, &widget_id.0).await?;
        let b = body.0;
        let s = settings(
            &ctx,
            &auth.org_id,
            b.name.as_deref().unwrap_or(&current.name),
            b.allowed_origins.unwrap_or(current.allowed_origins),
            b.agent_ids.unwrap_or(current.agent_ids),
            b.routing.unwrap_or_else(|| current.routing.as_str().into()),
            match b.business_hours {
                MaybeUndefined::Undefined => current.business_hours,
                MaybeUndefined::Null => None,
                MaybeUndefined::Value(h) => Some(h),
            },
            b.when_unavailable
                .unwrap_or_else(|| current.when_unavailable.as_str().into()),
            b.theme.unwrap_or(current.theme),
            b.texts.unwrap_or(current.texts),
            (
                b.max_callbacks_per_hour
                    .or(Some(current.max_callbacks_per_hour.into())),
                b.max_scheduled_callbacks_per_hour
                    .or(Some(current.max_scheduled_callbacks_per_hour.into())),
            ),
        )
        .await?;
        let mut tx = ctx.db.begin().await?;
        let row = store::update(&mut tx, &auth.org_id, &current.id, &s)
            .await?
            .ok_or(Error::NotFound("widget"))?;
        let mut entry = auth.audit("widget.updated", "widget", &row.id);
        entry.data = serde_json::json!({
            "allowed_origins": row.allowed_origins,
            "max_callbacks_per_hour": row.max_callbacks_per_hour,
            "max_scheduled_callbacks_per_hour": row.max_scheduled_callbacks_per_hour,
        });
        accounts::audit(&mut tx, &entry).await?;
        tx.commit().await?;
        Ok(Json(Widget::new(row, &ctx)))
    }

    /// Delete a widget
    ///
    /// Its tag stops working at once (its publishable key is revoked).
    #[oai(
        path = "/v1/widgets/:widget_id",
        method = "delete",
        operation_id = "delete_widget"
    )]
    async fn delete(
        &self,
        auth: OrgAuth,
        ctx: poem::web::Data<&Ctx>,
        widget_id: Path<String>,
    ) -> Result<Json<Widget>, WidgetError> {
        auth.require(Action::ManageWidgets)?;
        let id = ids::parse(Kind::Widget, "widget_id", &widget_id.0)?;
        let mut tx = ctx.db.begin().await?;
        let row = store::delete(&mut tx, &auth.org_id, &id)
            .await?
            .ok_or(Error::NotFound("widget"))?;
        accounts::audit(&mut tx, &auth.audit("widget.deleted", "widget", &row.id)).await?;
        tx.commit().await?;
        Ok(Json(Widget::new(row, &ctx)))
    }

    /// List visitors' callback requests
    ///
    /// Newest first, with their status: `failed` and `scheduled` ones wait for an agent to
    /// call back.
    #[oai(
        path = "/v1/callbacks",
        method = "get",
        operation_id = "list_callbacks"
    )]
    async fn callbacks(
        &self,
        auth: OrgAuth,
        ctx: poem::web::Data<&Ctx>,
        pagination: Pagination,
    ) -> Result<Json<List<Callback>>, WidgetError> {
        let page = pagination.page(Kind::Callback)?;
        let mut conn = ctx.db.acquire().await?;
        // An agent sees the requests nobody took yet and those whose call was theirs.
        let rows = store::callbacks(&mut conn, &auth.org_id, auth.own_agent(), &page).await?;
        Ok(Json(List::from(rows)))
    }
}
