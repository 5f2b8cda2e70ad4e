//! pushdial-worker: claims jobs from the Postgres queue and runs them — offering calls to
//! devices (live socket through Redis, or a push gateway), failing over when an offer is
//! not acknowledged in time, and expiring calls. Every handler is idempotent: a job may
//! run twice (after a crash, or when a lease was rescued), and must then change nothing
//! twice.

pub mod offer;
pub mod registry;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use pushdial_core::push::PushGateway;
use pushdial_core::queue::{self, Job, Lane};
use pushdial_core::shutdown::Stop;
use pushdial_core::Ctx;
use tokio::task::{JoinHandle, JoinSet};

use crate::registry::Registry;

/// Lane keys (webhook endpoints with jobs waiting) one bulk claim looks at: a probe of the
/// index each. Beyond it, claims take the keys in turns.
const BULK_KEYS_PER_CLAIM: i64 = 512;

/// The shortest pause of a lane after a claim that took nothing.
const IDLE_AFTER_EMPTY_CLAIM: Duration = Duration::from_millis(20);

/// Aborts a helper task when the worker that owns it goes away.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Why a job did not finish: it will be retried after a backoff — or, when `defer` is set,
/// run again after exactly `retry_after` without counting as a failed attempt (a webhook
/// waiting for its turn or for its next scheduled attempt).
#[derive(Debug)]
pub struct JobError {
    pub message: String,
    /// A floor for the next attempt, e.g. from a push service's `Retry-After`.
    pub retry_after: Option<Duration>,
    pub defer: bool,
}

impl JobError {
    /// Run the job again after `delay`; not a failure.
    pub fn defer(delay: Duration, why: impl Into<String>) -> Self {
        JobError {
            message: why.into(),
            retry_after: Some(delay),
            defer: true,
        }
    }
}

impl<E: std::fmt::Display> From<E> for JobError {
    fn from(e: E) -> Self {
        JobError {
            message: e.to_string(),
            retry_after: None,
            defer: false,
        }
    }
}

/// One worker: its identity in job leases and what it needs to run jobs.
#[derive(Clone)]
pub struct Worker {
    pub ctx: Ctx,
    pub push: Arc<dyn PushGateway>,
    /// The lease owner written into claimed rows; unique per worker.
    pub id: String,
    /// The HTTP client of webhook deliveries: no redirects, SSRF-checked addresses.
    pub webhook_http: reqwest::Client,
    /// The handler of each kind of job.
    pub jobs: Arc<Registry>,
}

impl Worker {
    pub fn new(ctx: Ctx, push: Arc<dyn PushGateway>) -> Self {
        let id = format!(
            "worker-{}",
            pushdial_core::secrets::new_token("")
                .get(..12)
                .unwrap_or("0")
        );
        let webhook_http = ctx.egress.client(ctx.config.webhook_timeout);
        Worker {
            ctx,
            push,
            id,
            webhook_http,
            jobs: Arc::new(Registry::standard()),
        }
    }

