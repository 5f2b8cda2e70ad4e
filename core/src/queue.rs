//! The durable job queue (DESIGN §7). Jobs are rows in Postgres, inserted in the same
//! transaction as the change that causes them. A worker claims a batch with
//! `FOR UPDATE SKIP LOCKED` and holds a *lease* (a deadline in the row), not a transaction,
//! while it works; completing or retrying is fenced by the attempt number and the lease
//! owner, so a worker whose lease was rescued cannot complete a job it no longer owns.
//! Wake-ups are hints; polling is the fallback. Each kind of job is a type ([`jobs`]).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use sqlx::PgConnection;

pub mod jobs;

pub use jobs::{JobKind, NewJob};

/// A claimed job.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub payload: serde_json::Value,
    /// The attempt this claim is (1 for the first run); the fencing token.
    pub attempts: i32,
    pub max_attempts: i32,
    /// How long the job was due before this claim (queueing latency).
    pub waited_seconds: f64,
}

/// Enqueues a job of kind `K`, due at `run_at` (at once when `None`).
pub async fn enqueue_job<K: JobKind>(
    conn: &mut PgConnection,
    payload: &K::Payload,
    run_at: Option<DateTime<Utc>>,
) -> sqlx::Result<i64> {
    enqueue(conn, K::KIND, &jobs::to_value(payload)?, run_at).await
}

/// Enqueues a job of any kind with any payload: the primitive under [`enqueue_job`], for
/// what is not one of the [kinds](jobs) (a test's placeholder job).
pub async fn enqueue(
    conn: &mut PgConnection,
    kind: &str,
    payload: &serde_json::Value,
    run_at: Option<DateTime<Utc>>,
) -> sqlx::Result<i64> {
    let payload = traced(payload);
    sqlx::query_scalar!(
        "insert into jobs (kind, payload, run_at) values ($1, $2, coalesce($3, now())) returning id",
        kind,
        payload.as_ref(),
        run_at
    )
    .fetch_one(conn)
    .await
}

/// Enqueues several jobs in one statement (one round trip on a hot path); returns each
/// new job's (kind, id).
pub async fn enqueue_all(
    conn: &mut PgConnection,
    jobs: &[NewJob],
) -> sqlx::Result<Vec<(String, i64)>> {
    let kinds: Vec<&str> = jobs.iter().map(|j| j.kind).collect();
    let payloads: Vec<serde_json::Value> = jobs
        .iter()
        .map(|j| traced(&j.payload).into_owned())
        .collect();
    let run_at: Vec<Option<DateTime<Utc>>> = jobs.iter().map(|j| j.run_at).collect();
    let rows = sqlx::query!(
        "insert into jobs (kind, payload, run_at)
         select k, p, coalesce(r, now())
         from unnest($1::text[], $2::jsonb[], $3::timestamptz[]) as t(k, p, r)
         returning kind, id",
        &kinds as &[&str],
        &payloads,
        &run_at as &[Option<DateTime<Utc>>]
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.kind, r.id)).collect())
}

/// One delivery job ([`jobs::WebhookDeliver`]) per webhook message, in one statement; the
/// payload (a [`jobs::DeliveryJob`], built here in SQL) names the message's organization
/// and endpoint, the keys its claim takes turns by.
pub async fn enqueue_deliveries(conn: &mut PgConnection, messages: &[i64]) -> sqlx::Result<()> {
    if messages.is_empty() {
        return Ok(());
    }
    let trace = traced(&serde_json::json!({})).into_owned();
    sqlx::query!(
        "insert into jobs (kind, payload)
         select $1, $3::jsonb || jsonb_build_object('message_id', m.id, 'org_id', m.org_id,
                                                    'endpoint_id', m.endpoint_id)
         from webhook_messages m join unnest($2::bigint[]) with ordinality as t (id, n) on t.id = m.id
         order by t.n",
        jobs::WebhookDeliver::KIND,
        messages,
        trace
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The payload with the current trace context, so that the job continues the trace of
/// whatever enqueued it (see `telemetry`).
fn traced(payload: &serde_json::Value) -> std::borrow::Cow<'_, serde_json::Value> {
    match (crate::telemetry::traceparent(), payload) {
        (Some(parent), serde_json::Value::Object(fields)) => {
            let mut fields = fields.clone();
            fields.insert(crate::telemetry::TRACEPARENT.into(), parent.into());
            std::borrow::Cow::Owned(serde_json::Value::Object(fields))
        }
        _ => std::borrow::Cow::Borrowed(payload),
    }
}

/// A lane of the queue: claimed by its own loop, with its own slots, so that the work of
/// one lane never waits behind the other's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// The work that moves a call (`call.*`: offer, push wake-up, offer timeout, expiry,
    /// the offer outbox): milliseconds each, and late is useless.
    Call,
    /// Everything else: webhook deliveries, which may each hold a slot until the delivery
    /// timeout.
    Bulk,
}

