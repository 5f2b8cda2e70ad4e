//! `/v1/webhook_endpoints` and `/v1/events`: where an organization's events are delivered,
//! the signing secret (shown once, rotated with a grace period), test sends, the attempt
//! log, resends, and the event log itself for tenants who poll.

use chrono::{DateTime, Utc};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{ApiResponse, Object, OpenApi};
use pushdial_core::access::Action;
use pushdial_core::crypto::Bound;
use pushdial_core::egress::EgressError;
use pushdial_core::ids::{self, Kind};
use pushdial_core::store::webhooks::{self as store, EndpointRow, EndpointUpdate, NewEndpoint};
use pushdial_core::webhooks::{signing, EVENT_TYPES};
use pushdial_core::{text, Ctx, Error};

use crate::auth::OrgAuth;
use crate::models::{List, Pagination};
use crate::problems;
use crate::Tags;
use pushdial_core::accounts;

pub struct WebhooksApi;

/// Where events are delivered.
#[derive(Debug, Clone, Object)]
pub struct WebhookEndpoint {
    pub id: String,
    /// Always `webhook_endpoint`.
    pub object: String,
    pub url: String,
    pub description: Option<String>,
    /// The event types delivered; empty means all.
    pub event_types: Vec<String>,
    pub enabled: bool,
    /// Why the endpoint was disabled (410 Gone, failing for too long), if it was.
    pub disabled_reason: Option<String>,
    /// Start of the current run of failed deliveries.
    pub failing_since: Option<DateTime<Utc>>,
    /// Most deliveries per second to this endpoint, if limited.
    pub rate_limit_per_s: Option<i32>,
    /// Messages waiting for delivery to this endpoint (a first attempt or a retry): its
    /// backlog. A slow endpoint gets a few attempts at once (4 by default), and the rest
    /// wait here.
    pub pending_messages: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The signing secret (`whsec_…`): only in the answer that creates or rotates it,
    /// `null` elsewhere.
    pub secret: Option<String>,
}

impl From<EndpointRow> for WebhookEndpoint {
    fn from(e: EndpointRow) -> Self {
        WebhookEndpoint {
            id: e.id,
            object: "webhook_endpoint".into(),
            url: e.url,
            description: e.description,
            event_types: e.event_types,
            enabled: e.enabled,
            disabled_reason: e.disabled_reason,
            failing_since: e.failing_since,
            rate_limit_per_s: e.rate_limit_per_s,
            pending_messages: e.pending_messages,
            created_at: e.created_at,
            updated_at: e.updated_at,
            secret: None,
        }
    }
}

/// Creates a webhook endpoint.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct CreateWebhookEndpoint {
    /// `https://…` (or `http://…`) on a public address.
    pub url: String,
    pub description: Option<String>,
    /// Event types to deliver; empty or absent: all.
    pub event_types: Option<Vec<String>>,
    /// Default true.
    pub enabled: Option<bool>,
    /// Most deliveries per second (1 to 10000); absent: unlimited.
    pub rate_limit_per_s: Option<i32>,
}

/// Changes a webhook endpoint; absent fields stay as they are.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct UpdateWebhookEndpoint {
    pub url: Option<String>,
    /// `null` clears it.
    pub description: MaybeUndefined<String>,
    pub event_types: Option<Vec<String>>,
    /// Re-enabling clears `disabled_reason` and the failure run.
    pub enabled: Option<bool>,
    /// Most deliveries per second (1 to 10000); `null` removes the limit.
    pub rate_limit_per_s: MaybeUndefined<i32>,
}

/// Rotates the signing secret.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct RotateSecret {
    /// How long the old secret keeps signing, in seconds: 0 to 604800 (7 days), default
    /// 86400 (24 h).
    pub grace_period_s: Option<i64>,
}

