//! Delivering webhook messages: one signed POST per attempt (Standard Webhooks), every
//! attempt recorded, retries on the configured schedule (±20 % jitter, `Retry-After`
//! honoured on 429/503), 410 disabling the endpoint at once, an endpoint failing for too
//! long disabled with an `endpoint.disabled` event to the organization's other endpoints.
//! Messages with the same ordering key (a call) reach an endpoint in order: a message waits
//! while an earlier one of its chain is pending.

use std::time::{Duration, Instant};

use chrono::Utc;
use pushdial_core::crypto::Bound;
use pushdial_core::ids::{self, Kind};
use pushdial_core::queue::jobs::DeliveryJob;
use pushdial_core::queue::{self, Job};
use pushdial_core::ratelimit::Limit;
use pushdial_core::store::webhooks::{self as store, Delivery, NewAttempt};
use pushdial_core::webhooks::{self, signing};

use crate::{JobError, Ran, Worker};

/// How much of a receiver's answer is kept with the attempt.
const KEPT_BODY: usize = 4096;
/// How long a message waits before looking again whether its predecessor is done — a
/// fallback: the predecessor wakes it when it finishes.
const TURN_POLL: Duration = Duration::from_secs(2);
/// Bounds of a receiver's `Retry-After`.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(24 * 3600);

/// What one attempt came to.
struct Answer {
    duration_ms: i32,
    status: Option<u16>,
    body: Option<String>,
    error: Option<String>,
    retry_after: Option<Duration>,
}

pub async fn deliver(worker: &Worker, job: &Job, p: &DeliveryJob) -> Result<Ran, JobError> {
    let message_id = p.message_id;
    let ctx = &worker.ctx;
    let mut conn = ctx.db.acquire().await?;
    let Some(d) = store::delivery(&mut conn, message_id).await? else {
        return Ok(Ran::Finished);
    };
    if d.status != "pending" {
        return Ok(Ran::Finished);
    }
    if !d.enabled {
        store::fail_message(&mut conn, message_id, "the endpoint is disabled").await?;
        return Ok(Ran::Finished);
    }
    if let Some(key) = &d.ordering_key {
        if let Some(next) = store::blocked_until(&mut conn, &d.endpoint_id, key, message_id).await?
        {
            let wait = next
                .and_then(|at| (at - Utc::now()).to_std().ok())
                .map_or(TURN_POLL, |until| until + Duration::from_millis(50));
            return Err(JobError::defer(
                wait,
                "an earlier event of this call is still pending",
            ));
        }
    }
    drop(conn);
    if let Some(rate) = d.rate_limit_per_s {
        // Shared by every worker; fails open when Redis is down (a delivery too many is
        // better than none).
        let limit = Limit::per_second(rate.max(1) as u32);
        match ctx
            .presence
            .rate_limit(&format!("we:{}", d.endpoint_id), limit)
            .await
        {
            Ok(d) if !d.allowed => {
                return Err(JobError::defer(d.retry_after, "endpoint rate limit"))
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "endpoint rate limit unavailable; delivering"),
        }
    }

    let answer = send(worker, &d).await;
    finish(worker, job, &d, answer).await
}

/// Signs and sends one attempt.
async fn send(worker: &Worker, d: &Delivery) -> Answer {
    let started = Instant::now();
    let failed = |error: String| Answer {
        duration_ms: elapsed_ms(started),
        status: None,
        body: None,
        error: Some(storable(&error)),
        retry_after: None,
    };
    // A refusal of the egress policy is said as such, never as the target's status.
    let url = match worker.ctx.egress.check_url(&d.url) {
        Ok(u) => u,
        Err(e) => return failed(egress_refused(&e)),
    };
    let mut secrets = Vec::with_capacity(2);
    let bound = Bound::WebhookSecret {
        org_id: &d.org_id,
        endpoint_id: &d.endpoint_id,
    };
    match worker.ctx.secrets.open(bound, &d.secret_sealed) {
        Ok(s) => secrets.push(String::from_utf8_lossy(&s).into_owned()),
        Err(e) => return failed(format!("signing secret unreadable: {e}")),
    }
    if let (Some(previous), Some(until)) = (&d.previous_secret_sealed, d.previous_secret_expires_at)
    {
        if until > Utc::now() {
            if let Ok(s) = worker.ctx.secrets.open(bound, previous) {
                secrets.push(String::from_utf8_lossy(&s).into_owned());
            }
        }
    }
    let body = serde_json::json!({
        "id": d.event_id,
        "type": d.event_type,
        "created_at": d.event_created_at.to_rfc3339(),
        "org_id": d.org_id,
        "data": d.event_data,
    })
    .to_string();
    let timestamp = Utc::now().timestamp();
    let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let signature = match signing::signature_header(&refs, &d.event_id, timestamp, body.as_bytes())
    {
        Ok(s) => s,
        Err(e) => return failed(e),
    };
    let response = worker
        .webhook_http
        .post(url)
        .header("content-type", "application/json")
        .header(
            "user-agent",
            concat!("pushdial-webhooks/", env!("CARGO_PKG_VERSION")),
        )
        .header("webhook-id", &d.event_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await;
    let mut response = match response {
        Ok(r) => r,
        Err(e) => {
            return failed(match pushdial_core::egress::EgressError::of(&e) {
                Some(refused) => egress_refused(&refused),
                None => describe(&e),
            })
        }
    };
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(pushdial_core::egress::parse_retry_after);
    let mut kept = Vec::new();
    while kept.len() < KEPT_BODY {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                kept.extend_from_slice(&chunk[..chunk.len().min(KEPT_BODY - kept.len())])
            }
            _ => break,
        }
    }
    Answer {
        duration_ms: elapsed_ms(started),
        status: Some(status),
        body: Some(storable(&String::from_utf8_lossy(&kept))),
        error: None,
        retry_after,
    }
}