impl Lane {
    /// The value of `jobs.lane` (a column generated from the kind).
    pub fn id(self) -> i16 {
        match self {
            Lane::Call => 0,
            Lane::Bulk => 1,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Lane::Call => "call",
            Lane::Bulk => "bulk",
        }
    }

    /// Jobs of one organization one worker runs at once in this lane, of its `slots`: the
    /// rest stay free for other organizations. A quarter of the bulk lane (a tarpit
    /// receiver holds a slot for the whole delivery timeout), half of the call lane (calls
    /// take milliseconds: a busy organization needs the throughput, and only a slow push
    /// service could hold them) — at least 4, and always one slot fewer than all.
    pub fn org_share(self, slots: usize) -> usize {
        let part = match self {
            Lane::Call => slots / 2,
            Lane::Bulk => slots / 4,
        };
        part.max(4.min(slots.saturating_sub(1))).max(1)
    }
}

/// How many due jobs of the call lane one claim looks at, per slot it fills: enough that
/// an organization at its share does not hide the others' jobs behind its own.
const CALL_WINDOW_PER_SLOT: i64 = 4;

/// Claims up to `limit` due jobs of the call lane for `worker`. Oldest first, taking turns
/// between organizations: an organization's n-th job of the claim counts after the jobs it
/// already runs on this worker, and no organization runs more than `org_cap` at once here
/// (those at their cap are skipped, so their backlog never hides another's job).
pub async fn claim_calls(
    conn: &mut PgConnection,
    worker: &str,
    limit: i64,
    lease: Duration,
    org_cap: i64,
) -> sqlx::Result<Vec<Job>> {
    let lease_ms = lease.as_millis() as i64;
    sqlx::query_as!(
        Job,
        r#"with mine as (
             select org_id, count(*) as running from jobs
             where lease_owner = $1 and lane = 0
             group by org_id
         ),
         waiting as (
             select id, org_id, run_at from jobs
             where lane = 0 and lease_owner is null and dead_at is null and run_at <= now()
               and org_id <> all (array(select org_id from mine where running >= $4))
             order by run_at
             limit $2::bigint * $5::bigint
             for update skip locked
         ),
         ranked as (
             select w.id, w.run_at,
                    coalesce(m.running, 0) + row_number() over (partition by w.org_id order by w.run_at) as turn
             from waiting w left join mine m on m.org_id = w.org_id
         ),
         due as (
             select id from ranked where turn <= $4 order by turn, run_at limit $2
         )
         update jobs set attempts = attempts + 1, lease_owner = $1,
                lease_expires_at = clock_timestamp() + $3::bigint * interval '1 millisecond'
         from due where jobs.id = due.id
         returning jobs.id, jobs.kind, jobs.payload, jobs.attempts, jobs.max_attempts,
                   extract(epoch from clock_timestamp() - jobs.run_at)::float8 as "waited_seconds!""#,
        worker,
        limit,
        lease_ms,
        org_cap,
        CALL_WINDOW_PER_SLOT
    )
    .fetch_all(conn)
    .await
}

/// A lane key of the bulk lane with jobs waiting, and its organization.
#[derive(Debug, Clone)]
pub struct BulkKey {
    pub key: String,
    pub org_id: String,
}