    /// Runs until `stop` fires, then waits (bounded by the shutdown grace) for the jobs in
    /// hand. Each lane has its own claim loop and slots: the call lane
    /// (`PUSHDIAL_WORKER_CONCURRENCY`) and the bulk lane (`PUSHDIAL_WEBHOOK_CONCURRENCY`),
    /// so that no backlog of deliveries ever stands between a call and its offer. Jobs run
    /// in `JoinSet`s owned by this future: if the future is dropped (the worker is killed),
    /// its jobs stop with it and their leases expire to be rescued.
    pub async fn run(self, stop: Stop) {
        let wake = self.ctx.notifier.local.clone();
        // Wake-ups from other processes arrive through Redis.
        let follower = {
            let ctx = self.ctx.clone();
            let stop = stop.clone();
            let wake = wake.clone();
            AbortOnDrop(tokio::spawn(async move {
                ctx.presence.follow_jobs(stop, || wake.notify_one()).await
            }))
        };
        // One wake-up (a permit of `local`) wakes both lanes: each waits on its own.
        let lanes = [
            Arc::new(tokio::sync::Notify::new()),
            Arc::new(tokio::sync::Notify::new()),
        ];
        let relay = {
            let lanes = lanes.clone();
            AbortOnDrop(tokio::spawn(async move {
                loop {
                    wake.notified().await;
                    for lane in &lanes {
                        lane.notify_one();
                    }
                }
            }))
        };
        let rescuer = AbortOnDrop(tokio::spawn(rescue_loop(self.ctx.clone(), stop.clone())));
        let missing = self.jobs.missing();
        if !missing.is_empty() {
            tracing::error!(
                ?missing,
                "no handler for these kinds of job: they fail until buried"
            );
        }
        tracing::info!(
            worker = %self.id,
            calls = self.ctx.config.worker_concurrency,
            bulk = self.ctx.config.webhook_concurrency,
            "worker started"
        );
        let [call_wake, bulk_wake] = lanes;
        let (mut calls, mut bulk) = tokio::join!(
            self.claim_loop(Lane::Call, call_wake, &stop),
            self.claim_loop(Lane::Bulk, bulk_wake, &stop),
        );
        // Let running jobs finish, within the grace; the rest are stopped and their leases
        // handed back, so another worker takes them over at once.
        let grace = self.ctx.config.shutdown_grace;
        let _ = tokio::time::timeout(grace, async {
            while calls.join_next().await.is_some() {}
            while bulk.join_next().await.is_some() {}
        })
        .await;
        if !calls.is_empty() || !bulk.is_empty() {
            calls.shutdown().await;
            bulk.shutdown().await;
            let released = match self.ctx.db.acquire().await {
                Ok(mut conn) => queue::release(&mut conn, &self.id).await,
                Err(e) => Err(e),
            };
            match released {
                Ok(n) => {
                    tracing::info!(jobs = n, "released the leases of unfinished jobs");
                    if let Err(e) = self.ctx.presence.publish_jobs().await {
                        tracing::debug!(error = %e, "wake-up after release not sent");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "leases not released; they will expire"),
            }
        }
        drop((follower, relay, rescuer));
        tracing::info!(worker = %self.id, "worker stopped");
    }

    /// Claims and runs the jobs of one lane until `stop` fires; returns the jobs still
    /// running then.
    async fn claim_loop(
        &self,
        lane: Lane,
        wake: Arc<tokio::sync::Notify>,
        stop: &Stop,
    ) -> JoinSet<()> {
        let slots = match lane {
            Lane::Call => self.ctx.config.worker_concurrency,
            Lane::Bulk => self.ctx.config.webhook_concurrency,
        }
        .max(1);
        let org_cap = lane.org_share(slots) as i64;
        let key_cap = i64::from(self.ctx.config.webhook_endpoint_concurrency.max(1));
        let lease = self.ctx.config.job_lease;
        // Where the next look for bulk lane keys starts: past the last one seen when a look
        // found as many as it may take, so that every key gets its turn however many wait.
        let mut after = String::new();
        // Claims in a row that found nothing they may take: the pause after one doubles,
        // up to the poll interval, so that a backlog held back by its shares (one tenant's
        // endpoint at its cap) does not keep the lane querying 50 times a second.
        let mut empty_claims: u32 = 0;
        let mut running = JoinSet::new();
        while !stop.is_stopped() {
            while running.try_join_next().is_some() {}
            let free = slots.saturating_sub(running.len());
            let mut got = 0;
            if free > 0 {
                let claimed = match self.ctx.db.acquire().await {
                    Ok(mut conn) => match lane {
                        Lane::Call => {
                            queue::claim_calls(&mut conn, &self.id, free as i64, lease, org_cap)
                                .await
                        }
                        Lane::Bulk => {
                            match queue::bulk_keys(&mut conn, &after, BULK_KEYS_PER_CLAIM).await {
                                Ok(keys) => {
                                    after = match keys.last() {
                                        Some(last) if keys.len() as i64 == BULK_KEYS_PER_CLAIM => {
                                            last.key.clone()
                                        }
                                        _ => String::new(),
                                    };
                                    let claim = queue::BulkClaim {
                                        keys: &keys,
                                        org_cap,
                                        key_cap,
                                    };
                                    queue::claim_bulk(
                                        &mut conn,
                                        &self.id,
                                        free as i64,
                                        lease,
                                        claim,
                                    )
                                    .await
                                }
                                Err(e) => Err(e),
                            }
                        }
                    },
                    Err(e) => Err(e),
                };
                match claimed {
                    Ok(jobs) => {
                        got = jobs.len();
                        for job in jobs {
                            let worker = self.clone();
                            running.spawn(async move { worker.execute(job).await });
                        }
                    }
                    Err(e) => {
                        tracing::warn!(lane = lane.name(), error = %e, "claiming jobs failed")
                    }
                }
                // Probably more waiting (a claim takes turns, and may leave some for the
                // next one); or, for the bulk lane, keys past those this claim looked at.
                if got > 0 || !after.is_empty() {
                    empty_claims = 0;
                    continue;
                }
                empty_claims = empty_claims.saturating_add(1);
            }
            // After a claim that found nothing it may take, what is due belongs to
            // organizations or endpoints at their share: a job finishing (or a wake-up)
            // ends the pause, not a timer spinning on them.
            let floor = if free > 0 {
                IDLE_AFTER_EMPTY_CLAIM
                    .saturating_mul(1 << empty_claims.saturating_sub(1).min(10))
                    .min(self.ctx.config.job_poll_interval)
            } else {
                Duration::ZERO
            };
            let pause = self.idle_pause(lane).await.max(floor);
            tokio::select! {
                _ = stop.wait() => break,
                _ = wake.notified() => {}
                _ = tokio::time::sleep(pause) => {}
                Some(_) = running.join_next(), if !running.is_empty() => {}
            }
        }
        running
    }

    /// How long a lane sleeps when idle: until its next scheduled job, at most the poll
    /// interval.
    async fn idle_pause(&self, lane: Lane) -> Duration {
        let poll = self.ctx.config.job_poll_interval;
        let next = match self.ctx.db.acquire().await {
            Ok(mut conn) => queue::next_due(&mut conn, lane).await.ok().flatten(),
            Err(_) => None,
        };
        match next {
            Some(at) => (at - chrono::Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(poll)
                .max(Duration::from_millis(5)),
            None => poll,
        }
    }

    /// Runs one job in its own span, which carries the call it is about and continues the
    /// trace that enqueued it.
    async fn execute(&self, job: Job) {
        use tracing::Instrument;
        let span = tracing::info_span!(
            "job",
            job_id = job.id,
            kind = %job.kind,
            attempt = job.attempts,
            call_id = tracing::field::Empty,
        );
        if let Some(call_id) = job.payload.get("call_id").and_then(|v| v.as_str()) {
            span.record("call_id", call_id);
        }
        pushdial_core::telemetry::adopt(&span, &job.payload);
        self.run_job(job).instrument(span).await
    }

    async fn run_job(&self, job: Job) {
        let m = &*pushdial_core::metrics::METRICS;
        m.job_wait
            .with_label_values(&[job.kind.as_str()])
            .observe(job.waited_seconds.max(0.0));
        let started = std::time::Instant::now();
        let result = self.jobs.run(self, &job).await;
        let label = match &result {
            Ok(Ran::Settled { deferred: true }) => "deferred",
            Ok(_) => "done",
            Err(e) if e.defer => "deferred",
            Err(_) => "failed",
        };
        m.job_duration
            .with_label_values(&[job.kind.as_str()])
            .observe(started.elapsed().as_secs_f64());
        m.jobs_run
            .with_label_values(&[job.kind.as_str(), label])
            .inc();
        if let Ok(Ran::Settled { .. }) = result {
            return; // in the transaction of its work
        }
        let outcome = match self.ctx.db.acquire().await {
            Ok(mut conn) => match &result {
                Ok(_) => queue::complete(&mut conn, &job, &self.id).await,
                Err(e) if e.defer => {
                    let delay = e.retry_after.unwrap_or_default();
                    tracing::debug!(reason = %e.message, ?delay, "job deferred");
                    queue::defer(&mut conn, &job, &self.id, delay).await
                }
                Err(e) => {
                    let delay = queue::backoff(job.attempts, e.retry_after);
                    tracing::warn!(error = %e.message, ?delay, "job failed; will retry");
                    queue::retry(&mut conn, &job, &self.id, delay, &e.message).await
                }
            },
            Err(e) => Err(e),
        };
        match outcome {
            Ok(true) => {}
            // Our lease was rescued and the job handed to another worker; it will run there.
            Ok(false) => tracing::warn!("lease lost before the job finished"),
            Err(e) => tracing::warn!(error = %e, "job outcome not recorded; the lease will expire"),
        }
    }
}

/// What a job's function did with the job's row.
pub enum Ran {
    /// Nothing: the job is done, and `run_job` deletes it.
    Finished,
    /// It settled the row itself (deleted, or deferred to run again), in the transaction of
    /// its work, so that the work and the job's end commit together.
    Settled { deferred: bool },
}

/// Vacuums and analyzes what autovacuum has not kept up with (`queue::tend_tables`).
async fn tend_tables(ctx: Ctx) {
    let tended = match ctx.db.acquire().await {
        Ok(mut conn) => queue::tend_tables(&mut conn, queue::VACUUM_DEAD_ROWS).await,
        Err(e) => Err(e),
    };
    match tended {
        Ok(tended) => {
            for t in tended {
                tracing::info!(
                    table = %t.table,
                    vacuumed = t.vacuumed,
                    "tended a table autovacuum had not kept up with"
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "tables not tended"),
    }
}

/// Returns expired leases to the queue, twice per lease period, and purges what is kept
/// only for a while (about once a minute), when it also tends the tables — beside the
/// loop, on a connection of its own, so that a long VACUUM never holds the rescue up.
async fn rescue_loop(ctx: Ctx, stop: Stop) {
    let period = (ctx.config.job_lease / 2).max(Duration::from_millis(100));
    let mut last_purge = tokio::time::Instant::now();
    let mut tending: Option<AbortOnDrop> = None;
    loop {
        tokio::select! {
            _ = stop.wait() => return,
            _ = tokio::time::sleep(period) => {}
        }
        let mut conn = match ctx.db.acquire().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "rescue skipped");
                continue;
            }
        };
        match queue::rescue(&mut conn).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::warn!(jobs = n, "rescued jobs with expired leases");
                ctx.notifier.local.notify_one();
            }
            Err(e) => tracing::warn!(error = %e, "rescue failed"),
        }
        if last_purge.elapsed() >= Duration::from_secs(60) {
            last_purge = tokio::time::Instant::now();
            if let Err(e) = queue::purge(&mut conn).await {
                tracing::warn!(error = %e, "purge failed");
            }
            if tending.as_ref().is_none_or(|t| t.0.is_finished()) {
                tending = Some(AbortOnDrop(tokio::spawn(tend_tables(ctx.clone()))));
            }
        }
    }
}