/// An event of the organization, as delivered to webhooks.
#[derive(Debug, Clone, Object)]
pub struct Event {
    pub id: String,
    /// Always `event`.
    pub object: String,
    #[oai(rename = "type")]
    pub kind: String,
    pub created_at: DateTime<Utc>,
    /// The call, device or endpoint the event is about.
    pub data: serde_json::Value,
}

impl From<store::EventRow> for Event {
    fn from(e: store::EventRow) -> Self {
        Event {
            id: e.id,
            object: "event".into(),
            kind: e.kind,
            created_at: e.created_at,
            data: e.data,
        }
    }
}

/// One delivery attempt.
#[derive(Debug, Clone, Object)]
pub struct WebhookAttempt {
    pub id: i64,
    /// Always `webhook_attempt`.
    pub object: String,
    pub endpoint_id: String,
    pub event_id: String,
    /// 1 for the first attempt of this event to this endpoint.
    pub attempt: i32,
    /// The receiver's HTTP status, if it answered.
    pub status_code: Option<i32>,
    /// The first 4 KiB of the receiver's answer.
    pub response_body: Option<String>,
    /// Why the attempt failed before an answer (timeout, refused address, …).
    pub error: Option<String>,
    pub duration_ms: i32,
    pub created_at: DateTime<Utc>,
}

/// Resends what failed.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct Recover {
    /// Resend every delivery to this endpoint that failed since this instant.
    pub since: DateTime<Utc>,
}

/// Deliveries queued again by a recovery.
#[derive(Debug, Object)]
pub struct Recovery {
    /// Always `webhook_recovery`.
    pub object: String,
    pub endpoint_id: String,
    /// How many deliveries were queued again.
    pub queued: i64,
}

#[derive(ApiResponse)]
pub enum RecoveryQueued {
    /// The failed deliveries will be sent again in the background, in their original order.
    #[oai(status = 202)]
    Accepted(Json<Recovery>),
}

/// An event accepted for delivery.
#[derive(Debug, Object)]
pub struct Queued {
    /// Always `webhook_delivery`.
    pub object: String,
    pub event_id: String,
    pub endpoint_id: String,
}

#[derive(ApiResponse)]
pub enum EndpointCreated {
    #[oai(status = 201)]
    Created(Json<WebhookEndpoint>),
}

#[derive(ApiResponse)]
pub enum DeliveryQueued {
    /// The event will be delivered (and retried) in the background.
    #[oai(status = 202)]
    Accepted(Json<Queued>),
}

problems!(
    /// Errors of webhook endpoint changes.
    EndpointWriteError {
        400 => BadRequest, 401 => Unauthorized, 403 => Forbidden, 404 => NotFound,
        409 => Conflict, 413 => PayloadTooLarge, 422 => UnprocessableEntity
    }
);
problems!(
    /// Errors of reading webhooks and events.
    WebhookReadError { 400 => BadRequest, 401 => Unauthorized, 403 => Forbidden, 404 => NotFound }
);

fn check_url(ctx: &Ctx, url: &str) -> Result<String, Error> {
    let url = text::required("url", url, 2048)?;
    match ctx.egress.check_url(url) {
        Ok(u) => Ok(u.to_string()),
        Err(e @ (EgressError::ForbiddenHost(_) | EgressError::ForbiddenAddress(_))) => {
            Err(Error::Unprocessable {
                code: "webhook_url_forbidden",
                message: format!("url: {e}"),
            })
        }
        Err(e) => Err(Error::invalid("url", e.to_string())),
    }
}

fn check_rate(rate: i32) -> Result<i32, Error> {
    if (1..=10_000).contains(&rate) {
        Ok(rate)
    } else {
        Err(Error::invalid(
            "rate_limit_per_s",
            "1 to 10000 deliveries per second",
        ))
    }
}

fn check_event_types(types: Vec<String>) -> Result<Vec<String>, Error> {
    if let Some(bad) = types.iter().find(|t| !EVENT_TYPES.contains(&t.as_str())) {
        return Err(Error::invalid(
            "event_types",
            format!("unknown event type `{bad}`"),
        ));
    }
    let mut types = types;
    types.sort();
    types.dedup();
    Ok(types)
}