/// Up to `max` lane keys (endpoints) of the bulk lane with jobs waiting (due or later),
/// in order after `after` — one index probe each, however long each one's backlog.
pub async fn bulk_keys(
    conn: &mut PgConnection,
    after: &str,
    max: i64,
) -> sqlx::Result<Vec<BulkKey>> {
    let rows = sqlx::query!(
        r#"with recursive keys (key, org_id, n) as (
             (select lane_key, org_id, 1 from jobs
              where lane = 1 and lease_owner is null and dead_at is null and lane_key > $1
              order by lane_key limit 1)
             union all
             select next.lane_key, next.org_id, k.n + 1
             from keys k cross join lateral (
                 select j.lane_key, j.org_id from jobs j
                 where j.lane = 1 and j.lease_owner is null and j.dead_at is null
                   and j.lane_key > k.key
                 order by j.lane_key limit 1
             ) next
             where k.n < $2
         )
         select key as "key!", org_id as "org_id!" from keys"#,
        after,
        max as i32
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| BulkKey {
            key: r.key,
            org_id: r.org_id,
        })
        .collect())
}

/// What a bulk claim takes turns over, and the shares it keeps to.
#[derive(Debug, Clone, Copy)]
pub struct BulkClaim<'a> {
    /// The lane keys to look at (from [`bulk_keys`]).
    pub keys: &'a [BulkKey],
    /// Jobs of one organization this worker runs at once in the lane.
    pub org_cap: i64,
    /// Jobs of one lane key (endpoint) running at once across every worker.
    pub key_cap: i64,
}

/// Claims up to `limit` due jobs of the bulk lane among `claim.keys` for `worker`. Each key
/// (an endpoint) gives its oldest due jobs, no more than keep `key_cap` of its jobs running
/// across every worker (a slow receiver gets that many attempts at once, however long its
/// backlog) and none of an organization already at its share; then organizations take
/// turns as in [`claim_calls`]: an organization's n-th job counts after those it already
/// runs on this worker, at most `org_cap` of them.
pub async fn claim_bulk(
    conn: &mut PgConnection,
    worker: &str,
    limit: i64,
    lease: Duration,
    claim: BulkClaim<'_>,
) -> sqlx::Result<Vec<Job>> {
    if claim.keys.is_empty() {
        return Ok(Vec::new());
    }
    let lease_ms = lease.as_millis() as i64;
    let keys: Vec<String> = claim.keys.iter().map(|k| k.key.clone()).collect();
    let orgs: Vec<String> = claim.keys.iter().map(|k| k.org_id.clone()).collect();
    // Bulk claims take turns across workers: an endpoint's running deliveries are counted
    // from committed leases, so two claims at the same instant would each see room for
    // `key_cap` and a slow receiver would get that many per worker. The lock is held for
    // the one statement (a few milliseconds), until its leases are committed.
    let mut tx = sqlx::Connection::begin(conn).await?;
    sqlx::query!("select pg_advisory_xact_lock($1)", BULK_CLAIM_LOCK)
        .execute(&mut *tx)
        .await?;
    let jobs = sqlx::query_as!(
        Job,
        r#"with leased as (
             select lane_key, org_id, count(*) as total,
                    count(*) filter (where lease_owner = $1) as mine
             from jobs where lease_owner is not null and lane = 1
             group by lane_key, org_id
         ),
         orgs as (
             select org_id, sum(mine)::bigint as running from leased group by org_id
         ),
         keys as (
             select k.key, k.org_id,
                    coalesce((select sum(l.total)::bigint from leased l where l.lane_key = k.key), 0) as busy,
                    coalesce((select o.running from orgs o where o.org_id = k.org_id), 0) as running
             from unnest($2::text[], $3::text[]) as k (key, org_id)
         ),
         waiting as (
             select c.id, c.org_id, c.run_at
             from keys cross join lateral (
                 select j.id, j.org_id, j.run_at from jobs j
                 where j.lane = 1 and j.lane_key = keys.key
                   and j.lease_owner is null and j.dead_at is null and j.run_at <= now()
                 order by j.run_at
                 limit greatest(0, least($7 - keys.busy, $6 - keys.running, $4))
                 for update skip locked
             ) c
         ),
         ranked as (
             select w.id, w.run_at,
                    coalesce(o.running, 0) + row_number() over (partition by w.org_id order by w.run_at) as turn
             from waiting w left join orgs o on o.org_id = w.org_id
         ),
         due as (
             select id from ranked where turn <= $6 order by turn, run_at limit $4
         )
         update jobs set attempts = attempts + 1, lease_owner = $1,
                lease_expires_at = clock_timestamp() + $5::bigint * interval '1 millisecond'
         from due where jobs.id = due.id
         returning jobs.id, jobs.kind, jobs.payload, jobs.attempts, jobs.max_attempts,
                   extract(epoch from clock_timestamp() - jobs.run_at)::float8 as "waited_seconds!""#,
        worker,
        &keys,
        &orgs,
        limit,
        lease_ms,
        claim.org_cap,
        claim.key_cap
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(jobs)
}

