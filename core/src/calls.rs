//! Call operations shared by the api and the worker: reachability (claim steps S13/S19),
//! creating a call with its jobs in one transaction, and applying status reports through
//! the state machine with one event per transition.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::ids::{self, Kind};
use crate::lifecycle::{self, CallStatus, Plan, Progress, Refusal};
use crate::phone::PhoneNumber;
use crate::queue::jobs::{CallExpire, CallJob, CallOffer, OfferDeliver, OfferJob, OfferTimeout};
use crate::queue::{self, JobKind, NewJob};
use crate::store::calls::{self as call_store, CallRow, NewCall, NewEvent};
use crate::store::devices::{self as device_store, DeviceRow};
use crate::text::has_control;
use crate::{Ctx, Error, Result};
pub use pushdial_protocol::{Call, Confirm};

/// How a device can be reached right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// A live socket; `Some(instance)` is the api instance holding it (unknown while Redis
    /// is down and presence comes from Postgres).
    Live(Option<String>),
    /// No socket, but a push channel that was not rejected and checked in recently.
    Push,
    Offline,
}

impl Reach {
    pub fn is_reachable(&self) -> bool {
        !matches!(self, Reach::Offline)
    }

    /// The presence word of the API: `online`, `push` or `offline`.
    pub fn presence(&self) -> &'static str {
        match self {
            Reach::Live(_) => "online",
            Reach::Push => "push",
            Reach::Offline => "offline",
        }
    }
}

/// Decides how each device can be reached: Redis presence keys first, Postgres
/// `stream_seen_at` when Redis cannot answer or has no key for the device. `last_seen_at` alone never makes a device
/// reachable; it only keeps a push channel fresh.
pub async fn reachability(ctx: &Ctx, devices: &[DeviceRow]) -> Vec<Reach> {
    let ids: Vec<String> = devices.iter().map(|d| d.id.clone()).collect();
    let live = match ctx.presence.instances(&ids).await {
        Ok(instances) => Some(instances),
        Err(e) => {
            tracing::warn!(error = %e, "presence from Redis unavailable; using Postgres heartbeats");
            None
        }
    };
    reach_of(ctx, devices, live, Utc::now())
}

/// How each device can be reached, given where Redis says their sockets are (`None`:
/// Redis could not tell, and Postgres heartbeats stand in).
fn reach_of(
    ctx: &Ctx,
    devices: &[DeviceRow],
    live: Option<Vec<Option<String>>>,
    now: DateTime<Utc>,
) -> Vec<Reach> {
    let seen_live = |d: &DeviceRow| stream_seen_live(ctx, d, now);
    let live: Vec<Option<Option<String>>> = match live {
        // Redis answered. A device it has no key for may still hold a socket whose key
        // Redis lost (a restart, a failover, a flush: the api re-asserts its sockets within
        // a second); its heartbeat in PostgreSQL says so, so a connected phone is never
        // refused for what Redis forgot.
        Some(instances) => instances
            .into_iter()
            .zip(devices)
            .map(|(i, d)| match i {
                Some(instance) => Some(Some(instance)),
                None => seen_live(d).then_some(None),
            })
            .collect(),
        None => devices
            .iter()
            .map(|d| seen_live(d).then_some(None))
            .collect(),
    };
    devices
        .iter()
        .zip(live)
        .map(|(d, live)| match live {
            _ if d.revoked_at.is_some() => Reach::Offline,
            Some(instance) => Reach::Live(instance),
            None if push_ready(ctx, d, now) => Reach::Push,
            None => Reach::Offline,
        })
        .collect()
}

/// A socket's heartbeat in PostgreSQL within the presence window (cleared when the socket
/// closes): the device holds a socket, whatever Redis says.
fn stream_seen_live(ctx: &Ctx, d: &DeviceRow, now: DateTime<Utc>) -> bool {
    let window = chrono::Duration::from_std(ctx.config.presence_window).unwrap_or_default();
    d.stream_seen_at.is_some_and(|t| now - t <= window)
}

