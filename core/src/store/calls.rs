//! Calls and their events (one row per transition).

use chrono::{DateTime, Utc};
use pushdial_protocol::{CallStatus, Confirm};
use sqlx::PgConnection;

use super::{Page, Paged};

#[derive(Debug, Clone)]
pub struct CallRow {
    pub id: String,
    pub org_id: String,
    pub agent_id: String,
    pub target_device_id: Option<String>,
    pub device_id: Option<String>,
    pub attempted_device_ids: Vec<String>,
    pub to_number: String,
    pub confirm: Confirm,
    pub status: CallStatus,
    pub reason: Option<String>,
    pub metadata: serde_json::Value,
    pub duration_s: Option<i32>,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct EventRow {
    pub id: String,
    pub org_id: String,
    pub call_id: String,
    pub status: String,
    pub observed: bool,
    pub reason: Option<String>,
    pub device_id: Option<String>,
    pub created_at: DateTime<Utc>,
    /// `status` (a transition) or `push` (a provider's answer: `status` is the result).
    pub kind: String,
    pub provider: Option<String>,
}

pub struct NewCall<'a> {
    pub id: &'a str,
    pub org_id: &'a str,
    pub agent_id: &'a str,
    pub target_device_id: Option<&'a str>,
    pub to_number: &'a str,
    pub confirm: Confirm,
    pub metadata: &'a serde_json::Value,
    pub expires_at: DateTime<Utc>,
    /// Offered at once to this device (the api's inline first offer): the row starts as
    /// `offered` to it instead of `queued`.
    pub offered_to: Option<&'a str>,
}

pub async fn insert(conn: &mut PgConnection, c: NewCall<'_>) -> sqlx::Result<CallRow> {
    sqlx::query_as!(
        CallRow,
        "insert into calls (id, org_id, agent_id, target_device_id, to_number, confirm, status, metadata,
                            expires_at, device_id, attempted_device_ids)
         values ($1, $2, $3, $4, $5, $6, case when $9::text is null then 'queued' else 'offered' end,
                 $7, $8, $9, case when $9::text is null then '{}'::text[] else array[$9::text] end)
         returning id, org_id, agent_id, target_device_id, device_id, attempted_device_ids, to_number, confirm as \"confirm: Confirm\",
                   status as \"status: CallStatus\", reason, metadata, duration_s, expires_at, created_at, updated_at",
        c.id,
        c.org_id,
        c.agent_id,
        c.target_device_id,
        c.to_number,
        c.confirm.as_str(),
        c.metadata,
        c.expires_at,
        c.offered_to
    )
    .fetch_one(conn)
    .await
}

pub async fn get(conn: &mut PgConnection, org_id: &str, id: &str) -> sqlx::Result<Option<CallRow>> {
    sqlx::query_as!(
        CallRow,
        "select id, org_id, agent_id, target_device_id, device_id, attempted_device_ids, to_number, confirm as \"confirm: Confirm\",
                status as \"status: CallStatus\", reason, metadata, duration_s, expires_at, created_at, updated_at
         from calls where org_id = $1 and id = $2",
        org_id,
        id
    )
    .fetch_optional(conn)
    .await
}

/// The call, locked until the transaction ends, so that concurrent reports serialise.
pub async fn lock(
    conn: &mut PgConnection,
    org_id: &str,
    id: &str,
) -> sqlx::Result<Option<CallRow>> {
    sqlx::query_as!(
        CallRow,
        "select id, org_id, agent_id, target_device_id, device_id, attempted_device_ids, to_number, confirm as \"confirm: Confirm\",
                status as \"status: CallStatus\", reason, metadata, duration_s, expires_at, created_at, updated_at
         from calls where org_id = $1 and id = $2 for update",
        org_id,
        id
    )
    .fetch_optional(conn)
    .await
}

/// Filters of the call list.
#[derive(Debug, Clone, Default)]
pub struct CallFilter {
    pub status: Option<CallStatus>,
    pub agent_id: Option<String>,
    /// Created at or after.
    pub created_gte: Option<DateTime<Utc>>,
    /// Created before.
    pub created_lt: Option<DateTime<Utc>>,
}

pub async fn list(
    conn: &mut PgConnection,
    org_id: &str,
    filter: &CallFilter,
    page: &Page,
) -> sqlx::Result<Paged<CallRow>> {
    let rows = sqlx::query_as!(
        CallRow,
        "select id, org_id, agent_id, target_device_id, device_id, attempted_device_ids, to_number, confirm as \"confirm: Confirm\",
                status as \"status: CallStatus\", reason, metadata, duration_s, expires_at, created_at, updated_at
         from calls
         where org_id = $1
           and ($2::text is null or status = $2)
           and ($3::text is null or agent_id = $3)
           and ($4::text is null or id < $4)
           and ($5::text is null or id > $5)
           and ($7::timestamptz is null or created_at >= $7)
           and ($8::timestamptz is null or created_at < $8)
         order by case when $5::text is null then id end desc, id asc
         limit $6",
        org_id,
        filter.status.map(CallStatus::as_str),
        filter.agent_id.as_deref(),
        page.starting_after.as_deref(),
        page.ending_before.as_deref(),
        page.limit + 1,
        filter.created_gte,
        filter.created_lt
    )
    .fetch_all(conn)
    .await?;
    Ok(page.finish(rows))
}