/// The advisory lock that bulk claims take in turn ("pdbulk").
const BULK_CLAIM_LOCK: i64 = 0x7064_6275_6c6b;

/// Deletes a finished job; `false` when the lease was lost (the job is someone else's now).
pub async fn complete(conn: &mut PgConnection, job: &Job, worker: &str) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "delete from jobs where id = $1 and attempts = $2 and lease_owner = $3",
        job.id,
        job.attempts,
        worker
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Gives a failed job back for a later attempt, or buries it after its last attempt.
pub async fn retry(
    conn: &mut PgConnection,
    job: &Job,
    worker: &str,
    delay: Duration,
    error: &str,
) -> sqlx::Result<bool> {
    let delay_ms = delay.as_millis() as i64;
    let done = sqlx::query!(
        "update jobs set lease_owner = null, lease_expires_at = null, last_error = $4,
                run_at = now() + $5::bigint * interval '1 millisecond',
                dead_at = case when attempts >= max_attempts then now() end
         where id = $1 and attempts = $2 and lease_owner = $3",
        job.id,
        job.attempts,
        worker,
        error,
        delay_ms
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Gives a job back to run again after `delay` without counting the attempt (it was not a
/// failure: the job waits for its turn).
pub async fn defer(
    conn: &mut PgConnection,
    job: &Job,
    worker: &str,
    delay: Duration,
) -> sqlx::Result<bool> {
    let delay_ms = delay.as_millis() as i64;
    let done = sqlx::query!(
        "update jobs set lease_owner = null, lease_expires_at = null, attempts = attempts - 1,
                run_at = now() + $4::bigint * interval '1 millisecond'
         where id = $1 and attempts = $2 and lease_owner = $3",
        job.id,
        job.attempts,
        worker,
        delay_ms
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Hands back every job `worker` still leases, due at once, so that another worker takes
/// them over now instead of after the lease (a worker stopping whose jobs did not finish
/// within the grace). The attempt number stays, so it still fences the old holder out.
pub async fn release(conn: &mut PgConnection, worker: &str) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        "update jobs set lease_owner = null, lease_expires_at = null, run_at = now(),
                last_error = 'released by a stopping worker'
         where lease_owner = $1",
        worker
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Returns jobs whose lease expired (their worker died or hung) to the queue. Their next
/// claim increments the attempt number, which fences the old worker out.
pub async fn rescue(conn: &mut PgConnection) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        "update jobs set lease_owner = null, lease_expires_at = null, run_at = now(),
                last_error = coalesce(last_error, 'lease expired'),
                dead_at = case when attempts >= max_attempts then now() end
         where lease_owner is not null and lease_expires_at < now()"
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Dead rows in `jobs` above which a worker vacuums it itself.
pub const VACUUM_DEAD_ROWS: i64 = 50_000;

/// What `tend_tables` did to one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tended {
    pub table: String,
    /// Vacuumed (and analyzed); otherwise only analyzed.
    pub vacuumed: bool,
}

/// Does for pushdial's tables what autovacuum does, where it is off or lagging:
///
/// - **vacuums** a table whose dead rows pass `jobs_min_dead` for `jobs` (a queue table
///   bloats fast, and claims slow down until the pool times out — seen in the soak
///   benchmark), or 1,000 + 40 % of its rows for the others (twice autovacuum's default,
///   so that a working autovacuum always comes first);
/// - **analyzes** a table changed by more than 100 rows + 20 % since its last statistics,
///   if those are over five minutes old or missing. Without statistics PostgreSQL plans
///   from a table's size alone: a statement a connection prepared while `calls` was nearly
///   empty kept a plan that scanned every call of the organization to find one by id (the
///   soak's acknowledgements slowed from 1 to 7 ms in five minutes). Statistics change the
///   table's plans everywhere: every connection plans such statements again.
///
/// One worker at a time (an advisory lock); returns what it did.
pub async fn tend_tables(conn: &mut PgConnection, jobs_min_dead: i64) -> sqlx::Result<Vec<Tended>> {
    const LOCK: i64 = 0x7075_7368_6469_616c; // "pushdial"
    let due = sqlx::query!(
        r#"select name as "table!", bloated as "vacuum!"
           from (select s.relname::text as name,
                        s.n_dead_tup > case when s.relname = 'jobs' then $1::bigint
                                            else 1000 + 0.4 * greatest(c.reltuples, 0) end
                          as bloated,
                        s.n_mod_since_analyze > 100 + 0.2 * greatest(c.reltuples, 0)
                          and coalesce(greatest(s.last_analyze, s.last_autoanalyze), '-infinity')
                              < now() - interval '5 minutes'
                          as stale
                 from pg_stat_user_tables s join pg_class c on c.oid = s.relid
                 where s.schemaname = current_schema()) t
           where bloated or stale
           order by name"#,
        jobs_min_dead
    )
    .fetch_all(&mut *conn)
    .await?;
    if due.is_empty() {
        return Ok(Vec::new());
    }
    let locked = sqlx::query_scalar!("select pg_try_advisory_lock($1)", LOCK)
        .fetch_one(&mut *conn)
        .await?;
    if locked != Some(true) {
        return Ok(Vec::new());
    }
    let mut done = Vec::new();
    let mut failed = None;
    for t in due {
        let table = format!("\"{}\"", t.table.replace('"', "\"\""));
        // VACUUM may not run inside a transaction block; a lone statement is not in one.
        let sql = if t.vacuum {
            format!("vacuum (analyze) {table}")
        } else {
            format!("analyze {table}")
        };
        match sqlx::query(&sql)
            .persistent(false)
            .execute(&mut *conn)
            .await
        {
            Ok(_) => done.push(Tended {
                table: t.table,
                vacuumed: t.vacuum,
            }),
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    sqlx::query_scalar!("select pg_advisory_unlock($1)", LOCK)
        .fetch_one(&mut *conn)
        .await?;
    match failed {
        Some(e) => Err(e),
        None => Ok(done),
    }
}

/// Deletes what is kept only for a while: idempotency answers after 24 h, buried jobs
/// after 7 days, console sessions a day after they ended, sign-ins that were never
/// finished after a day. Returns the number of rows removed.
pub async fn purge(conn: &mut PgConnection) -> sqlx::Result<u64> {
    let keys =
        sqlx::query!("delete from idempotency_keys where created_at < now() - interval '24 hours'")
            .execute(&mut *conn)
            .await?;
    let dead = sqlx::query!("delete from jobs where dead_at < now() - interval '7 days'")
        .execute(&mut *conn)
        .await?;
    let sessions = sqlx::query!(
        "delete from sessions
         where expires_at < now() - interval '1 day' or revoked_at < now() - interval '1 day'"
    )
    .execute(&mut *conn)
    .await?;
    let sign_ins = sqlx::query!("delete from sign_ins where created_at < now() - interval '1 day'")
        .execute(&mut *conn)
        .await?;
    Ok(keys.rows_affected()
        + dead.rows_affected()
        + sessions.rows_affected()
        + sign_ins.rows_affected())
}

/// Deletes a job by id (an outbox job whose work was done inline).
pub async fn delete(conn: &mut PgConnection, id: i64) -> sqlx::Result<()> {
    sqlx::query!("delete from jobs where id = $1", id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Makes a call's pending offer outbox job ([`jobs::OfferDeliver`]) due now; returns how
/// many. The kind is written out in the statement (as in the other statements that look
/// jobs up by kind) so that the planner can use the partial index made for it.
pub async fn hurry_offer_outbox(conn: &mut PgConnection, call_id: &str) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        "update jobs set run_at = now()
         where kind = 'call.deliver' and payload ->> 'call_id' = $1
           and lease_owner is null and dead_at is null and run_at > now()",
        call_id
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Moves a not-yet-claimed job's next run.
pub async fn reschedule(
    conn: &mut PgConnection,
    id: i64,
    delay: Duration,
    error: &str,
) -> sqlx::Result<()> {
    let delay_ms = delay.as_millis() as i64;
    sqlx::query!(
        "update jobs set run_at = now() + $2::bigint * interval '1 millisecond', last_error = $3
         where id = $1 and lease_owner is null",
        id,
        delay_ms,
        error
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// When the next unleased job of `lane` falls due, if any.
pub async fn next_due(conn: &mut PgConnection, lane: Lane) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar!(
        "select min(run_at) from jobs where lease_owner is null and dead_at is null and lane = $1",
        lane.id()
    )
    .fetch_one(conn)
    .await
}

/// Delay before attempt `attempts + 1`: exponential from 1 s, capped at 10 min, with full
/// jitter; a server's `Retry-After` is a floor (bounded by an hour).
pub fn backoff(attempts: i32, retry_after: Option<Duration>) -> Duration {
    let exp = 2f64.powi(attempts.clamp(0, 20) - 1).max(1.0);
    let ceiling = (1.0 * exp).min(600.0);
    let jittered = Duration::from_secs_f64(rand::thread_rng().gen_range(0.0..=ceiling));
    match retry_after {
        Some(floor) => jittered.max(floor.min(Duration::from_secs(3600))),
        None => jittered,
    }
}

/// Wakes workers when jobs were committed. In-process workers wait on `local`; other
/// processes hear a Redis publish (see `presence::Presence::publish_jobs`). Both are hints:
/// a worker that misses one still polls.
#[derive(Debug, Default, Clone)]
pub struct Notifier {
    pub local: Arc<tokio::sync::Notify>,
    /// A remote wake-up is owed: set by every wake, cleared by the publishing task just
    /// before it publishes, so that wakes during a publish coalesce into one more.
    pub remote_owed: Arc<std::sync::atomic::AtomicBool>,
}

/// How long a handed-over offer's outbox job waits to be deleted with others.
pub const SWEEP_EVERY: Duration = Duration::from_millis(20);

/// Outbox jobs whose work was done inline, deleted in one statement every `SWEEP_EVERY`
/// rather than one commit each. Losing a sweep (the process stops first) only lets those
/// jobs run after their lease, which their work tolerates (agents ignore duplicate offers).
#[derive(Debug, Default)]
pub struct Sweep {
    pending: std::sync::Mutex<(Vec<i64>, bool)>,
}

impl Sweep {
    /// Deletes job `id` with the next sweep (scheduled here when none is).
    pub fn add(self: &Arc<Self>, db: &sqlx::PgPool, id: i64) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.0.push(id);
        if !pending.1 {
            pending.1 = true;
            let (sweep, db) = (self.clone(), db.clone());
            tokio::spawn(async move {
                tokio::time::sleep(SWEEP_EVERY).await;
                sweep.run(&db).await;
            });
        }
    }

    async fn run(&self, db: &sqlx::PgPool) {
        let ids = {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            pending.1 = false;
            std::mem::take(&mut pending.0)
        };
        if ids.is_empty() {
            return;
        }
        let deleted = sqlx::query!(
            "delete from jobs where id = any($1) and lease_owner is null",
            &ids
        )
        .execute(db)
        .await;
        if let Err(e) = deleted {
            tracing::warn!(jobs = ids.len(), error = %e, "handed-over outbox jobs not deleted; they run after their lease");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_organizations_share_leaves_slots_for_the_others() {
        assert_eq!(Lane::Bulk.org_share(32), 8);
        assert_eq!(Lane::Call.org_share(32), 16);
        assert_eq!(Lane::Bulk.org_share(8), 4);
        assert_eq!(Lane::Bulk.org_share(4), 3);
        assert_eq!(Lane::Call.org_share(2), 1);
        assert_eq!(Lane::Bulk.org_share(1), 1, "a single slot cannot be shared");
        for slots in 2..200 {
            for lane in [Lane::Call, Lane::Bulk] {
                assert!(lane.org_share(slots) < slots, "{lane:?} {slots}");
            }
        }
    }

    #[test]
    fn backoff_grows_and_is_bounded() {
        for attempt in 0..30 {
            let d = backoff(attempt, None);
            assert!(d <= Duration::from_secs(600), "{attempt}: {d:?}");
        }
        assert!(backoff(1, None) <= Duration::from_secs(1));
        assert!(backoff(1, Some(Duration::from_secs(30))) >= Duration::from_secs(30));
        assert!(backoff(1, Some(Duration::from_secs(86400))) <= Duration::from_secs(3600));
    }
}