/// An attempt the egress policy stopped before any connection (at the URL, or at the
/// addresses its host resolved to): `egress_refused (<kind>): <why>`.
fn egress_refused(e: &pushdial_core::egress::EgressError) -> String {
    format!("egress_refused ({}): {e}", e.kind())
}

/// Text a receiver sent, storable: PostgreSQL text cannot hold NUL.
fn storable(text: &str) -> String {
    text.replace('\0', "\u{fffd}")
}

/// A transport error in words a tenant can act on.
fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    if e.is_timeout() {
        format!("timed out: {text}")
    } else {
        text
    }
}

/// Records the attempt and decides what comes next, settling the job in the same
/// transaction (one commit per attempt).
async fn finish(worker: &Worker, job: &Job, d: &Delivery, answer: Answer) -> Result<Ran, JobError> {
    let ctx = &worker.ctx;
    let attempt = d.attempts + 1;
    let success = answer.status.is_some_and(|s| (200..300).contains(&s));
    let gone = answer.status == Some(410);
    let next = if success || gone {
        None
    } else {
        let scheduled = webhooks::retry_delay(
            &ctx.webhook_schedule,
            attempt as u32,
            &mut rand::thread_rng(),
        );
        match (scheduled, answer.status, answer.retry_after) {
            // Never sooner than the schedule, and not beyond a day.
            (Some(planned), Some(429 | 503), Some(asked)) => {
                Some(asked.min(RETRY_AFTER_MAX).max(planned))
            }
            (scheduled, _, _) => scheduled,
        }
    };
    let result = match (success, gone, next) {
        (true, _, _) => "delivered",
        (_, true, _) => "gone",
        (_, _, Some(_)) => "retry",
        _ => "failed",
    };
    pushdial_core::metrics::METRICS
        .webhook_attempts
        .with_label_values(&[result])
        .inc();
    let status = match (success, next) {
        (true, _) => "delivered",
        (false, Some(_)) => "pending",
        (false, None) => "failed",
    };
    let next_at = next
        .and_then(|n| chrono::Duration::from_std(n).ok())
        .map(|n| Utc::now() + n);

    // Whether the endpoint has failed for too long, from the run of failures the delivery
    // read (a run that this failure starts begins now).
    let failing_since = if success {
        None
    } else {
        Some(d.failing_since.unwrap_or_else(Utc::now))
    };
    let too_long = failing_since.is_some_and(|since| {
        chrono::Duration::from_std(ctx.config.webhook_disable_after)
            .is_ok_and(|limit| Utc::now() - since >= limit)
    });
    let reason = if gone {
        Some("the endpoint answered 410 Gone")
    } else if too_long {
        Some("the endpoint kept failing")
    } else {
        None
    };
    // Retried later, unless the endpoint is being disabled (its messages fail with it).
    let retry = next.filter(|_| !success && reason.is_none());

    let mut tx = ctx.db.begin().await?;
    // Only the lease holder records the outcome: a rescued (slow) delivery must not write
    // over the worker that took it over. Settling the job checks the lease and locks the
    // job's row until the commit, so a rescue cannot slip in between.
    let held = match retry {
        Some(delay) => queue::defer(&mut tx, job, &worker.id, delay).await?,
        None => queue::complete(&mut tx, job, &worker.id).await?,
    };
    if !held {
        tracing::warn!(
            message_id = d.message_id,
            "lease lost during the delivery; outcome dropped"
        );
        return Ok(Ran::Settled { deferred: false });
    }
    // The endpoint row before the message rows, in the order disabling and deleting take
    // them. Deleted meanwhile: its messages and attempts went with it.
    if !store::hold_endpoint(&mut tx, &d.org_id, &d.endpoint_id).await? {
        tx.commit().await?;
        return Ok(Ran::Settled { deferred: false });
    }
    store::note_outcome(&mut tx, &d.endpoint_id, success, d.failing_since).await?;
    store::record_attempt(
        &mut tx,
        NewAttempt {
            org_id: &d.org_id,
            endpoint_id: &d.endpoint_id,
            message_id: d.message_id,
            event_id: &d.event_id,
            attempt,
            status_code: answer.status.map(i32::from),
            response_body: answer.body.as_deref(),
            error: answer.error.as_deref(),
            duration_ms: answer.duration_ms,
        },
        status,
        next_at,
    )
    .await?;
    if let Some(reason) = reason {
        if store::disable_endpoint(&mut tx, &d.org_id, &d.endpoint_id, reason).await? {
            let data = serde_json::json!({ "id": d.endpoint_id, "object": "webhook_endpoint", "url": d.url, "disabled_reason": reason });
            webhooks::record(
                &mut tx,
                &ids::new_id(Kind::Event),
                &d.org_id,
                "endpoint.disabled",
                None,
                &data,
            )
            .await?;
            tracing::warn!(endpoint_id = %d.endpoint_id, reason, "webhook endpoint disabled");
        }
    }
    // Done with this message for good: the next event of its chain may go now.
    let woke = match (&d.ordering_key, status) {
        (Some(key), "delivered" | "failed") => {
            store::wake_successor(&mut tx, &d.endpoint_id, key, d.message_id).await?
        }
        _ => false,
    };
    tx.commit().await?;
    if reason.is_some() || woke {
        ctx.wake_workers().await;
    }
    if retry.is_some() {
        tracing::debug!(attempt, "webhook attempt failed; retrying later");
    }
    Ok(Ran::Settled {
        deferred: retry.is_some(),
    })
}

/// Time of one attempt, for the attempt log.
fn elapsed_ms(started: Instant) -> i32 {
    started.elapsed().as_millis().min(i32::MAX as u128) as i32
}