/// Writes a new status (and what comes with it) on a call. With `drop_timers` it also
/// deletes the call's pending expiry and offer-timeout jobs, and with `drop_outbox` its
/// offer's outbox job: jobs that can no longer change anything.
#[allow(clippy::too_many_arguments)] // one per column or job set the statement writes
pub async fn set_status(
    conn: &mut PgConnection,
    org_id: &str,
    id: &str,
    status: CallStatus,
    reason: Option<&str>,
    duration_s: Option<i32>,
    drop_timers: bool,
    drop_outbox: bool,
) -> sqlx::Result<CallRow> {
    // The jobs' deletes ride in the same statement (no extra round trip), each on its own
    // partial index; a job a worker holds right now is left to it, and finds nothing to do.
    sqlx::query_as!(
        CallRow,
        "with timers as (
             delete from jobs
             where $6 and payload ->> 'call_id' = $1
               and kind in ('call.expire', 'call.offer_timeout') and lease_owner is null
         ), outbox as (
             delete from jobs
             where $7 and payload ->> 'call_id' = $1
               and kind = 'call.deliver' and lease_owner is null
         )
         update calls set status = $2, reason = coalesce($3, reason),
                duration_s = coalesce($4, duration_s), updated_at = now()
         where id = $1 and org_id = $5
         returning id, org_id, agent_id, target_device_id, device_id, attempted_device_ids, to_number, confirm as \"confirm: Confirm\",
                   status as \"status: CallStatus\", reason, metadata, duration_s, expires_at, created_at, updated_at",
        id,
        status.as_str(),
        reason,
        duration_s,
        org_id,
        drop_timers,
        drop_outbox
    )
    .fetch_one(conn)
    .await
}

/// Records that the call is now offered to `device_id`. Guarded by the state the caller
/// saw (`expect_status`, `expect_device`), so a stale worker changes nothing: `false` then.
pub async fn mark_offered(
    conn: &mut PgConnection,
    org_id: &str,
    id: &str,
    expect_status: CallStatus,
    expect_device: Option<&str>,
    device_id: &str,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "update calls set status = 'offered', device_id = $4,
                attempted_device_ids = array_append(attempted_device_ids, $4), updated_at = now()
         where id = $1 and status = $2 and device_id is not distinct from $3 and org_id = $5",
        id,
        expect_status.as_str(),
        expect_device,
        device_id,
        org_id
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records which device took the call (the one that acknowledged first).
pub async fn set_device(
    conn: &mut PgConnection,
    org_id: &str,
    id: &str,
    device_id: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update calls set device_id = $2, updated_at = now() where id = $1 and org_id = $3",
        id,
        device_id,
        org_id
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub struct NewEvent<'a> {
    pub id: &'a str,
    pub org_id: &'a str,
    pub call_id: &'a str,
    pub status: &'a str,
    pub observed: bool,
    pub reason: Option<&'a str>,
    pub device_id: Option<&'a str>,
}

pub async fn insert_event(conn: &mut PgConnection, e: NewEvent<'_>) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into call_events (id, org_id, call_id, status, observed, reason, device_id)
         values ($1, $2, $3, $4, $5, $6, $7)",
        e.id,
        e.org_id,
        e.call_id,
        e.status,
        e.observed,
        e.reason,
        e.device_id
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Records what a push provider answered for one send, in the call's timeline.
pub async fn insert_push_event(
    conn: &mut PgConnection,
    e: NewEvent<'_>,
    provider: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into call_events (id, org_id, call_id, status, observed, reason, device_id, kind, provider)
         values ($1, $2, $3, $4, true, $5, $6, 'push', $7)",
        e.id,
        e.org_id,
        e.call_id,
        e.status,
        e.reason,
        e.device_id,
        provider
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn events(
    conn: &mut PgConnection,
    org_id: &str,
    call_id: &str,
) -> sqlx::Result<Vec<EventRow>> {
    sqlx::query_as!(
        EventRow,
        "select id, org_id, call_id, status, observed, reason, device_id, created_at, kind, provider
         from call_events where org_id = $1 and call_id = $2 order by seq",
        org_id,
        call_id
    )
    .fetch_all(conn)
    .await
}