/// A push channel that was not rejected, of a device that checked in within the
/// staleness window.
fn push_ready(ctx: &Ctx, d: &DeviceRow, now: DateTime<Utc>) -> bool {
    let staleness = chrono::Duration::from_std(ctx.config.push_staleness).unwrap_or_default();
    d.revoked_at.is_none()
        && d.push_channel.is_some()
        && d.push_token.is_some()
        && d.push_rejected_at.is_none()
        && d.last_seen_at.is_some_and(|t| now - t <= staleness)
}

/// Who a new call goes to.
#[derive(Debug, Clone)]
pub enum Target {
    Agent(String),
    Device(String),
}

/// A create-call request whose values were all checked.
#[derive(Debug, Clone)]
pub struct CallRequest {
    pub to: PhoneNumber,
    pub target: Target,
    pub confirm: Confirm,
    pub expires_in: Duration,
    pub metadata: serde_json::Value,
}

/// Raw values of a create-call request, as the api parsed them.
#[derive(Debug, Clone, Default)]
pub struct RawCallRequest {
    pub to: String,
    pub agent_id: Option<String>,
    pub device_id: Option<String>,
    pub confirm: Option<String>,
    pub expires_in: Option<i64>,
    pub metadata: Option<std::collections::BTreeMap<String, String>>,
}

impl CallRequest {
    /// Checks every field, reporting all problems at once.
    pub fn parse(raw: RawCallRequest, default_expiry: Duration) -> Result<Self> {
        let mut errors = Vec::new();
        let mut code = "validation_failed";
        let to = match PhoneNumber::parse("to", &raw.to) {
            Ok(n) => Some(n),
            Err(e) => {
                code = e.code();
                errors.extend(e.field_errors().iter().cloned());
                None
            }
        };
        let target = match (raw.agent_id, raw.device_id) {
            (Some(a), None) => {
                check_id(Kind::Agent, "agent_id", &a, &mut errors).map(Target::Agent)
            }
            (None, Some(d)) => {
                check_id(Kind::Device, "device_id", &d, &mut errors).map(Target::Device)
            }
            _ => {
                errors.push(crate::FieldError::new(
                    "agent_id",
                    "give exactly one of agent_id and device_id",
                ));
                None
            }
        };
        let confirm = match raw.confirm.as_deref() {
            None | Some("prompt") => Confirm::Prompt,
            Some("auto") => Confirm::Auto,
            Some(_) => {
                errors.push(crate::FieldError::new(
                    "confirm",
                    "must be \"prompt\" or \"auto\"",
                ));
                Confirm::Prompt
            }
        };
        let expires_in = match raw.expires_in {
            None => default_expiry,
            Some(s) if (10..=3600).contains(&s) => Duration::from_secs(s as u64),
            Some(_) => {
                errors.push(crate::FieldError::new(
                    "expires_in",
                    "must be between 10 and 3600 seconds",
                ));
                default_expiry
            }
        };
        let metadata = raw.metadata.unwrap_or_default();
        if metadata.len() > 20 {
            errors.push(crate::FieldError::new("metadata", "at most 20 keys"));
        }
        if metadata.iter().any(|(k, v)| {
            k.is_empty() || k.len() > 40 || v.len() > 500 || has_control(k) || has_control(v)
        }) {
            errors.push(crate::FieldError::new(
                "metadata",
                "keys of 1 to 40 characters, values up to 500, no control characters",
            ));
        }
        match (to, target, errors.is_empty()) {
            (Some(to), Some(target), true) => Ok(CallRequest {
                to,
                target,
                confirm,
                expires_in,
                metadata: serde_json::to_value(metadata).unwrap_or_default(),
            }),
            _ => {
                if errors.len() > 1 {
                    code = "validation_failed";
                }
                let message = errors
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect::<Vec<_>>()
                    .join("; ");
                Err(Error::Invalid {
                    code,
                    message,
                    errors,
                })
            }
        }
    }
}

fn check_id(
    kind: Kind,
    field: &str,
    value: &str,
    errors: &mut Vec<crate::FieldError>,
) -> Option<String> {
    match ids::parse(kind, field, value) {
        Ok(id) => Some(id),
        Err(e) => {
            errors.extend(e.field_errors().iter().cloned());
            None
        }
    }
}

