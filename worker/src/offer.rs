//! Routing a call to a device (claim step S17): the first reachable candidate gets the
//! offer — on its live socket wherever it is held, else through its push channel. The
//! offer is recorded *before* it is sent, so an ack can never arrive for an offer the
//! database does not know. The same transaction schedules the ack timeout and a
//! `call.deliver` job (the offer's outbox): the worker sends inline and deletes it; if the
//! send fails transiently the job retries it, and if the worker dies the job sends it after
//! the lease (agents ignore duplicate offers).

use std::time::Duration;

use chrono::Utc;
use pushdial_core::calls::{self, reachability, Change, Reach};
use pushdial_core::lifecycle::{CallStatus, Progress};
use pushdial_core::protocol::{CancelReason, ToPhone};
use pushdial_core::push::{OfferPayload, PushOutcome, PushTarget};
use pushdial_core::queue;
use pushdial_core::queue::jobs::{CallJob, OfferJob};
use pushdial_core::store::calls::{self as call_store, CallRow};
use pushdial_core::store::devices::{self as device_store, DeviceRow};

use crate::{JobError, Worker};

async fn load(worker: &Worker, org_id: &str, call_id: &str) -> Result<Option<CallRow>, JobError> {
    let mut conn = worker.ctx.db.acquire().await?;
    Ok(call_store::get(&mut conn, org_id, call_id).await?)
}

/// `call.offer`: the first offer of a new call.
pub async fn offer_call(worker: &Worker, p: &CallJob) -> Result<(), JobError> {
    let Some(call) = load(worker, &p.org_id, &p.call_id).await? else {
        return Ok(());
    };
    match call.status {
        CallStatus::Queued => route(worker, call).await,
        // This job ran before and recorded the offer, but its worker stopped or died before
        // finishing: if the inline send did not complete, the outbox job is still waiting
        // for the old lease to run out. Send it now instead.
        CallStatus::Offered => {
            let mut conn = worker.ctx.db.acquire().await?;
            calls::hurry_offer(&worker.ctx, &mut conn, &call.id).await?;
            Ok(())
        }
        _ => Ok(()), // ended
    }
}

/// `call.deliver`: sends a recorded offer that the inline send did not hand over.
pub async fn deliver_offer(worker: &Worker, p: &OfferJob) -> Result<(), JobError> {
    let Some(call) = load(worker, &p.org_id, &p.call_id).await? else {
        return Ok(());
    };
    let current = call.status == CallStatus::Offered
        && call.device_id.as_deref() == Some(p.device_id.as_str());
    if !current {
        return Ok(());
    }
    let device_id = &p.device_id;
    let device = {
        let mut conn = worker.ctx.db.acquire().await?;
        device_store::get(&mut conn, &call.org_id, device_id).await?
    };
    let Some(device) = device.filter(|d| d.revoked_at.is_none()) else {
        return Ok(());
    };
    let reach = reachability(&worker.ctx, std::slice::from_ref(&device)).await;
    // A miss is left to the ack timeout, which moves on to the next device.
    match deliver(worker, &call, &device, &reach[0]).await? {
        Delivery::AwaitSocket(why) => Err(JobError::defer(AWAIT_SOCKET_EVERY, why)),
        Delivery::Handed | Delivery::Missed { .. } => Ok(()),
    }
}

/// `call.offer_timeout`: the device did not ack in time; offer the next one.
pub async fn offer_timeout(worker: &Worker, p: &OfferJob) -> Result<(), JobError> {
    let Some(call) = load(worker, &p.org_id, &p.call_id).await? else {
        return Ok(());
    };
    let still_waiting = call.status == CallStatus::Offered
        && call.device_id.as_deref() == Some(p.device_id.as_str());
    if still_waiting {
        tracing::info!(call_id = %call.id, device_id = %p.device_id, "offer not acknowledged in time; failing over");
        route(worker, call).await
    } else {
        // Already failed over; if that run stopped before its inline send finished, its
        // outbox job waits for the old lease. Send it now instead.
        if call.status == CallStatus::Offered {
            let mut conn = worker.ctx.db.acquire().await?;
            calls::hurry_offer(&worker.ctx, &mut conn, &call.id).await?;
        }
        Ok(())
    }
}

