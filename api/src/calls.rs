//! `/v1/calls`: placing a call through an agent's phone (claim steps S13–S17, S19),
//! following it, and canceling it. Creation honours `Idempotency-Key`.

use std::collections::BTreeMap;

use futures::stream::BoxStream;
use futures::StreamExt;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::EventStream;
use poem_openapi::payload::Json;
use poem_openapi::types::ToJSON;
use poem_openapi::{ApiResponse, Object, OpenApi, Union};
use pushdial_core::access::Action;
use pushdial_core::calls::{self, RawCallRequest};
use pushdial_core::ids::{self, Kind};
use pushdial_core::lifecycle::CallStatus;
use pushdial_core::placing;
use pushdial_core::store::calls::{self as call_store, CallFilter};
use pushdial_core::{Ctx, Error};

use crate::auth::OrgAuth;
use crate::idempotency::Idempotency;
use crate::models::{Call, CallEvent, List, Pagination};
use crate::problems;
use crate::Tags;

pub struct CallsApi;

/// Places a call through an agent's phone.
#[derive(Debug, Object, serde::Serialize)]
#[oai(deny_unknown_fields)]
pub struct CreateCall {
    /// The number to call, in E.164 form (`+14155550123`).
    pub to: String,
    /// Offer the call to this agent's reachable devices, most recently active first.
    pub agent_id: Option<String>,
    /// Offer the call to this device only.
    pub device_id: Option<String>,
    /// `prompt` (default): the phone asks its user first. `auto`: it dials at once.
    pub confirm: Option<String>,
    /// Seconds until the call expires if not yet dialing, 10 to 3600 (default 60).
    pub expires_in: Option<i64>,
    /// Up to 20 string pairs, returned with the call and its events.
    pub metadata: Option<BTreeMap<String, String>>,
}

#[derive(ApiResponse)]
pub enum CallCreated {
    /// The call is queued and will be offered to the phone.
    #[oai(status = 201)]
    Created(Json<Call>),
}

problems!(
    /// Errors of call creation.
    CreateCallError {
        400 => BadRequest, 401 => Unauthorized, 403 => Forbidden, 404 => NotFound,
        409 => Conflict, 413 => PayloadTooLarge, 422 => UnprocessableEntity
    }
);
problems!(
    /// Errors of reading calls.
    ReadCallError { 400 => BadRequest, 401 => Unauthorized, 403 => Forbidden, 404 => NotFound }
);
problems!(
    /// Errors of call cancellation.
    CancelCallError { 400 => BadRequest, 401 => Unauthorized, 403 => Forbidden, 404 => NotFound, 409 => Conflict }
);

/// One item of a call's live stream.
#[derive(Debug, Clone, Union)]
pub enum CallStreamItem {
    Call(Call),
    Event(CallEvent),
}

/// The live stream of a call: polls its row and timeline (every 400 ms) and yields what
/// changed, until the call is final and everything was sent (or 15 minutes passed). It
/// holds its stream slot until it ends.
fn follow(
    ctx: Ctx,
    org_id: String,
    call_id: String,
    slot: crate::streams::Slot,
) -> impl futures::Stream<Item = CallStreamItem> {
    struct State {
        _slot: crate::streams::Slot,
        ctx: Ctx,
        org_id: String,
        call_id: String,
        last: Option<(CallStatus, chrono::DateTime<chrono::Utc>)>,
        events_sent: usize,
        queue: std::collections::VecDeque<CallStreamItem>,
        done: bool,
        started: std::time::Instant,
    }
    let state = State {
        _slot: slot,
        ctx,
        org_id,
        call_id,
        last: None,
        events_sent: 0,
        queue: Default::default(),
        done: false,
        started: std::time::Instant::now(),
    };
    futures::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(item) = s.queue.pop_front() {
                return Some((item, s));
            }
            if s.done || s.started.elapsed() > std::time::Duration::from_secs(15 * 60) {
                return None;
            }
            if s.last.is_some() {
                tokio::time::sleep(std::time::Duration::from_millis(400)).await;
            }
            let read = async {
                let mut conn = s.ctx.db.acquire().await?;
                let call = call_store::get(&mut conn, &s.org_id, &s.call_id).await?;
                let events = call_store::events(&mut conn, &s.org_id, &s.call_id).await?;
                Ok::<_, Error>((call, events))
            };
            let Ok((Some(call), events)) = read.await else {
                // Unreadable for now (a database hiccup): try again at the next tick.
                // Not even the first read: give up (the request already saw the call).
                s.last.as_ref()?;
                continue;
            };
            for e in events.into_iter().skip(s.events_sent) {
                s.events_sent += 1;
                s.queue.push_back(CallStreamItem::Event(e.into()));
            }
            let key = (call.status, call.updated_at);
            if s.last.as_ref() != Some(&key) {
                s.last = Some(key);
                s.queue
                    .push_front(CallStreamItem::Call(call.clone().into()));
            }
            s.done = call.status.is_terminal();
        }
    })
}