/// Who a new call goes to: the agent, the device it names (if any), and the device with a
/// live socket that routing would offer it to first (if that device is live).
#[derive(Debug, Clone)]
pub struct Routed {
    pub agent_id: String,
    pub device_id: Option<String>,
    pub live: Option<(String, Option<String>)>,
}

/// What a call may go to, read from the database once its destination passed the dialing
/// policy: its agent, the device it names (if any), the agent's devices (most recently
/// active first), and the plan's calls per minute if the organization has its own.
#[derive(Debug, Clone)]
pub struct Candidates {
    pub agent_id: String,
    pub device_id: Option<String>,
    pub devices: Vec<DeviceRow>,
    pub per_minute: Option<i32>,
}

/// Checks a call against the organization's dialing policy and reads what it may go to
/// (claim step S13); reads only. For an agent, the policy, the agent and its devices come
/// in one round trip.
pub async fn candidates(
    conn: &mut PgConnection,
    org_id: &str,
    request: &CallRequest,
) -> Result<Candidates> {
    match &request.target {
        Target::Agent(agent_id) => {
            let view = crate::store::orgs::route_view(conn, org_id, request.to.as_str(), agent_id)
                .await?
                .ok_or(Error::NotFound("organization"))?;
            let per_minute = crate::dialing::decide(&view.dialing, &request.to)?;
            // Devices imply the agent; only without any does its absence matter (404).
            if view.devices.is_empty() && !view.agent_exists {
                return Err(Error::NotFound("agent"));
            }
            Ok(Candidates {
                agent_id: agent_id.clone(),
                device_id: None,
                devices: view.devices,
                per_minute,
            })
        }
        Target::Device(device_id) => {
            let per_minute = crate::dialing::check(conn, org_id, &request.to).await?;
            let device = device_store::get(conn, org_id, device_id)
                .await?
                .ok_or(Error::NotFound("device"))?;
            if device.revoked_at.is_some() {
                return Err(Error::conflict("device_revoked", "the device was revoked"));
            }
            Ok(Candidates {
                agent_id: device.agent_id.clone(),
                device_id: Some(device_id.clone()),
                devices: vec![device],
                per_minute,
            })
        }
    }
}

