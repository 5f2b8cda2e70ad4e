//! Placing calls: the one use case behind `POST /v1/calls` (`place_call`) and the widget's
//! callback requests (`request_callback`). It owns the order of the checks, which decides
//! what a refused request costs, so that the API and the widget cannot drift apart:
//!
//! 1. the idempotency key's stored answer is replayed before anything else is looked at;
//! 2. the input is checked, then who may use the target (an agent names only their own
//!    agent and devices, an admin not an owner's), before the target's phones are;
//! 3. the key is held (in the transaction) before the quotas are taken, so that a retry
//!    racing the first request spends none;
//! 4. the quotas are taken only by a call that will be placed, in the same round trip that
//!    finds its phone (`calls::reach_and_take`);
//! 5. the call, its first offer and its answer are written in one transaction; after the
//!    commit the offer is handed to the phone's socket, or to the worker.
//!
//! A widget's callback also takes the widget's turn (round robin) only once its input can
//! no longer refuse it.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::PgConnection;

use crate::access::{may_use_agent, OrgScope};
use crate::calls::{self, CallRequest, Candidates, FirstOffer, RawCallRequest, Routed, Target};
use crate::idempotency::Idempotency;
use crate::ids::{self, Kind};
use crate::phone::PhoneNumber;
use crate::ratelimit::Limit;
use crate::store::calls::CallRow;
use crate::store::widgets::{self as widget_store, CallbackStatus, WhenUnavailable, WidgetRow};
use crate::widgets::{self, Cap};
use crate::{limits, secrets, text, Ctx, Error, Result};

/// How a placed call is answered: stored with its idempotency key, replayed from it (the
/// API's `Call`). A replay is shown only to an actor who may see the call's agent.
pub trait CallAnswer: From<CallRow> + Serialize + DeserializeOwned {
    fn agent_id(&self) -> &str;
}

impl CallAnswer for pushdial_protocol::Call {
    fn agent_id(&self) -> &str {
        &self.agent_id
    }
}

/// The answer of `place_call`: a call placed now, or the answer of an earlier request with
/// the same idempotency key.
#[derive(Debug)]
pub enum Placed<A> {
    Created(A),
    Replayed(A),
}

impl<A> Placed<A> {
    pub fn into_answer(self) -> A {
        match self {
            Placed::Created(a) | Placed::Replayed(a) => a,
        }
    }
}

/// The quotas a placed call takes: the organization's calls per minute (its plan's, or
/// the deployment's) and calls per destination per hour.
pub fn quotas(
    ctx: &Ctx,
    org_id: &str,
    request: &CallRequest,
    per_minute: Option<i32>,
) -> Vec<(&'static str, String, Limit)> {
    let per_minute = per_minute
        .and_then(|r| u32::try_from(r).ok())
        .unwrap_or(ctx.config.limit_calls_per_minute);
    vec![
        ("calls", org_id.to_owned(), limits::per_minute(per_minute)),
        (
            "number",
            format!("{org_id}:{}", request.to.as_str()),
            limits::per_hour(ctx.config.limit_calls_per_number_per_hour),
        ),
    ]
}

/// Finds the route of checked `candidates` (a reachable phone) and takes the call's quotas:
/// one Redis round trip.
async fn route(
    ctx: &Ctx,
    org_id: &str,
    request: &CallRequest,
    candidates: Candidates,
) -> Result<Routed> {
    let quotas = quotas(ctx, org_id, request, candidates.per_minute);
    calls::reach_and_take(ctx, candidates, &quotas).await
}

/// Writes the call (and its first offer when the phone is live) in the caller's
/// transaction.
async fn insert(
    tx: &mut PgConnection,
    ctx: &Ctx,
    org_id: &str,
    request: &CallRequest,
    routed: &Routed,
) -> Result<(CallRow, Option<FirstOffer>)> {
    let live = routed.live.as_ref().map(|(d, i)| (d.as_str(), i.clone()));
    calls::insert(
        tx,
        ctx,
        org_id,
        request,
        &routed.agent_id,
        routed.device_id.as_deref(),
        live,
    )
    .await
}

/// After the commit: hands an inline first offer to the socket (or, if it cannot be
/// handed over, to the worker at once), or wakes the workers.
async fn after_commit(
    ctx: &Ctx,
    conn: &mut PgConnection,
    row: &CallRow,
    first_offer: Option<&FirstOffer>,
) {
    match first_offer {
        Some(offer) => {
            if !calls::send_first_offer(ctx, row, offer).await {
                calls::hurry_first_offer(ctx, conn, row).await;
            }
        }
        None => ctx.wake_workers().await,
    }
}