/// A call the actor may see: an agent sees only their own (others are 404, as if absent).
fn visible(auth: &OrgAuth, row: Option<call_store::CallRow>) -> Result<call_store::CallRow, Error> {
    match row {
        Some(r) if auth.sees_agent(&r.agent_id) => Ok(r),
        _ => Err(Error::NotFound("call")),
    }
}

#[OpenApi(tag = "Tags::Calls")]
impl CallsApi {
    /// Create a call
    ///
    /// Checks that the agent (or device) has a reachable phone — `409 no_device_reachable`
    /// otherwise, with nothing written — then queues the call and offers it to the phone.
    #[oai(path = "/v1/calls", method = "post", operation_id = "create_call")]
    async fn create(
        &self,
        auth: OrgAuth,
        ctx: poem::web::Data<&Ctx>,
        /// Makes retries safe for 24 hours: the same key and body return the first answer.
        #[oai(name = "Idempotency-Key")]
        idempotency_key: Header<Option<String>>,
        body: Json<CreateCall>,
    ) -> Result<CallCreated, CreateCallError> {
        auth.require(Action::PlaceCall)?;
        let idem = Idempotency::new(idempotency_key.0, "POST /v1/calls", &body.0)?
            .scoped(auth.acting_user());
        let b = body.0;
        let raw = RawCallRequest {
            to: b.to,
            agent_id: b.agent_id,
            device_id: b.device_id,
            confirm: b.confirm,
            expires_in: b.expires_in,
            metadata: b.metadata,
        };
        // One connection for the whole request, reads and transaction alike.
        let mut conn = ctx.db.acquire().await?;
        let placed = placing::place_call::<Call>(&ctx, &mut conn, &auth, raw, &idem).await?;
        Ok(CallCreated::Created(Json(placed.into_answer())))
    }

    /// List calls
    #[oai(path = "/v1/calls", method = "get", operation_id = "list_calls")]
    #[allow(clippy::too_many_arguments)] // one argument per query parameter
    async fn list(
        &self,
        auth: OrgAuth,
        ctx: poem::web::Data<&Ctx>,
        /// Only calls in this status.
        status: Query<Option<String>>,
        /// Only calls to this agent.
        agent_id: Query<Option<String>>,
        /// Only calls created at or after this time (RFC 3339).
        created_gte: Query<Option<chrono::DateTime<chrono::Utc>>>,
        /// Only calls created before this time (RFC 3339).
        created_lt: Query<Option<chrono::DateTime<chrono::Utc>>>,
        pagination: Pagination,
    ) -> Result<Json<List<Call>>, ReadCallError> {
        auth.require(Action::ReadCalls)?;
        let page = pagination.page(Kind::Call)?;
        let status = status
            .0
            .map(|s| s.parse::<CallStatus>())
            .transpose()
            .map_err(|_| Error::invalid("status", "not a call status"))?;
        let mut filter = CallFilter {
            status,
            agent_id: agent_id
                .0
                .map(|a| ids::parse(Kind::Agent, "agent_id", &a))
                .transpose()?,
            created_gte: created_gte.0,
            created_lt: created_lt.0,
        };
        // An agent sees only their own calls.
        if let Some(own) = auth.own_agent() {
            if filter.agent_id.as_deref().is_some_and(|a| a != own) {
                return Err(Error::NotFound("agent").into());
            }
            filter.agent_id = Some(own.to_owned());
        }
        let mut conn = ctx.db.acquire().await?;
        let rows = call_store::list(&mut conn, &auth.org_id, &filter, &page).await?;
        Ok(Json(List::from(rows)))
    }