/// `call.expire`: a call not dialing by its `expires_at` expires.
pub async fn expire_call(worker: &Worker, p: &CallJob) -> Result<(), JobError> {
    let now = Utc::now();
    let mut tx = worker.ctx.db.begin().await?;
    let Some(call) = call_store::lock(&mut tx, &p.org_id, &p.call_id).await? else {
        return Ok(());
    };
    let before = call.status;
    if before.is_before_dialing() && now < call.expires_at {
        let early = (call.expires_at - now)
            .to_std()
            .unwrap_or(Duration::from_secs(1));
        return Err(JobError::defer(early, "ran before the call's expiry"));
    }
    if before == CallStatus::Expired || !calls::expire_if_due(&mut tx, &call, now).await? {
        return Ok(());
    }
    tx.commit().await?;
    tracing::info!(call_id = %call.id, "call expired");
    if let Some(device) = &call.device_id {
        let message = ToPhone::CallCanceled {
            call_id: call.id.clone(),
            reason: Some(CancelReason::Expired),
        };
        if let Err(e) = worker
            .ctx
            .presence
            .send_to_device(device, None, &message)
            .await
        {
            tracing::debug!(error = %e, "expiry not forwarded to the phone");
        }
    }
    Ok(())
}

/// How one delivery attempt went.
enum Delivery {
    Handed,
    /// Not handed to this device; try the next.
    Missed {
        /// Why, when the push provider said (`push_rejected`, `push_credential_failed`).
        push_failure: Option<&'static str>,
    },
    /// The device holds (or held a moment ago) a live socket that cannot be reached now —
    /// Redis is down, or the api named by its presence is gone and the phone is
    /// reconnecting — and it has no push channel: the offer stays with it and is sent
    /// again shortly, until it is handed over or its ack timeout moves the call on.
    AwaitSocket(String),
}

/// How often an offer waiting for its device's socket is tried again (and the api the
/// phone reconnects to sends it pending offers at once).
const AWAIT_SOCKET_EVERY: Duration = Duration::from_millis(500);

/// Offers the call to the next reachable device that was not tried yet; fails the call when
/// none is left.
async fn route(worker: &Worker, call: CallRow) -> Result<(), JobError> {
    let ctx = &worker.ctx;
    let devices = {
        let mut conn = ctx.db.acquire().await?;
        match &call.target_device_id {
            Some(id) => device_store::get(&mut conn, &call.org_id, id)
                .await?
                .filter(|d| d.revoked_at.is_none())
                .into_iter()
                .collect(),
            None => device_store::routable(&mut conn, &call.org_id, &call.agent_id).await?,
        }
    };
    let candidates: Vec<DeviceRow> = devices
        .into_iter()
        .filter(|d| !call.attempted_device_ids.contains(&d.id))
        .collect();
    let reach = reachability(ctx, &candidates).await;

    let mut expect_status = call.status;
    let mut expect_device = call.device_id.clone();
    let mut push_failure = None;
    // Offers recorded in this run but not handed over do not count: the phone never knew.
    let offered_before = !call.attempted_device_ids.is_empty();
    for (device, reach) in candidates.iter().zip(reach) {
        if !reach.is_reachable() {
            continue;
        }
        let Some(outbox) = record_offer(
            worker,
            &call,
            expect_status,
            expect_device.as_deref(),
            &device.id,
        )
        .await?
        else {
            return Ok(()); // the call moved on (acked, canceled, expired) meanwhile
        };
        expect_status = CallStatus::Offered;
        expect_device = Some(device.id.clone());
        let delivered = deliver(worker, &call, device, &reach).await;
        let mut conn = ctx.db.acquire().await?;
        match delivered {
            Ok(Delivery::Handed) => {
                queue::delete(&mut conn, outbox).await?;
                return Ok(());
            }
            Ok(Delivery::Missed { push_failure: why }) => {
                queue::delete(&mut conn, outbox).await?;
                push_failure = push_failure.or(why);
            }
            Ok(Delivery::AwaitSocket(why)) => {
                // The outbox job sends it again; the ack timeout still bounds the wait.
                tracing::info!(device_id = %device.id, reason = %why, "offer waits for the phone's socket");
                queue::reschedule(&mut conn, outbox, AWAIT_SOCKET_EVERY, &why).await?;
                return Ok(());
            }
            Err(e) => {
                // The outbox job retries this device; the ack timeout still bounds the wait.
                let delay = queue::backoff(1, e.retry_after);
                tracing::warn!(device_id = %device.id, error = %e.message, ?delay, "offer not sent; will retry");
                queue::reschedule(&mut conn, outbox, delay, &e.message).await?;
                return Ok(());
            }
        }
    }
    let reason = if let Some(why) = push_failure {
        why
    } else if offered_before {
        "not_delivered"
    } else {
        "no_device_reachable"
    };
    let mut tx = ctx.db.begin().await?;
    let Some(current) = call_store::lock(&mut tx, &call.org_id, &call.id).await? else {
        return Ok(());
    };
    let status = current.status;
    if matches!(status, CallStatus::Queued | CallStatus::Offered)
        && current.device_id == expect_device
    {
        calls::apply(
            &mut tx,
            &current,
            Change {
                reason: Some(reason),
                ..Change::to(CallStatus::Failed)
            },
        )
        .await?;
        tx.commit().await?;
        tracing::info!(call_id = %call.id, reason, "call failed: no device left to offer");
    }
    Ok(())
}