async fn endpoint(ctx: &Ctx, org_id: &str, id: &str) -> Result<EndpointRow, Error> {
    let id = ids::parse(Kind::WebhookEndpoint, "endpoint_id", id)?;
    let mut conn = ctx.db.acquire().await?;
    store::get_endpoint(&mut conn, org_id, &id)
        .await?
        .ok_or(Error::NotFound("webhook endpoint"))
}

/// An endpoint that may be sent to (test, resend and recover need it enabled).
async fn enabled_endpoint(ctx: &Ctx, org_id: &str, id: &str) -> Result<EndpointRow, Error> {
    let current = endpoint(ctx, org_id, id).await?;
    if !current.enabled {
        return Err(Error::conflict(
            "endpoint_disabled",
            "enable the endpoint first",
        ));
    }
    Ok(current)
}

/// Takes one of the organization's sends on demand (test, resend, recover) for this
/// minute: each queues a delivery that may hold a worker slot for the delivery timeout, so
/// they are bounded beside the API's own limit (`429 rate_limited`, `Retry-After`). Fails
/// open while Redis is down, as the API's limits do.
async fn take_send(ctx: &Ctx, org_id: &str) -> Result<(), Error> {
    let limit = pushdial_core::limits::per_minute(ctx.config.limit_webhook_sends_per_minute);
    pushdial_core::limits::take(ctx, "webhook_sends", org_id, limit).await?;
    Ok(())
}

/// The answer of an accepted delivery.
fn queued(event_id: String, endpoint_id: String) -> DeliveryQueued {
    DeliveryQueued::Accepted(Json(Queued {
        object: "webhook_delivery".into(),
        event_id,
        endpoint_id,
    }))
}

/// Seals an endpoint's signing secret, bound to the endpoint's row.
fn seal(ctx: &Ctx, org_id: &str, endpoint_id: &str, secret: &str) -> Result<Vec<u8>, Error> {
    let bound = Bound::WebhookSecret {
        org_id,
        endpoint_id,
    };
    ctx.secrets
        .seal(bound, secret.as_bytes())
        .map_err(Error::Internal)
}

/// Queues one more message of an event to one endpoint, with its delivery job.
async fn queue_message(
    tx: &mut sqlx::PgConnection,
    org_id: &str,
    event_id: &str,
    kind: &str,
    ordering_key: Option<&str>,
    endpoint_id: &str,
) -> Result<(), Error> {
    let messages =
        store::fan_out(tx, event_id, org_id, kind, ordering_key, Some(endpoint_id)).await?;
    pushdial_core::queue::enqueue_deliveries(tx, &messages).await?;
    Ok(())
}