/// Places a call for `actor` (claim steps S13–S17, S19), in the order of checks the module
/// describes, on the request's one connection (reads and transaction alike). Refused, it
/// writes nothing and spends no quota.
pub async fn place_call<A: CallAnswer>(
    ctx: &Ctx,
    conn: &mut PgConnection,
    actor: &OrgScope,
    mut raw: RawCallRequest,
    idem: &Idempotency,
) -> Result<Placed<A>> {
    let org_id = &actor.org_id;
    if let Some(call) = idem.replay::<A>(conn, org_id).await? {
        if !actor.sees_agent(call.agent_id()) {
            return Err(Error::NotFound("call"));
        }
        return Ok(Placed::Replayed(call));
    }
    // A signed-in member calls through their own phones unless they name others.
    if raw.agent_id.is_none() && raw.device_id.is_none() {
        raw.agent_id = actor.member_agent().map(str::to_owned);
    }
    if raw
        .agent_id
        .as_deref()
        .is_some_and(|a| !actor.sees_agent(a))
    {
        return Err(Error::NotFound("agent"));
    }
    let request = CallRequest::parse(raw, ctx.config.call_expires_in)?;
    // Before the target's state is looked at, so that nothing about other agents'
    // phones leaks: an agent may only name their own device.
    if let (Some(own), Target::Device(device_id)) = (actor.own_agent(), &request.target) {
        let owner = crate::store::devices::get(conn, org_id, device_id)
            .await?
            .map(|d| d.agent_id);
        if owner.as_deref() != Some(own) {
            return Err(Error::NotFound("device"));
        }
    }
    let candidates = calls::candidates(conn, org_id, &request).await?;
    if !actor.sees_agent(&candidates.agent_id) {
        return Err(Error::NotFound("device"));
    }
    may_use_agent(conn, actor, &candidates.agent_id).await?;
    // The key is held before the quotas are taken: a retry racing the first request
    // (409) or finding its answer committed since `replay` spends no quota.
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    if let Some(call) = idem.lock::<A>(&mut tx, org_id).await? {
        // Committed by a racing request since `replay` looked: shown on the same terms.
        if !actor.sees_agent(call.agent_id()) {
            return Err(Error::NotFound("call"));
        }
        return Ok(Placed::Replayed(call));
    }
    // Only now, when nothing else can refuse it, does the call take its quotas.
    let routed = route(ctx, org_id, &request, candidates).await?;
    let (row, first_offer) = insert(&mut tx, ctx, org_id, &request, &routed).await?;
    let answer = A::from(row.clone());
    tracing::Span::current().record("call_id", row.id.as_str());
    idem.save(&mut tx, org_id, 201, &answer).await?;
    tx.commit().await?;
    after_commit(ctx, conn, &row, first_offer.as_ref()).await;
    tracing::info!(org_id = %org_id, "call queued");
    Ok(Placed::Created(answer))
}

/// A visitor's request for a callback, as the widget's page sent it.
#[derive(Debug, Clone)]
pub struct CallbackInput {
    pub phone: String,
    pub country: Option<String>,
    pub name: Option<String>,
    pub locale: Option<String>,
    pub consent: bool,
}

