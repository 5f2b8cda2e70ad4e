//! pushdial-worker: claims jobs from the Postgres queue and runs them — offering calls to
//! devices (live socket through Redis, or a push gateway), failing over when an offer is
//! not acknowledged in time, and expiring calls. Every handler is idempotent: a job may
//! run twice (after a crash, or when a lease was rescued), and must then change nothing
//! twice.

pub mod offer;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use pushdial_core::push::PushGateway;
use pushdial_core::queue::{self, kinds, Job};
use pushdial_core::shutdown::Stop;
use pushdial_core::Ctx;
use tokio::task::{JoinHandle, JoinSet};

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
        }
    }

    /// Runs until `stop` fires, then waits (bounded by the shutdown grace) for the jobs in
    /// hand. Jobs run in a `JoinSet` owned by this future: if the future is dropped (the
    /// worker is killed), its jobs stop with it and their leases expire to be rescued.
    pub async fn run(self, stop: Stop) {
        let concurrency = self.ctx.config.worker_concurrency.max(1);
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
        let rescuer = AbortOnDrop(tokio::spawn(rescue_loop(self.ctx.clone(), stop.clone())));
        let mut running = JoinSet::new();
        tracing::info!(worker = %self.id, concurrency, "worker started");

        while !stop.is_stopped() {
            while running.try_join_next().is_some() {}
            let free = concurrency.saturating_sub(running.len());
            let mut got = 0;
            if free > 0 {
                let claimed = match self.ctx.db.acquire().await {
                    Ok(mut conn) => {
                        queue::claim(&mut conn, &self.id, free as i64, self.ctx.config.job_lease)
                            .await
                    }
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
                    Err(e) => tracing::warn!(error = %e, "claiming jobs failed"),
                }
                if got > 0 && got == free {
                    continue; // probably more waiting
                }
            }
            let pause = self.idle_pause().await;
            tokio::select! {
                _ = stop.wait() => break,
                _ = wake.notified() => {}
                _ = tokio::time::sleep(pause) => {}
                Some(_) = running.join_next(), if !running.is_empty() => {}
            }
        }
        // Let running jobs finish, within the grace; the rest are stopped and their leases
        // handed back, so another worker takes them over at once.
        let grace = self.ctx.config.shutdown_grace;
        let _ = tokio::time::timeout(grace, async {
            while running.join_next().await.is_some() {}
        })
        .await;
        if !running.is_empty() {
            running.shutdown().await;
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
        drop((follower, rescuer));
        tracing::info!(worker = %self.id, "worker stopped");
    }

    /// How long to sleep when idle: until the next scheduled job, at most the poll interval.
    async fn idle_pause(&self) -> Duration {
        let poll = self.ctx.config.job_poll_interval;
        let next = match self.ctx.db.acquire().await {
            Ok(mut conn) => queue::next_due(&mut conn).await.ok().flatten(),
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
        let finished = |r: Result<(), JobError>| r.map(|()| Ran::Finished);
        let result = match job.kind.as_str() {
            kinds::CALL_OFFER => finished(offer::offer_call(self, &job).await),
            kinds::OFFER_TIMEOUT => finished(offer::offer_timeout(self, &job).await),
            kinds::OFFER_DELIVER => finished(offer::deliver_offer(self, &job).await),
            kinds::CALL_EXPIRE => finished(offer::expire_call(self, &job).await),
            kinds::WEBHOOK_DELIVER => webhooks::deliver(self, &job).await,
            other => Err(JobError::from(format!("unknown job kind {other}"))),
        };
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