#[OpenApi(tag = "Tags::Webhooks")]
impl WebhooksApi {
    /// Create a webhook endpoint
    ///
    /// The answer carries the signing secret; it is not shown again. An organization has
    /// at most 20 endpoints by default (its plan may allow another number); past it the
    /// answer is `409 endpoint_limit_reached`.
    #[oai(
        path = "/v1/webhook_endpoints",
        method = "post",
        operation_id = "create_webhook_endpoint"
    )]
    async fn create(
        &self,
        auth: OrgAuth,
        ctx: poem::web::Data<&Ctx>,
        body: Json<CreateWebhookEndpoint>,
    ) -> Result<EndpointCreated, EndpointWriteError> {
        auth.require(Action::ManageWebhooks)?;
        let b = body.0;
        let url = check_url(&ctx, &b.url)?;
        let description = text::optional("description", b.description.as_deref(), 500)?;
        let event_types = check_event_types(b.event_types.unwrap_or_default())?;
        let secret = signing::new_secret();
        let id = ids::new_id(Kind::WebhookEndpoint);
        let mut conn = ctx.db.begin().await?;
        let (count, plan) = store::lock_endpoint_count(&mut conn, &auth.org_id)
            .await?
            .ok_or(Error::NotFound("organization"))?;
        let cap = plan.map_or(i64::from(ctx.config.limit_webhook_endpoints), i64::from);
        if count >= cap {
            return Err(Error::conflict(
                "endpoint_limit_reached",
                format!("the organization has {count} webhook endpoints, its plan's limit: delete one first"),
            )
            .into());
        }
        let row = store::insert_endpoint(
            &mut conn,
            NewEndpoint {
                id: &id,
                org_id: &auth.org_id,
                url: &url,
                description,
                event_types: &event_types,
                enabled: b.enabled.unwrap_or(true),
                secret_sealed: &seal(&ctx, &auth.org_id, &id, &secret)?,
                rate_limit_per_s: b.rate_limit_per_s.map(check_rate).transpose()?,
            },
        )
        .await?;
        let mut entry = auth.audit("webhook_endpoint.created", "webhook_endpoint", &row.id);
        entry.data = serde_json::json!({ "url": row.url });
        accounts::audit(&mut conn, &entry).await?;
        conn.commit().await?;
        let mut out = WebhookEndpoint::from(row);
        out.secret = Some(secret);
        Ok(EndpointCreated::Created(Json(out)))
    }

    /// List webhook endpoints
    #[oai(
        path = "/v1/webhook_endpoints",
        method = "get",
        operation_id = "list_webhook_endpoints"
    )]
    async fn list(
        &self,
        auth: OrgAuth,
        ctx: poem::web::Data<&Ctx>,
        pagination: Pagination,
    ) -> Result<Json<List<WebhookEndpoint>>, WebhookReadError> {
        auth.require(Action::ManageWebhooks)?;
        let page = pagination.page(Kind::WebhookEndpoint)?;
        let mut conn = ctx.db.acquire().await?;
        let rows = store::list_endpoints(&mut conn, &auth.org_id, &page).await?;
        Ok(Json(List::from(rows)))
    }

    /// Retrieve a webhook endpoint
    #[oai(
        path = "/v1/webhook_endpoints/:endpoint_id",
        method = "get",
        operation_id = "get_webhook_endpoint"
    )]
    async fn get(
        &self,
        auth: OrgAuth,
        ctx: poem::web::Data<&Ctx>,
        endpoint_id: Path<String>,
    ) -> Result<Json<WebhookEndpoint>, WebhookReadError> {
        auth.require(Action::ManageWebhooks)?;
        Ok(Json(
            endpoint(&ctx, &auth.org_id, &endpoint_id.0).await?.into(),
        ))
    }

    /// Update a webhook endpoint
    #[oai(
        path = "/v1/webhook_endpoints/:endpoint_id",
        method = "patch",
        operation_id = "update_webhook_endpoint"
    )]
    async fn update(
        &self,
        auth: OrgAuth,
        ctx: poem::web::Data<&Ctx>,
        endpoint_id: Path<String>,
        body: Json<UpdateWebhookEndpoint>,
    ) -> Result<Json<WebhookEndpoint>, EndpointWriteError> {
        auth.require(Action::ManageWebhooks)?;
        let current = endpoint(&ctx, &auth.org_id, &endpoint_id.0).await?;
        let b = body.0;
        let update = EndpointUpdate {
            url: b.url.map(|u| check_url(&ctx, &u)).transpose()?,
            description: match b.description {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(d) => {
                    Some(Some(text::required("description", &d, 500)?.to_owned()))
                }
            },
            event_types: b.event_types.map(check_event_types).transpose()?,
            enabled: b.enabled,
            rate_limit_per_s: match b.rate_limit_per_s {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(r) => Some(Some(check_rate(r)?)),
            },
        };
        let mut conn = ctx.db.begin().await?;
        let row = store::update_endpoint(&mut conn, &auth.org_id, &current.id, &update)
            .await?
            .ok_or(Error::NotFound("webhook endpoint"))?;
        if update.enabled == Some(false) {
            // Nothing more is sent to a disabled endpoint; `recover` can send it later.
            store::fail_pending(&mut conn, &auth.org_id, &current.id).await?;
        }
        let mut entry = auth.audit("webhook_endpoint.updated", "webhook_endpoint", &row.id);
        entry.data = serde_json::json!({ "url": row.url, "enabled": row.enabled });
        accounts::audit(&mut conn, &entry).await?;
        conn.commit().await?;
        Ok(Json(row.into()))
    }

    /// Delete a webhook endpoint
    ///
    /// Its pending deliveries are dropped.
    #[oai(
        path = "/v1/webhook_endpoints/:endpoint_id",
        method = "delete",
        operation_id = "delete_webhook_endpoint"
    )]
    async fn delete(
        &self,
        auth: OrgAuth,
        ctx: poem::web::Data<&Ctx>,
        endpoint_id: Path<String>,
    ) -> Result<Json<WebhookEndpoint>, WebhookReadError> {
        auth.require(Action::ManageWebhooks)?;
        let current = endpoint(&ctx, &auth.org_id, &endpoint_id.0).await?;
        let mut conn = ctx.db.begin().await?;
        store::delete_endpoint(&mut conn, &auth.org_id, &current.id).await?;
        let entry = auth.audit("webhook_endpoint.deleted", "webhook_endpoint", &current.id);
        accounts::audit(&mut conn, &entry).await?;
        conn.commit().await?;
        Ok(Json(current.into()))
    }

    /// Rotate the signing secret
    ///
    /// Returns the new secret (shown once). The old secret keeps signing alongside it for
    /// the grace period, so receivers can switch without losing a delivery.
    #[oai(
        path = "/v1/webhook_endpoints/:endpoint_id/rotate_secret",
        method = "post",
        operation_id = "rotate_webhook_secret"
    )]
    async fn rotate(
        &self,
        auth: OrgAuth,
        ctx: poem::web::Data<&Ctx>,
        endpoint_id: Path<String>,
        body: Json<RotateSecret>,
    ) -> Result<Json<WebhookEndpoint>, EndpointWriteError> {
        auth.require(Action::ManageWebhooks)?;
        let grace = body.0.grace_period_s.unwrap_or(86_400);
        if !(0..=7 * 86_400).contains(&grace) {
            return Err(Error::invalid("grace_period_s", "0 to 604800 seconds (7 days)").into());
        }
        let current = endpoint(&ctx, &auth.org_id, &endpoint_id.0).await?;
        let secret = signing::new_secret();
        let until = Utc::now() + chrono::Duration::seconds(grace);
        let mut conn = ctx.db.begin().await?;
        store::rotate_secret(
            &mut conn,
            &auth.org_id,
            &current.id,
            &seal(&ctx, &auth.org_id, &current.id, &secret)?,
            until,
        )
        .await?;
        let row = store::get_endpoint(&mut conn, &auth.org_id, &current.id)
            .await?
            .ok_or(Error::NotFound("webhook endpoint"))?;
        let mut entry = auth.audit(
            "webhook_endpoint.secret_rotated",
            "webhook_endpoint",
            &row.id,
        );
        entry.data = serde_json::json!({ "old_secret_valid_until": until });
        accounts::audit(&mut conn, &entry).await?;
        conn.commit().await?;
        let mut out = WebhookEndpoint::from(row);
        out.secret = Some(secret);
        Ok(Json(out))
    }

    /// Send a test event
    ///
    /// Delivers a `webhook.test` event to this endpoint only.
    ///
    /// Sends on demand (test, resend, recover) are limited per organization (60 a minute
    /// by default); past it the answer is `429 rate_limited` with `Retry-After`.
    #[oai(
        path = "/v1/webhook_endpoints/:endpoint_id/test",
        method = "post",
        operation_id = "test_webhook_endpoint"
    )]
    async fn test(
        &self,
        auth: OrgAuth,
        ctx: poem::web::Data<&Ctx>,
        endpoint_id: Path<String>,
    ) -> Result<DeliveryQueued, EndpointWriteError> {
        auth.require(Action::ManageWebhooks)?;
        let current = enabled_endpoint(&ctx, &auth.org_id, &endpoint_id.0).await?;
        take_send(&ctx, &auth.org_id).await?;
        let event_id = ids::new_id(Kind::Event);
        let data = serde_json::json!({ "endpoint_id": current.id, "message": "This is a test event from pushdial." });
        let mut tx = ctx.db.begin().await?;
        store::insert_event(
            &mut tx,
            &event_id,
            &auth.org_id,
            "webhook.test",
            None,
            &data,
        )
        .await?;
        queue_message(
            &mut tx,
            &auth.org_id,
            &event_id,
            "webhook.test",
            None,
            &current.id,
        )
        .await?;
        tx.commit().await?;
        ctx.wake_workers().await;
        Ok(queued(event_id, current.id))
    }

    /// Resend an event to an endpoint
    ///
    /// Queues a new delivery of the event (after the call's earlier events), or, if one is
    /// still pending, tries it now.
    ///
    /// Sends on demand (test, resend, recover) are limited per organization (60 a minute
    /// by default); past it the answer is `429 rate_limited` with `Retry-After`.
    #[oai(
        path = "/v1/webhook_endpoints/:endpoint_id/events/:event_id/resend",
        method = "post",
        operation_id = "resend_webhook_event"
    )]
    async fn resend(
        &self,
        auth: OrgAuth,
        ctx: poem::web::Data<&Ctx>,
        endpoint_id: Path<String>,
        event_id: Path<String>,
    ) -> Result<DeliveryQueued, EndpointWriteError> {
        auth.require(Action::ManageWebhooks)?;
        let current = enabled_endpoint(&ctx, &auth.org_id, &endpoint_id.0).await?;
        let event_id = ids::parse(Kind::Event, "event_id", &event_id.0)?;
        take_send(&ctx, &auth.org_id).await?;
        let mut tx = ctx.db.begin().await?;
        let event = store::get_event(&mut tx, &auth.org_id, &event_id)
            .await?
            .ok_or(Error::NotFound("event"))?;
        // A delivery still pending (waiting for its turn or its next attempt) is hurried
        // rather than duplicated; otherwise a new one joins the end of the call's chain.
        if !store::hurry_pending(&mut tx, &auth.org_id, &current.id, &event.id).await? {
            let key = event.ordering_key.as_deref();
            queue_message(
                &mut tx,
                &auth.org_id,
                &event.id,
                &event.kind,
                key,
                &current.id,
            )
            .await?;
        }
        tx.commit().await?;
        ctx.wake_workers().await;
        Ok(queued(event.id, current.id))
    }

    /// Recover failed deliveries
    ///
    /// Sends again every event whose delivery to this endpoint failed since `since` — after
    /// an outage on the receiver's side, say.
    ///
    /// Sends on demand (test, resend, recover) are limited per organization (60 a minute
    /// by default); past it the answer is `429 rate_limited` with `Retry-After`.
    #[oai(
        path = "/v1/webhook_endpoints/:endpoint_id/recover",
        method = "post",
        operation_id = "recover_webhook_endpoint"
    )]
    async fn recover(
        &self,
        auth: OrgAuth,
        ctx: poem::web::Data<&Ctx>,
        endpoint_id: Path<String>,
        body: Json<Recover>,
    ) -> Result<RecoveryQueued, EndpointWriteError> {
        auth.require(Action::ManageWebhooks)?;
        let current = enabled_endpoint(&ctx, &auth.org_id, &endpoint_id.0).await?;
        take_send(&ctx, &auth.org_id).await?;
        let mut tx = ctx.db.begin().await?;
        let messages = store::recover(&mut tx, &auth.org_id, &current.id, body.0.since).await?;
        pushdial_core::queue::enqueue_deliveries(&mut tx, &messages).await?;
        tx.commit().await?;
        ctx.wake_workers().await;
        Ok(RecoveryQueued::Accepted(Json(Recovery {
            object: "webhook_recovery".into(),
            endpoint_id: current.id,
            queued: messages.len() as i64,
        })))
    }

    /// List delivery attempts
    ///
    /// Newest first; `event_id` narrows to the attempts of one event.
    #[oai(
        path = "/v1/webhook_endpoints/:endpoint_id/attempts",
        method = "get",
        operation_id = "list_webhook_attempts"
    )]
    async fn attempts(
        &self,
        auth: OrgAuth,
        ctx: poem::web::Data<&Ctx>,
        endpoint_id: Path<String>,
        event_id: Query<Option<String>>,
        /// 1 to 100, default 20.
        limit: Query<Option<i64>>,
        /// An attempt id: return older attempts.
        starting_after: Query<Option<i64>>,
    ) -> Result<Json<List<WebhookAttempt>>, WebhookReadError> {
        auth.require(Action::ManageWebhooks)?;
        let current = endpoint(&ctx, &auth.org_id, &endpoint_id.0).await?;
        let limit = limit.0.unwrap_or(20);
        if !(1..=100).contains(&limit) {
            return Err(Error::invalid("limit", "must be between 1 and 100").into());
        }
        let event = event_id
            .0
            .map(|e| ids::parse(Kind::Event, "event_id", &e))
            .transpose()?;
        let mut conn = ctx.db.acquire().await?;
        let mut rows = store::list_attempts(
            &mut conn,
            &auth.org_id,
            &current.id,
            event.as_deref(),
            limit + 1,
            starting_after.0,
        )
        .await?;
        let has_more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let data = rows
            .into_iter()
            .map(|a| WebhookAttempt {
                id: a.id,
                object: "webhook_attempt".into(),
                endpoint_id: a.endpoint_id,
                event_id: a.event_id,
                attempt: a.attempt,
                status_code: a.status_code,
                response_body: a.response_body,
                error: a.error,
                duration_ms: a.duration_ms,
                created_at: a.created_at,
            })
            .collect();
        Ok(Json(List::new(data, has_more)))
    }

    /// List events
    ///
    /// The organization's events, newest first, for tenants who poll instead of (or as
    /// well as) receiving webhooks.
    #[oai(path = "/v1/events", method = "get", operation_id = "list_events")]
    async fn events(
        &self,
        auth: OrgAuth,
        ctx: poem::web::Data<&Ctx>,
        /// Only events of this type.
        #[oai(name = "type")]
        kind: Query<Option<String>>,
        pagination: Pagination,
    ) -> Result<Json<List<Event>>, WebhookReadError> {
        auth.require(Action::ManageWebhooks)?;
        if let Some(k) = &kind.0 {
            if !EVENT_TYPES.contains(&k.as_str()) {
                return Err(Error::invalid("type", format!("unknown event type `{k}`")).into());
            }
        }
        let page = pagination.page(Kind::Event)?;
        let mut conn = ctx.db.acquire().await?;
        let rows = store::list_events(&mut conn, &auth.org_id, kind.0.as_deref(), &page).await?;
        Ok(Json(List::from(rows)))
    }
}