/// Records that the call is offered to `device_id`, with its ack timeout and its outbox
/// job, in one transaction. Returns the outbox job's id, or `None` if the call is no longer
/// as the router saw it.
async fn record_offer(
    worker: &Worker,
    call: &CallRow,
    expect_status: CallStatus,
    expect_device: Option<&str>,
    device_id: &str,
) -> Result<Option<i64>, JobError> {
    let ctx = &worker.ctx;
    let mut tx = ctx.db.begin().await?;
    let Some(current) = call_store::lock(&mut tx, &call.org_id, &call.id).await? else {
        return Ok(None);
    };
    if current.status != expect_status || current.device_id.as_deref() != expect_device {
        return Ok(None);
    }
    if Utc::now() >= current.expires_at {
        return Ok(None); // the expiry job ends it
    }
    if !call_store::mark_offered(
        &mut tx,
        &call.org_id,
        &call.id,
        expect_status,
        expect_device,
        device_id,
    )
    .await?
    {
        return Ok(None);
    }
    if expect_status == CallStatus::Queued {
        let change = Change {
            device_id: Some(device_id),
            ..Change::to(CallStatus::Offered)
        };
        calls::apply(&mut tx, &current, change).await?;
    }
    let offer = OfferJob {
        call_id: call.id.clone(),
        org_id: call.org_id.clone(),
        device_id: device_id.to_owned(),
    };
    let outbox = calls::schedule_offer(&mut tx, ctx, &offer, Utc::now(), None).await?;
    tx.commit().await?;
    Ok(Some(outbox))
}