/// Where a visitor's request came from: the key per-address limits use (an IPv6 client's
/// /64), and the address and user agent for the audit log and the callback.
#[derive(Debug, Clone, Default)]
pub struct Visitor {
    pub key: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// A callback request taken: `calling` (a call was placed) or `scheduled` (it waits for an
/// agent), with the visitor's stream.
#[derive(Debug, Clone)]
pub struct CallbackPlaced {
    pub id: String,
    pub status: CallbackStatus,
    pub stream_url: String,
}

/// The one answer for every number the widget will not call: it never says why (a
/// blocklist must not be probed from a public page).
fn not_callable() -> Error {
    Error::Unprocessable {
        code: "number_not_callable",
        message: "we cannot call this number; check it and try again".into(),
    }
}

fn unavailable() -> Error {
    Error::conflict(
        "unavailable",
        "nobody can take calls right now; try again later",
    )
}

/// Takes a visitor's callback request on `widget`: when an agent is available now, a call
/// (always confirmed on the phone) is placed through the same routing, quotas and
/// insertion as `place_call`; otherwise, or when that agent's phone went away or the
/// organization's call quota is spent, the request waits (`scheduled`) unless the widget
/// hides itself then (`409 unavailable`). Each limit is taken only once the checks before
/// it passed: the visitor's address, availability, the number (any refusal reads alike),
/// the number across all widgets, the widget's hourly cap, then the widget's turn.
pub async fn request_callback(
    ctx: &Ctx,
    widget: &WidgetRow,
    visitor: &Visitor,
    input: CallbackInput,
) -> Result<CallbackPlaced> {
    let w = widget;
    if !input.consent {
        return Err(Error::invalid(
            "consent",
            "the visitor must agree to be called",
        ));
    }
    let name = text::optional("name", input.name.as_deref(), 100)?;
    let locale = match input.locale.as_deref() {
        None => None,
        Some(l @ ("en" | "zh")) => Some(l),
        Some(_) => return Err(Error::invalid("locale", "en or zh")),
    };
    let client = (visitor.ip.as_deref(), visitor.user_agent.as_deref());
    // A visitor's address may ask only so often, whichever widgets it uses (before
    // anything else is looked at).
    let per_ip = limits::per_minute(ctx.config.limit_widget_per_ip_per_minute);
    limits::take(ctx, "widget_ip", &visitor.key, per_ip).await?;
    // Availability before the number: a hidden widget answers every number alike.
    let available = if widgets::open_now(w, chrono::Utc::now()) {
        widgets::available_agents(ctx, w).await?
    } else {
        Vec::new()
    };
    if available.is_empty() && w.when_unavailable != WhenUnavailable::Callback {
        return Err(unavailable());
    }
    let country = input.country.as_deref().map(str::to_ascii_uppercase);
    let to = PhoneNumber::parse_in("phone", &input.phone, country.as_deref())
        .map_err(|_| not_callable())?;
    let mut conn = ctx.db.acquire().await?;
    crate::dialing::check(&mut conn, &w.org_id, &to)
        .await
        .map_err(|e| match e {
            Error::Unprocessable { .. } => not_callable(),
            other => other,
        })?;
    drop(conn);
    // One number is asked for so often across every organization's widgets, so that a
    // victim's phone cannot be made to ring from many sites.
    let per_number = limits::per_hour(ctx.config.limit_widget_per_number_per_hour);
    limits::take(ctx, "widget_number", to.as_str(), per_number).await?;
    // Anyone can send this request (the key is public, the Origin forgeable): the
    // widget's hourly cap bounds the calls it can cause, before its turn is taken.
    if !available.is_empty() {
        widgets::take_cap(ctx, w, Cap::Calling, client).await?;
    }
    // Only now, when its input can no longer refuse it, does the request take its turn.
    let agent = widgets::take_turn(ctx, w, &available).await?;

    let id = ids::new_id(Kind::Callback);
    let token = secrets::new_token("pd_cbt_");
    let stream_url = format!("/widget/v1/callbacks/{id}/events?token={token}");
    if let Some(agent_id) = agent {
        let mut request = CallRequest::parse(
            RawCallRequest {
                to: to.as_str().to_owned(),
                agent_id: Some(agent_id.clone()),
                device_id: None,
                // `required`, set below (not a value the public API takes).
                confirm: None,
                expires_in: None,
                metadata: Some(BTreeMap::from([
                    ("source".to_owned(), "widget".to_owned()),
                    ("widget_id".to_owned(), w.id.clone()),
                    ("callback_id".to_owned(), id.clone()),
                    (
                        "visitor_name".to_owned(),
                        name.unwrap_or_default().to_owned(),
                    ),
                ])),
            },
            ctx.config.call_expires_in,
        )?;
        // The number came from a public page: a person on the phone confirms it, even
        // on a phone set to dial by itself.
        request.confirm = calls::Confirm::Required;
        // The phone may have gone away since it was picked, or the organization's call
        // quota may be spent: the request is then taken for later.
        let mut conn = ctx.db.acquire().await?;
        let routed = match calls::candidates(&mut conn, &w.org_id, &request).await {
            Ok(candidates) => route(ctx, &w.org_id, &request, candidates).await,
            Err(e) => Err(e),
        };
        let admitted = match routed {
            Ok(routed) => Some(routed),
            Err(Error::Conflict { .. } | Error::NotFound(_) | Error::RateLimited { .. }) => None,
            Err(e) => return Err(e),
        };
        if let Some(routed) = admitted {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            let (row, first_offer) = insert(&mut tx, ctx, &w.org_id, &request, &routed).await?;
            widget_store::insert_callback(
                &mut tx,
                &id,
                &w.org_id,
                &w.id,
                to.as_str(),
                name,
                locale,
                CallbackStatus::Calling,
                Some(&row.id),
                &secrets::hash(&token),
                visitor.ip.as_deref(),
            )
            .await?;
            tx.commit().await?;
            after_commit(ctx, &mut conn, &row, first_offer.as_ref()).await;
            return Ok(CallbackPlaced {
                id,
                status: CallbackStatus::Calling,
                stream_url,
            });
        }
    }
    if w.when_unavailable != WhenUnavailable::Callback {
        return Err(unavailable());
    }
    // A request for later places no call, so no call quota bounds it: its own cap does.
    widgets::take_cap(ctx, w, Cap::Scheduled, client).await?;
    let mut conn = ctx.db.acquire().await?;
    widget_store::insert_callback(
        &mut conn,
        &id,
        &w.org_id,
        &w.id,
        to.as_str(),
        name,
        locale,
        CallbackStatus::Scheduled,
        None,
        &secrets::hash(&token),
        visitor.ip.as_deref(),
    )
    .await?;
    Ok(CallbackPlaced {
        id,
        status: CallbackStatus::Scheduled,
        stream_url,
    })
}