    /// Retrieve a call
    #[oai(path = "/v1/calls/:call_id", method = "get", operation_id = "get_call")]
    async fn get(
        &self,
        auth: OrgAuth,
        ctx: poem::web::Data<&Ctx>,
        call_id: Path<String>,
    ) -> Result<Json<Call>, ReadCallError> {
        auth.require(Action::ReadCalls)?;
        let id = ids::parse(Kind::Call, "call_id", &call_id.0)?;
        let mut conn = ctx.db.acquire().await?;
        let row = visible(&auth, call_store::get(&mut conn, &auth.org_id, &id).await?)?;
        Ok(Json(row.into()))
    }

    /// List a call's events
    ///
    /// One event per transition, oldest first; states the phone did not report but that a
    /// later report implies are marked `observed: false`.
    #[oai(
        path = "/v1/calls/:call_id/events",
        method = "get",
        operation_id = "list_call_events"
    )]
    async fn events(
        &self,
        auth: OrgAuth,
        ctx: poem::web::Data<&Ctx>,
        call_id: Path<String>,
    ) -> Result<Json<List<CallEvent>>, ReadCallError> {
        auth.require(Action::ReadCalls)?;
        let id = ids::parse(Kind::Call, "call_id", &call_id.0)?;
        let mut conn = ctx.db.acquire().await?;
        visible(&auth, call_store::get(&mut conn, &auth.org_id, &id).await?)?;
        let rows = call_store::events(&mut conn, &auth.org_id, &id).await?;
        Ok(Json(List::new(
            rows.into_iter().map(CallEvent::from).collect(),
            false,
        )))
    }

    /// Follow a call live
    ///
    /// Server-sent events: `call` (the call, first and after every change) and `call_event`
    /// (each timeline entry, oldest first). The stream ends after the call's final status.
    /// With a console session, name the organization with `?organization=` (EventSource
    /// cannot send headers).
    #[oai(
        path = "/v1/calls/:call_id/stream",
        method = "get",
        operation_id = "stream_call"
    )]
    async fn stream(
        &self,
        auth: OrgAuth,
        req: &poem::Request,
        ctx: poem::web::Data<&Ctx>,
        call_id: Path<String>,
        /// The organization, for console sessions (instead of `Pushdial-Organization`).
        #[oai(name = "organization")]
        _organization: Query<Option<String>>,
    ) -> Result<EventStream<BoxStream<'static, CallStreamItem>>, ReadCallError> {
        auth.require(Action::ReadCalls)?;
        let id = ids::parse(Kind::Call, "call_id", &call_id.0)?;
        let mut conn = ctx.db.acquire().await?;
        visible(&auth, call_store::get(&mut conn, &auth.org_id, &id).await?)?;
        drop(conn);
        let slot = crate::streams::acquire(&[
            (format!("sse-org:{}", auth.org_id), 200),
            (format!("sse-ip:{}", crate::auth::client_key(req)), 20),
        ])?;
        let stream = follow(ctx.0.clone(), auth.org_id.clone(), id, slot);
        Ok(EventStream::new(stream.boxed())
            .keep_alive(std::time::Duration::from_secs(15))
            .to_event(|item| match item {
                CallStreamItem::Call(c) => {
                    poem::web::sse::Event::message(c.to_json_string()).event_type("call")
                }
                CallStreamItem::Event(e) => {
                    poem::web::sse::Event::message(e.to_json_string()).event_type("call_event")
                }
            }))
    }

    /// Cancel a call
    ///
    /// Possible until the phone starts dialing; the phone is told to drop the offer.
    #[oai(
        path = "/v1/calls/:call_id/cancel",
        method = "post",
        operation_id = "cancel_call"
    )]
    async fn cancel(
        &self,
        auth: OrgAuth,
        ctx: poem::web::Data<&Ctx>,
        call_id: Path<String>,
    ) -> Result<Json<Call>, CancelCallError> {
        auth.require(Action::CancelCall)?;
        let id = ids::parse(Kind::Call, "call_id", &call_id.0)?;
        let mut tx = ctx.db.begin().await?;
        visible(&auth, call_store::get(&mut tx, &auth.org_id, &id).await?)?;
        let row = calls::cancel(&mut tx, &auth.org_id, &id).await?;
        tx.commit().await?;
        if let Some(device) = &row.device_id {
            let message = pushdial_core::protocol::ToPhone::CallCanceled {
                call_id: row.id.clone(),
                reason: None,
            };
            if let Err(e) = ctx.presence.send_to_device(device, None, &message).await {
                tracing::warn!(call_id = %row.id, error = %e, "cancel not forwarded to the phone");
            }
        }
        Ok(Json(row.into()))
    }
}