/// Picks the device routing would offer the call to first (the first reachable, most
/// recently active) — `no_device_reachable` (claim step S19) when there is none — and
/// takes `quotas` all or nothing, in one Redis round trip: only a call that will be placed
/// spends quota. While Redis cannot answer, presence comes from Postgres heartbeats and
/// the quotas fail open.
pub async fn reach_and_take(
    ctx: &Ctx,
    c: Candidates,
    quotas: &[(&'static str, String, crate::ratelimit::Limit)],
) -> Result<Routed> {
    let now = Utc::now();
    let ids: Vec<String> = c.devices.iter().map(|d| d.id.clone()).collect();
    // Reachable without a presence key: by push, or by a socket whose key Redis lost.
    let push: Vec<bool> = c
        .devices
        .iter()
        .map(|d| push_ready(ctx, d, now) || stream_seen_live(ctx, d, now))
        .collect();
    let unreachable = || {
        Error::conflict(
            "no_device_reachable",
            "no phone is connected for this agent: pair one, or open the pushdial app on the phone",
        )
    };
    if c.devices.is_empty() {
        return Err(unreachable());
    }
    let (live, decisions) = match ctx
        .presence
        .reach_and_take(&ids, &push, &crate::limits::keyed(quotas))
        .await
    {
        Ok((live, decisions)) => (Some(live), Some(decisions)),
        Err(e) => {
            tracing::warn!(error = %e, "presence and quotas unavailable in Redis; using Postgres heartbeats, quotas open");
            (None, None)
        }
    };
    let reach = reach_of(ctx, &c.devices, live, now);
    let Some((first, how)) = c.devices.iter().zip(reach).find(|(_, r)| r.is_reachable()) else {
        return Err(unreachable());
    };
    if let Some(decisions) = decisions {
        crate::limits::judge(quotas, &decisions)?;
    }
    let live = match how {
        Reach::Live(instance) => Some((first.id.clone(), instance)),
        _ => None,
    };
    Ok(Routed {
        agent_id: c.agent_id,
        device_id: c.device_id,
        live,
    })
}

/// An offer recorded with the call, to send once the transaction is committed.
#[derive(Debug, Clone)]
pub struct FirstOffer {
    pub device_id: String,
    /// The api instance holding the device's socket, when known.
    pub instance: Option<String>,
    /// The outbox job that delivers the offer if the inline send does not happen.
    pub outbox: i64,
}

/// Inserts a call with its first event and jobs, all in the caller's transaction (the
/// transactional outbox). With `live`, a device with a live socket that routing would pick
/// first, the call is offered to it in the same transaction (`queued` then `offered`, the
/// ack timeout and an outbox job) and the caller sends the offer after commit — no trip
/// through the worker. Otherwise a `call.offer` job routes it.
pub async fn insert(
    conn: &mut PgConnection,
    ctx: &Ctx,
    org_id: &str,
    request: &CallRequest,
    agent_id: &str,
    device_id: Option<&str>,
    live: Option<(&str, Option<String>)>,
) -> Result<(CallRow, Option<FirstOffer>)> {
    let id = ids::new_id(Kind::Call);
    let now = Utc::now();
    let expires_at = now
        + chrono::Duration::from_std(request.expires_in)
            .map_err(|e| Error::Internal(e.to_string()))?;
    let offered_to = live.as_ref().map(|(d, _)| *d);
    let call = call_store::insert(
        conn,
        NewCall {
            id: &id,
            org_id,
            agent_id,
            target_device_id: device_id,
            to_number: request.to.as_str(),
            confirm: request.confirm,
            metadata: &request.metadata,
            expires_at,
            offered_to,
        },
    )
    .await?;
    // The `call.queued` event shows the call as it was queued, before the inline offer.
    let queued = CallRow {
        status: CallStatus::Queued,
        device_id: None,
        attempted_device_ids: Vec::new(),
        ..call.clone()
    };
    record_event(conn, &queued, CallStatus::Queued, true, None, None).await?;
    let payload = CallJob {
        call_id: id.clone(),
        org_id: org_id.to_owned(),
    };
    let expire = NewJob::of::<CallExpire>(&payload, Some(expires_at))?;
    let Some((device, instance)) = live else {
        let offer = NewJob::of::<CallOffer>(&payload, None)?;
        queue::enqueue_all(conn, &[offer, expire]).await?;
        return Ok((call, None));
    };
    record_event(conn, &call, CallStatus::Offered, true, None, Some(device)).await?;
    crate::metrics::METRICS
        .call_transitions
        .with_label_values(&[CallStatus::Offered.as_str(), ""])
        .inc();
    let offer = OfferJob {
        call_id: id,
        org_id: org_id.to_owned(),
        device_id: device.to_owned(),
    };
    // The outbox job sends the offer after the lease if this process stops between this
    // commit and the inline send; once the offer is handed over it is deleted with others
    // (`Ctx::handed_offers`), or by the phone's ack, whichever comes first, so that a
    // create costs one commit, not two.
    let outbox = schedule_offer(conn, ctx, &offer, now, Some(expire)).await?;
    Ok((
        call,
        Some(FirstOffer {
            device_id: offer.device_id,
            instance,
            outbox,
        }),
    ))
}

/// Schedules what follows an offer just recorded, in the caller's transaction: its ack
/// timeout (`call.offer_timeout`, which moves on to the next device) and its outbox
/// (`call.deliver`, which sends the offer after the job lease unless the inline send
/// hands it over first), with `also` in the same statement. The api's inline first offer
/// and the worker's routing both record offers this way. Returns the outbox job's id.
pub async fn schedule_offer(
    conn: &mut PgConnection,
    ctx: &Ctx,
    offer: &OfferJob,
    now: DateTime<Utc>,
    also: Option<NewJob>,
) -> Result<i64> {
    let timeout = chrono::Duration::from_std(ctx.config.offer_timeout).unwrap_or_default();
    let lease = chrono::Duration::from_std(ctx.config.job_lease).unwrap_or_default();
    let mut jobs: Vec<NewJob> = also.into_iter().collect();
    jobs.push(NewJob::of::<OfferTimeout>(offer, Some(now + timeout))?);
    jobs.push(NewJob::of::<OfferDeliver>(offer, Some(now + lease))?);
    let created = queue::enqueue_all(conn, &jobs).await?;
    created
        .iter()
        .find(|(kind, _)| kind == OfferDeliver::KIND)
        .map(|(_, id)| *id)
        .ok_or_else(|| Error::Internal("the offer's outbox job was not created".into()))
}

/// Makes the call's offer outbox job due now, so that a worker sends the recorded offer
/// without waiting for the lease, and wakes the workers (also when nothing was hurried:
/// the job may already be due). Returns how many jobs were hurried.
pub async fn hurry_offer(ctx: &Ctx, conn: &mut PgConnection, call_id: &str) -> sqlx::Result<u64> {
    let hurried = queue::hurry_offer_outbox(conn, call_id).await;
    ctx.wake_workers().await;
    hurried
}

/// Sends an offer recorded by `insert` to the device's socket; `true` when it was handed
/// over (its outbox job is then swept). If not, `hurry_first_offer` hands it to the worker.
pub async fn send_first_offer(ctx: &Ctx, call: &CallRow, offer: &FirstOffer) -> bool {
    let message = crate::protocol::ToPhone::offer(&call.id, call.expires_at);
    let sent = ctx
        .presence
        .send_to_device(&offer.device_id, offer.instance.as_deref(), &message)
        .await;
    let handed = matches!(sent, Ok(true));
    if handed {
        ctx.handed_offers.add(&ctx.db, offer.outbox);
        let elapsed = (Utc::now() - call.created_at).to_std().unwrap_or_default();
        crate::metrics::METRICS
            .click_to_offer
            .with_label_values(&["socket"])
            .observe(elapsed.as_secs_f64());
    }
    handed
}

/// An offer `send_first_offer` could not hand over: its outbox job is made due at once, so
/// that the worker delivers it (by push, or fails over) without waiting for the lease.
pub async fn hurry_first_offer(ctx: &Ctx, conn: &mut PgConnection, call: &CallRow) {
    if let Err(e) = hurry_offer(ctx, conn, &call.id).await {
        tracing::warn!(error = %e, "offer outbox not hurried; it runs after the lease");
    }
}

/// The call as the API and webhooks show it (the `data` of `call.*` events).
pub fn call_json(call: &CallRow) -> serde_json::Value {
    // Strings, integers and string maps always serialize.
    serde_json::to_value(Call::from(call.clone())).unwrap_or_default()
}

impl From<CallRow> for Call {
    fn from(c: CallRow) -> Self {
        Call {
            id: c.id,
            object: "call".into(),
            agent_id: c.agent_id,
            device_id: c.device_id,
            to: c.to_number,
            confirm: c.confirm.to_string(),
            status: c.status.to_string(),
            reason: c.reason,
            metadata: serde_json::from_value(c.metadata).unwrap_or_default(),
            expires_at: c.expires_at,
            created_at: c.created_at,
            updated_at: c.updated_at,
            duration_s: c.duration_s,
        }
    }
}

/// What a push provider answered for one wake-up of the call: a `push` row in the call's
/// timeline (result and reason; no webhook, it is not a status change) and the metric.
pub async fn record_push(
    conn: &mut PgConnection,
    call: &CallRow,
    device_id: &str,
    provider: &str,
    outcome: &crate::push::PushOutcome,
) -> Result<()> {
    let reason = outcome.reason();
    crate::metrics::METRICS
        .push_results
        .with_label_values(&[provider, outcome.result(), reason.unwrap_or("")])
        .inc();
    let id = ids::new_id(Kind::Event);
    call_store::insert_push_event(
        conn,
        NewEvent {
            id: &id,
            org_id: &call.org_id,
            call_id: &call.id,
            status: outcome.result(),
            observed: true,
            reason,
            device_id: Some(device_id),
        },
        provider,
    )
    .await?;
    Ok(())
}

/// One transition: a `call_events` row for the timeline and a `call.<status>` event (with
/// its webhook messages) for the tenant, sharing one id. `call` is the call after the change.
async fn record_event(
    conn: &mut PgConnection,
    call: &CallRow,
    status: CallStatus,
    observed: bool,
    reason: Option<&str>,
    device_id: Option<&str>,
) -> Result<()> {
    let id = ids::new_id(Kind::Event);
    call_store::insert_event(
        conn,
        NewEvent {
            id: &id,
            org_id: &call.org_id,
            call_id: &call.id,
            status: status.as_str(),
            observed,
            reason,
            device_id,
        },
    )
    .await?;
    let mut data = call_json(call);
    data["event"] = serde_json::json!({ "status": status.as_str(), "observed": observed, "reason": reason, "device_id": device_id });
    let kind = format!("call.{status}");
    crate::webhooks::record(conn, &id, &call.org_id, &kind, Some(&call.id), &data).await?;
    Ok(())
}

/// A status change to apply to a locked call.
#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    pub status: CallStatus,
    pub observed: bool,
    pub reason: Option<&'a str>,
    pub duration_s: Option<i32>,
    pub device_id: Option<&'a str>,
}

impl<'a> Change<'a> {
    pub fn to(status: CallStatus) -> Self {
        Self {
            status,
            observed: true,
            reason: None,
            duration_s: None,
            device_id: None,
        }
    }
}

/// Applies a change to a call the caller has locked: skipped states become inferred
/// events, a repeat changes nothing, anything after the end or backwards is refused.
pub async fn apply(conn: &mut PgConnection, call: &CallRow, change: Change<'_>) -> Result<CallRow> {
    let current = call.status;
    match lifecycle::plan(current, change.status) {
        Ok(Plan::Unchanged) => Ok(call.clone()),
        Ok(Plan::Advance { inferred }) => {
            let device = change.device_id.or(call.device_id.as_deref());
            // Expiry only applies before dialing, and an offer's timeout only while the
            // call is offered: once past both, the call's timers would run for nothing.
            let timers_moot = current.is_before_dialing() && !change.status.is_before_dialing();
            // An offer's outbox job only matters while the call waits on that offer.
            let outbox_moot = current == CallStatus::Offered;
            let updated = call_store::set_status(
                conn,
                &call.org_id,
                &call.id,
                change.status,
                change.reason,
                change.duration_s,
                timers_moot,
                outbox_moot,
            )
            .await?;
            for skipped in inferred {
                record_event(conn, &updated, skipped, false, None, device).await?;
            }
            record_event(
                conn,
                &updated,
                change.status,
                change.observed,
                change.reason,
                device,
            )
            .await?;
            crate::metrics::METRICS
                .call_transitions
                .with_label_values(&[change.status.as_str(), change.reason.unwrap_or("")])
                .inc();
            Ok(updated)
        }
        Err(Refusal::AfterTerminal(status)) => Err(Error::conflict(
            "invalid_transition",
            format!(
                "the call is already {status}; it cannot become {}",
                change.status
            ),
        )),
        Err(Refusal::Backward) => Err(Error::conflict(
            "invalid_transition",
            format!(
                "the call is {current}; it cannot go back to {}",
                change.status
            ),
        )),
    }
}

/// The refusal a device gets for a call past its `expires_at`.
pub fn expired_error() -> Error {
    Error::conflict(
        "call_expired",
        "the call expired before the phone dialed it; it must not be dialed",
    )
}

/// Expires a call that has not started dialing once its `expires_at` has passed; `true`
/// when the call is (now or already) expired. The one place expiry is decided.
pub async fn expire_if_due(
    conn: &mut PgConnection,
    call: &CallRow,
    now: DateTime<Utc>,
) -> Result<bool> {
    let status = call.status;
    if status == CallStatus::Expired {
        return Ok(true);
    }
    if !status.is_before_dialing() || now < call.expires_at {
        return Ok(false);
    }
    apply(
        conn,
        call,
        Change {
            reason: Some("expired"),
            ..Change::to(CallStatus::Expired)
        },
    )
    .await?;
    Ok(true)
}

/// The call, locked, if it was offered to this device (otherwise it does not exist for it).
async fn lock_for_device(
    conn: &mut PgConnection,
    device: &DeviceRow,
    call_id: &str,
) -> Result<CallRow> {
    call_store::lock(conn, &device.org_id, call_id)
        .await?
        .filter(|c| c.agent_id == device.agent_id && c.attempted_device_ids.contains(&device.id))
        .ok_or(Error::NotFound("call"))
}

/// A device acknowledges an offer (DESIGN §4: the ack moves the call to `delivered` and
/// nothing more). The first device to ack takes the call. The inner `Err(call_expired)`
/// comes after recording the expiry, so the caller commits and then refuses.
pub async fn ack(
    conn: &mut PgConnection,
    device: &DeviceRow,
    call_id: &str,
) -> Result<std::result::Result<CallRow, Error>> {
    let call = lock_for_device(conn, device, call_id).await?;
    if expire_if_due(conn, &call, Utc::now()).await? {
        return Ok(Err(expired_error()));
    }
    let status = call.status;
    let taken_by_another = call.device_id.as_deref() != Some(device.id.as_str())
        && !matches!(
            status,
            CallStatus::Queued | CallStatus::Offered | CallStatus::Failed | CallStatus::Canceled
        );
    if taken_by_another {
        return Err(Error::conflict(
            "call_taken",
            "another device of the agent took this call",
        ));
    }
    if status.is_terminal() {
        return Err(Error::conflict(
            "call_not_active",
            format!("the call is {status}"),
        ));
    }
    if status == CallStatus::Offered {
        if call.device_id.as_deref() != Some(device.id.as_str()) {
            call_store::set_device(conn, &call.org_id, &call.id, &device.id).await?;
        }
        let change = Change {
            device_id: Some(&device.id),
            ..Change::to(CallStatus::Delivered)
        };
        return Ok(Ok(apply(conn, &call, change).await?));
    }
    Ok(Ok(call))
}

/// What a device may report about a call it took.
pub fn parse_reported_status(status: &str) -> Result<CallStatus> {
    match status.parse() {
        Ok(
            s @ (CallStatus::Accepted
            | CallStatus::Declined
            | CallStatus::Dialing
            | CallStatus::Connected
            | CallStatus::Completed
            | CallStatus::Failed),
        ) => Ok(s),
        _ => Err(Error::Invalid {
            code: "invalid_status",
            message: format!("status: `{status}` cannot be reported by a device"),
            errors: vec![crate::FieldError::new(
                "status",
                "one of accepted, declined, dialing, connected, completed, failed",
            )],
        }),
    }
}

/// A device reports a status of the call it took. Returns the call, and `Err(call_expired)`
/// after recording the expiry when the call had not started dialing by its `expires_at`:
/// no report can carry an expired call any further.
pub async fn report(
    conn: &mut PgConnection,
    device: &DeviceRow,
    call_id: &str,
    change: Change<'_>,
) -> Result<std::result::Result<CallRow, Error>> {
    let call = lock_for_device(conn, device, call_id).await?;
    if call.device_id.as_deref() != Some(device.id.as_str()) {
        return Err(Error::conflict(
            "call_taken",
            "another device of the agent took this call",
        ));
    }
    if expire_if_due(conn, &call, Utc::now()).await? {
        return Ok(Err(expired_error()));
    }
    apply(
        conn,
        &call,
        Change {
            device_id: Some(&device.id),
            ..change
        },
    )
    .await
    .map(Ok)
}

/// The caller cancels a call that has not started dialing.
pub async fn cancel(conn: &mut PgConnection, org_id: &str, call_id: &str) -> Result<CallRow> {
    let call = call_store::lock(conn, org_id, call_id)
        .await?
        .ok_or(Error::NotFound("call"))?;
    let status = call.status;
    if status == CallStatus::Canceled {
        return Ok(call);
    }
    if !status.is_before_dialing() {
        return Err(Error::conflict(
            "call_not_cancelable",
            format!("the call is {status}; only a call that is not dialing yet can be canceled"),
        ));
    }
    apply(conn, &call, Change::to(CallStatus::Canceled)).await
}