/// Sends the offer to one device: its live socket first, then its push channel.
async fn deliver(
    worker: &Worker,
    call: &CallRow,
    device: &DeviceRow,
    reach: &Reach,
) -> Result<Delivery, JobError> {
    let ctx = &worker.ctx;
    let offer = OfferPayload::new(&call.id, call.expires_at);
    let push_usable = device.push_channel.is_some()
        && device.push_token.is_some()
        && device.push_rejected_at.is_none();
    if let Reach::Live(instance) = reach {
        let message = ToPhone::offer(&call.id, call.expires_at);
        let miss = match ctx
            .presence
            .send_to_device(&device.id, instance.as_deref(), &message)
            .await
        {
            Ok(true) => {
                tracing::info!(call_id = %call.id, device_id = %device.id, "offer sent on live socket");
                observe_offer(call, "socket");
                return Ok(Delivery::Handed);
            }
            // No api holds the socket now (it died, or is subscribing again after Redis
            // came back), or Redis has lost the presence key while PostgreSQL still sees
            // the heartbeat: the phone is likely reconnecting.
            Ok(false) => "socket gone".to_owned(),
            Err(e) => format!("live delivery unavailable: {e}"),
        };
        if !push_usable {
            // A phone that was there a moment ago and has no other channel: wait for its
            // socket (the api it reconnects to sends pending offers) rather than give up.
            pushdial_core::metrics::METRICS
                .offers_resent
                .with_label_values(&["waiting_for_socket"])
                .inc();
            return Ok(Delivery::AwaitSocket(miss));
        }
        tracing::info!(device_id = %device.id, reason = %miss, "live delivery failed; trying push");
    }
    let (Some(channel), Some(token)) = (&device.push_channel, &device.push_token) else {
        return Ok(Delivery::Missed { push_failure: None });
    };
    if device.push_rejected_at.is_some() {
        return Ok(Delivery::Missed { push_failure: None });
    }
    // Push sends per device are limited (shared by every worker; fails open without Redis).
    let per_device = pushdial_core::limits::per_minute(ctx.config.limit_push_per_device_per_minute);
    if let Err(pushdial_core::Error::RateLimited { retry_after, .. }) =
        pushdial_core::limits::take(ctx, "push", &device.id, per_device).await
    {
        return Err(JobError::defer(
            retry_after,
            "push rate limit of the device",
        ));
    }
    let target = PushTarget {
        org_id: device.org_id.clone(),
        device_id: device.id.clone(),
        channel: channel.clone(),
        token: token.clone(),
    };
    let span = tracing::info_span!("push", channel = %channel, device_id = %device.id);
    let outcome = tracing::Instrument::instrument(worker.push.send(&target, &offer), span).await;
    // The timeline entry must not change what happens next (a resend, a skipped rejection).
    let recorded = match ctx.db.acquire().await {
        Ok(mut conn) => calls::record_push(&mut conn, call, &device.id, channel, &outcome).await,
        Err(e) => Err(e.into()),
    };
    if let Err(e) = recorded {
        tracing::warn!(device_id = %device.id, error = %e, "push answer not recorded in the timeline");
    }
    match outcome {
        PushOutcome::Accepted => {
            observe_offer(call, channel);
            tracing::info!(device_id = %device.id, channel = %channel, "offer accepted by push service");
            Ok(Delivery::Handed)
        }
        // A dead token, or an endpoint the egress policy refuses (an old registration, or a
        // policy made stricter since): the channel is never used again, the device must
        // register a new one.
        PushOutcome::Rejected(_) | PushOutcome::EgressRefused(_) => {
            let reason = outcome.reason().unwrap_or_default();
            tracing::warn!(device_id = %device.id, reason = %reason, "push token rejected");
            let mut conn = ctx.db.acquire().await?;
            device_store::mark_push_rejected(&mut conn, &device.org_id, &device.id).await?;
            drop(conn);
            if let Err(e) =
                pushdial_core::devices::announce_if_changed(ctx, &device.org_id, &device.id, true)
                    .await
            {
                tracing::warn!(device_id = %device.id, error = %e, "reachability event not recorded");
            }
            Ok(Delivery::Missed {
                push_failure: Some("push_rejected"),
            })
        }
        // The sender's credential was refused (recorded on the credential by the gateway):
        // the device is not at fault, but cannot be woken now; try the next one.
        PushOutcome::CredentialFailed { reason, .. } => {
            tracing::warn!(device_id = %device.id, reason = %reason, "push credential refused");
            Ok(Delivery::Missed {
                push_failure: Some("push_credential_failed"),
            })
        }
        PushOutcome::Unsupported => {
            tracing::warn!(device_id = %device.id, channel = %channel, "no credential serves this push channel");
            Ok(Delivery::Missed { push_failure: None })
        }
        PushOutcome::Failed { error, retry_after } => Err(JobError {
            message: error,
            retry_after,
            defer: false,
        }),
    }
}

/// Click to offer: from the call's creation to the offer handed to the device.
fn observe_offer(call: &CallRow, channel: &str) {
    let elapsed = (Utc::now() - call.created_at).to_std().unwrap_or_default();
    pushdial_core::metrics::METRICS
        .click_to_offer
        .with_label_values(&[channel])
        .observe(elapsed.as_secs_f64());
}