/// What a `call.*` event says about the transition it reports.
#[derive(Debug, Clone, Object)]
pub struct Transition {
    pub status: String,
    /// `false` when the state was inferred from a later one.
    pub observed: bool,
    pub reason: Option<String>,
    pub device_id: Option<String>,
}

/// The call after a transition, with the transition.
#[derive(Debug, Clone, Object)]
pub struct CallEventData {
    #[oai(flatten)]
    pub call: crate::models::Call,
    pub event: Transition,
}

/// An endpoint that was disabled.
#[derive(Debug, Clone, Object)]
pub struct DisabledEndpoint {
    pub id: String,
    /// Always `webhook_endpoint`.
    pub object: String,
    pub url: String,
    pub disabled_reason: String,
}

/// The body of a test delivery.
#[derive(Debug, Clone, Object)]
pub struct TestData {
    pub endpoint_id: String,
    pub message: String,
}

macro_rules! event_payload {
    ($(#[$meta:meta])* $name:ident, $data:ty) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Object)]
        pub struct $name {
            /// The event id; also the `webhook-id` header, stable across retries.
            pub id: String,
            #[oai(rename = "type")]
            pub kind: String,
            pub created_at: DateTime<Utc>,
            pub org_id: String,
            pub data: $data,
        }
    };
}

event_payload!(
    /// A `call.*` event.
    CallWebhook,
    CallEventData
);
event_payload!(
    /// A `device.reachable` or `device.unreachable` event.
    DeviceWebhook,
    crate::models::Device
);
event_payload!(
    /// An `endpoint.disabled` event.
    EndpointDisabledWebhook,
    DisabledEndpoint
);
event_payload!(
    /// A `webhook.test` event.
    TestWebhook,
    TestData
);

// poem-openapi keys a `#[Webhook]` trait's operations by HTTP method, so each event type
// (all POSTs) gets a one-method trait; `Events` joins them into the document's `webhooks`.
macro_rules! event_webhooks {
    ($($trait_name:ident: $name:literal, $payload:ty, $doc:literal;)*) => {
        $(
            #[doc = $doc]
            #[poem_openapi::Webhook]
            pub trait $trait_name {
                #[doc = $doc]
                #[oai(name = $name, method = "post", operation_id = $name)]
                fn deliver(&self, event: Json<$payload>);
            }
        )*

        /// The requests pushdial sends to webhook endpoints, one per event type, each signed
        /// with the Standard Webhooks headers `webhook-id`, `webhook-timestamp` and
        /// `webhook-signature`. Answer 2xx within 15 s; anything else is retried (410
        /// disables the endpoint).
        pub struct Events;

        impl poem_openapi::Webhook for Events {
            fn meta() -> Vec<poem_openapi::registry::MetaWebhook> {
                let mut all = Vec::new();
                $(all.extend(<&dyn $trait_name as poem_openapi::Webhook>::meta());)*
                all
            }

            fn register(registry: &mut poem_openapi::registry::Registry) {
                $(<&dyn $trait_name as poem_openapi::Webhook>::register(registry);)*
            }
        }
    };
}

event_webhooks! {
    CallQueued: "call.queued", CallWebhook, "The call was accepted by the API.";
    CallOffered: "call.offered", CallWebhook, "The call was handed to a phone (live socket or push service).";
    CallDelivered: "call.delivered", CallWebhook, "The phone acknowledged the offer.";
    CallAccepted: "call.accepted", CallWebhook, "The person confirmed (or the phone dials automatically).";
    CallDeclined: "call.declined", CallWebhook, "The person refused the call.";
    CallDialing: "call.dialing", CallWebhook, "The phone opened the call.";
    CallConnected: "call.connected", CallWebhook, "The callee answered (observed where the platform can tell, otherwise inferred).";
    CallCompleted: "call.completed", CallWebhook, "The call ended, with its duration.";
    CallFailed: "call.failed", CallWebhook, "The call failed; `data.reason` says why.";
    CallCanceled: "call.canceled", CallWebhook, "The call was canceled through the API.";
    CallExpired: "call.expired", CallWebhook, "The call reached its `expires_at` before the phone dialed.";
    DeviceReachable: "device.reachable", DeviceWebhook, "A device became reachable.";
    DeviceUnreachable: "device.unreachable", DeviceWebhook, "A device stopped being reachable.";
    EndpointDisabled: "endpoint.disabled", EndpointDisabledWebhook, "One of the organization's endpoints was disabled.";
    WebhookTest: "webhook.test", TestWebhook, "A test event sent from `POST /v1/webhook_endpoints/{id}/test`.";
}
