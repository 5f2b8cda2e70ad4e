//! Events, webhook endpoints, messages and attempts.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::{Page, Paged};

#[derive(Debug, Clone)]
pub struct EventRow {
    pub id: String,
    pub org_id: String,
    pub kind: String,
    pub ordering_key: Option<String>,
    pub data: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

pub async fn insert_event(
    conn: &mut PgConnection,
    id: &str,
    org_id: &str,
    kind: &str,
    ordering_key: Option<&str>,
    data: &serde_json::Value,
) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into events (id, org_id, type, ordering_key, data) values ($1, $2, $3, $4, $5)",
        id,
        org_id,
        kind,
        ordering_key,
        data
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Creates a pending message of the event for each enabled endpoint that subscribes to its
/// type (or only for `only_endpoint`); returns the message ids.
pub async fn fan_out(
    conn: &mut PgConnection,
    event_id: &str,
    org_id: &str,
    kind: &str,
    ordering_key: Option<&str>,
    only_endpoint: Option<&str>,
) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar!(
        "insert into webhook_messages (org_id, endpoint_id, event_id, ordering_key)
         select $2, id, $1, $4 from webhook_endpoints
         where org_id = $2 and enabled
           and ($5::text is not null or cardinality(event_types) = 0 or $3 = any(event_types))
           and ($5::text is null or id = $5)
         order by id
         returning id",
        event_id,
        org_id,
        kind,
        ordering_key,
        only_endpoint
    )
    .fetch_all(conn)
    .await
}

pub async fn get_event(
    conn: &mut PgConnection,
    org_id: &str,
    id: &str,
) -> sqlx::Result<Option<EventRow>> {
    sqlx::query_as!(
        EventRow,
        r#"select id, org_id, type as "kind", ordering_key, data, created_at from events where org_id = $1 and id = $2"#,
        org_id,
        id
    )
    .fetch_optional(conn)
    .await
}

pub async fn list_events(
    conn: &mut PgConnection,
    org_id: &str,
    kind: Option<&str>,
    page: &Page,
) -> sqlx::Result<Paged<EventRow>> {
    let rows = sqlx::query_as!(
        EventRow,
        r#"select id, org_id, type as "kind", ordering_key, data, created_at from events
         where org_id = $1
           and ($2::text is null or type = $2)
           and ($3::text is null or id < $3)
           and ($4::text is null or id > $4)
         order by case when $4::text is null then id end desc, id asc
         limit $5"#,
        org_id,
        kind,
        page.starting_after.as_deref(),
        page.ending_before.as_deref(),
        page.limit + 1
    )
    .fetch_all(conn)
    .await?;
    Ok(page.finish(rows))
}

#[derive(Debug, Clone)]
pub struct EndpointRow {
    pub id: String,
    pub org_id: String,
    pub url: String,
    pub description: Option<String>,
    pub event_types: Vec<String>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub secret_sealed: Vec<u8>,
    pub previous_secret_sealed: Option<Vec<u8>>,
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub failing_since: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub rate_limit_per_s: Option<i32>,
    /// Messages waiting for delivery (their first attempt or a retry): the endpoint's
    /// backlog.
    pub pending_messages: i64,
}

/// An organization's webhook endpoints and its plan's cap on them, read with the
/// organization's row locked until the transaction ends (`for no key update`: calls and
/// other inserts referencing the organization go on), so that two creations cannot both
/// take the last place.
pub async fn lock_endpoint_count(
    conn: &mut PgConnection,
    org_id: &str,
) -> sqlx::Result<Option<(i64, Option<i32>)>> {
    let row = sqlx::query!(
        r#"select o.limit_webhook_endpoints,
                  (select count(*) from webhook_endpoints e where e.org_id = o.id) as "endpoints!"
           from organizations o where o.id = $1
           for no key update of o"#,
        org_id
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| (r.endpoints, r.limit_webhook_endpoints)))
}

pub struct NewEndpoint<'a> {
    pub id: &'a str,
    pub org_id: &'a str,
    pub url: &'a str,
    pub description: Option<&'a str>,
    pub event_types: &'a [String],
    pub enabled: bool,
    pub secret_sealed: &'a [u8],
    pub rate_limit_per_s: Option<i32>,
}

pub async fn insert_endpoint(
    conn: &mut PgConnection,
    e: NewEndpoint<'_>,
) -> sqlx::Result<EndpointRow> {
    sqlx::query_as!(
        EndpointRow,
        "insert into webhook_endpoints (id, org_id, url, description, event_types, enabled, secret_sealed, rate_limit_per_s)
         values ($1, $2, $3, $4, $5, $6, $7, $8)
         returning id, org_id, url, description, event_types, enabled, disabled_reason, secret_sealed,
                   previous_secret_sealed, previous_secret_expires_at, failing_since, created_at, updated_at, rate_limit_per_s,
                   (select count(*) from webhook_messages m where m.endpoint_id = webhook_endpoints.id and m.status = 'pending') as \"pending_messages!\"",
        e.id,
        e.org_id,
        e.url,
        e.description,
        e.event_types,
        e.enabled,
        e.secret_sealed,
        e.rate_limit_per_s
    )
    .fetch_one(conn)
    .await
}

pub async fn get_endpoint(
    conn: &mut PgConnection,
    org_id: &str,
    id: &str,
) -> sqlx::Result<Option<EndpointRow>> {
    sqlx::query_as!(
        EndpointRow,
        "select id, org_id, url, description, event_types, enabled, disabled_reason, secret_sealed,
                previous_secret_sealed, previous_secret_expires_at, failing_since, created_at, updated_at, rate_limit_per_s,
                   (select count(*) from webhook_messages m where m.endpoint_id = webhook_endpoints.id and m.status = 'pending') as \"pending_messages!\"
         from webhook_endpoints where org_id = $1 and id = $2",
        org_id,
        id
    )
    .fetch_optional(conn)
    .await
}

pub async fn list_endpoints(
    conn: &mut PgConnection,
    org_id: &str,
    page: &Page,
) -> sqlx::Result<Paged<EndpointRow>> {
    let rows = sqlx::query_as!(
        EndpointRow,
        "select id, org_id, url, description, event_types, enabled, disabled_reason, secret_sealed,
                previous_secret_sealed, previous_secret_expires_at, failing_since, created_at, updated_at, rate_limit_per_s,
                   (select count(*) from webhook_messages m where m.endpoint_id = webhook_endpoints.id and m.status = 'pending') as \"pending_messages!\"
         from webhook_endpoints
         where org_id = $1
           and ($2::text is null or id < $2)
           and ($3::text is null or id > $3)
         order by case when $3::text is null then id end desc, id asc
         limit $4",
        org_id,
        page.starting_after.as_deref(),
        page.ending_before.as_deref(),
        page.limit + 1
    )
    .fetch_all(conn)
    .await?;
    Ok(page.finish(rows))
}

/// Changes to an endpoint; `None` leaves a field unchanged.
#[derive(Debug, Clone, Default)]
pub struct EndpointUpdate {
    pub url: Option<String>,
    /// `Some(None)` clears the description.
    pub description: Option<Option<String>>,
    pub event_types: Option<Vec<String>>,
    pub enabled: Option<bool>,
    /// `Some(None)` removes the limit.
    pub rate_limit_per_s: Option<Option<i32>>,
}

pub async fn update_endpoint(
    conn: &mut PgConnection,
    org_id: &str,
    id: &str,
    u: &EndpointUpdate,
) -> sqlx::Result<Option<EndpointRow>> {
    let (set_description, description) = match &u.description {
        Some(d) => (true, d.as_deref()),
        None => (false, None),
    };
    sqlx::query_as!(
        EndpointRow,
        "update webhook_endpoints set
            url = coalesce($3, url),
            description = case when $4 then $5 else description end,
            event_types = coalesce($6, event_types),
            enabled = coalesce($7, enabled),
            disabled_reason = case when $7 then null else disabled_reason end,
            failing_since = case when $7 then null else failing_since end,
            rate_limit_per_s = case when $8 then $9 else rate_limit_per_s end,
            updated_at = now()
         where org_id = $1 and id = $2
         returning id, org_id, url, description, event_types, enabled, disabled_reason, secret_sealed,
                   previous_secret_sealed, previous_secret_expires_at, failing_since, created_at, updated_at, rate_limit_per_s,
                   (select count(*) from webhook_messages m where m.endpoint_id = webhook_endpoints.id and m.status = 'pending') as \"pending_messages!\"",
        org_id,
        id,
        u.url.as_deref(),
        set_description,
        description,
        u.event_types.as_deref(),
        u.enabled,
        u.rate_limit_per_s.is_some(),
        u.rate_limit_per_s.flatten()
    )
    .fetch_optional(conn)
    .await
}

pub async fn delete_endpoint(
    conn: &mut PgConnection,
    org_id: &str,
    id: &str,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "delete from webhook_endpoints where org_id = $1 and id = $2",
        org_id,
        id
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Replaces the secret; the old one keeps signing until `previous_expires_at`.
pub async fn rotate_secret(
    conn: &mut PgConnection,
    org_id: &str,
    id: &str,
    new_sealed: &[u8],
    previous_expires_at: DateTime<Utc>,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "update webhook_endpoints set previous_secret_sealed = secret_sealed, secret_sealed = $3,
                previous_secret_expires_at = $4, updated_at = now()
         where org_id = $1 and id = $2",
        org_id,
        id,
        new_sealed,
        previous_expires_at
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Disables an endpoint (410 Gone, or failing for too long) and fails its pending
/// messages (they can be recovered later); `true` if it was enabled.
pub async fn disable_endpoint(
    conn: &mut PgConnection,
    org_id: &str,
    id: &str,
    reason: &str,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "update webhook_endpoints set enabled = false, disabled_reason = $3, updated_at = now()
         where org_id = $1 and id = $2 and enabled",
        org_id,
        id,
        reason
    )
    .execute(&mut *conn)
    .await?;
    fail_pending(conn, org_id, id).await?;
    Ok(done.rows_affected() == 1)
}

/// Holds an endpoint against deletion until the transaction ends (`for key share`, which a
/// delete waits for), before anything of its messages is touched; `false` if it is gone.
/// Recording an attempt locks the message and then needs the endpoint: without this, a
/// `DELETE` of the endpoint (which locks it, then cascades to the message) deadlocked with
/// a delivery finishing at that moment, and the delete was answered 500.
pub async fn hold_endpoint(conn: &mut PgConnection, org_id: &str, id: &str) -> sqlx::Result<bool> {
    let held = sqlx::query_scalar!(
        "select 1 as \"one!\" from webhook_endpoints where org_id = $1 and id = $2 for key share",
        org_id,
        id
    )
    .fetch_optional(conn)
    .await?;
    Ok(held.is_some())
}

/// Records the outcome of a delivery on the endpoint's failure run, given when the run
/// started as the delivery read it (`seen`); returns when the current run started (`None`
/// after a success). The row is written only when the run starts or ends, so deliveries to
/// one endpoint do not queue on its row, and most outcomes cost no round trip at all.
pub async fn note_outcome(
    conn: &mut PgConnection,
    id: &str,
    success: bool,
    seen: Option<DateTime<Utc>>,
) -> sqlx::Result<Option<DateTime<Utc>>> {
    if success != seen.is_some() {
        return Ok(seen); // still succeeding, or still failing
    }
    let changed = sqlx::query!(
        "update webhook_endpoints
            set failing_since = case when $2 then null else now() end
         where id = $1 and (($2 and failing_since is not null) or (not $2 and failing_since is null))
         returning failing_since",
        id,
        success
    )
    .fetch_optional(&mut *conn)
    .await?;
    Ok(match changed {
        Some(row) => row.failing_since,
        // Another delivery made the same change a moment ago.
        None if success => None,
        None => Some(Utc::now()),
    })
}

/// Fails an endpoint's pending messages (it was disabled); they can be recovered later.
pub async fn fail_pending(
    conn: &mut PgConnection,
    org_id: &str,
    endpoint_id: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update webhook_messages set status = 'failed', next_attempt_at = null,
                last_error = coalesce(last_error, 'the endpoint was disabled')
         where org_id = $1 and endpoint_id = $2 and status = 'pending'",
        org_id,
        endpoint_id
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Everything a delivery needs about one message.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub message_id: i64,
    pub org_id: String,
    pub endpoint_id: String,
    pub event_id: String,
    pub ordering_key: Option<String>,
    pub status: String,
    pub attempts: i32,
    pub url: String,
    pub enabled: bool,
    pub secret_sealed: Vec<u8>,
    pub previous_secret_sealed: Option<Vec<u8>>,
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub rate_limit_per_s: Option<i32>,
    pub event_type: String,
    pub event_data: serde_json::Value,
    pub event_created_at: DateTime<Utc>,
    /// When the endpoint's current run of failures started.
    pub failing_since: Option<DateTime<Utc>>,
}

pub async fn delivery(conn: &mut PgConnection, message_id: i64) -> sqlx::Result<Option<Delivery>> {
    sqlx::query_as!(
        Delivery,
        r#"select m.id as message_id, m.org_id, m.endpoint_id, m.event_id, m.ordering_key, m.status, m.attempts,
                  e.url, e.enabled, e.secret_sealed, e.previous_secret_sealed, e.previous_secret_expires_at, e.rate_limit_per_s,
                  v.type as event_type, v.data as event_data, v.created_at as event_created_at,
                  e.failing_since
           from webhook_messages m
           join webhook_endpoints e on e.id = m.endpoint_id
           join events v on v.id = m.event_id
           where m.id = $1"#,
        message_id
    )
    .fetch_optional(conn)
    .await
}

/// When the earliest pending message before this one in its chain (same endpoint and
/// ordering key) is next tried, if there is one: this message must wait for it. A
/// predecessor whose delivery job was buried no longer blocks the chain.
pub async fn blocked_until(
    conn: &mut PgConnection,
    endpoint_id: &str,
    ordering_key: &str,
    message_id: i64,
) -> sqlx::Result<Option<Option<DateTime<Utc>>>> {
    let row = sqlx::query!(
        "select m.next_attempt_at from webhook_messages m
         where m.endpoint_id = $1 and m.ordering_key = $2 and m.id < $3 and m.status = 'pending'
           and exists (select 1 from jobs j
                       where j.kind = 'webhook.deliver' and j.dead_at is null
                         and (j.payload ->> 'message_id')::bigint = m.id)
         order by m.id limit 1",
        endpoint_id,
        ordering_key,
        message_id
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| r.next_attempt_at))
}

/// New messages for the events whose delivery to this endpoint failed since `since`
/// (recovery after an outage) — one per event, none for an event already delivered or
/// pending — in their original order; returns the new message ids. Calling it twice sends
/// nothing twice.
pub async fn recover(
    conn: &mut PgConnection,
    org_id: &str,
    endpoint_id: &str,
    since: DateTime<Utc>,
) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar!(
        "insert into webhook_messages (org_id, endpoint_id, event_id, ordering_key)
         select org_id, endpoint_id, event_id, ordering_key from (
             select distinct on (m.event_id) m.id, m.org_id, m.endpoint_id, m.event_id, m.ordering_key
             from webhook_messages m
             where m.org_id = $1 and m.endpoint_id = $2 and m.status = 'failed' and m.created_at >= $3
               and not exists (select 1 from webhook_messages o
                               where o.endpoint_id = m.endpoint_id and o.event_id = m.event_id
                                 and o.status in ('pending', 'delivered'))
             order by m.event_id, m.id
         ) failed
         order by id
         returning id",
        org_id,
        endpoint_id,
        since
    )
    .fetch_all(conn)
    .await
}

/// Makes a pending message of this event to this endpoint due now; `false` if there is none.
pub async fn hurry_pending(
    conn: &mut PgConnection,
    org_id: &str,
    endpoint_id: &str,
    event_id: &str,
) -> sqlx::Result<bool> {
    let pending = sqlx::query_scalar!(
        "select id from webhook_messages
         where org_id = $1 and endpoint_id = $2 and event_id = $3 and status = 'pending'
         order by id limit 1",
        org_id,
        endpoint_id,
        event_id
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some(message_id) = pending else {
        return Ok(false);
    };
    sqlx::query!(
        "update jobs set run_at = now()
         where kind = 'webhook.deliver' and lease_owner is null and (payload ->> 'message_id')::bigint = $1",
        message_id
    )
    .execute(conn)
    .await?;
    Ok(true)
}

/// Makes the next pending message of a chain due now (its predecessor is done); `true` if
/// there was one waiting.
pub async fn wake_successor(
    conn: &mut PgConnection,
    endpoint_id: &str,
    ordering_key: &str,
    message_id: i64,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "update jobs set run_at = now()
         where kind = 'webhook.deliver' and lease_owner is null
           and (payload ->> 'message_id')::bigint = (
               select id from webhook_messages
               where endpoint_id = $1 and ordering_key = $2 and id > $3 and status = 'pending'
               order by id limit 1)",
        endpoint_id,
        ordering_key,
        message_id
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

pub struct NewAttempt<'a> {
    pub org_id: &'a str,
    pub endpoint_id: &'a str,
    pub message_id: i64,
    pub event_id: &'a str,
    pub attempt: i32,
    pub status_code: Option<i32>,
    pub response_body: Option<&'a str>,
    pub error: Option<&'a str>,
    pub duration_ms: i32,
}

/// Records an attempt and its effect on the message: delivered, failed for good, or
/// pending with its next attempt time.
pub async fn record_attempt(
    conn: &mut PgConnection,
    a: NewAttempt<'_>,
    message_status: &str,
    next_attempt_at: Option<DateTime<Utc>>,
) -> sqlx::Result<()> {
    // The attempt and the message's new state in one statement (one round trip).
    sqlx::query!(
        "with attempt as (
             insert into webhook_attempts (org_id, endpoint_id, message_id, event_id, attempt,
                                           status_code, response_body, error, duration_ms)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         )
         update webhook_messages set attempts = $5, status = $10, next_attempt_at = $11,
                last_status = $6, last_error = $8,
                delivered_at = case when $10 = 'delivered' then now() end
         where id = $3 and status = 'pending'",
        a.org_id,
        a.endpoint_id,
        a.message_id,
        a.event_id,
        a.attempt,
        a.status_code,
        a.response_body,
        a.error,
        a.duration_ms,
        message_status,
        next_attempt_at
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Ends a message without an attempt (its endpoint was disabled or deleted).
pub async fn fail_message(
    conn: &mut PgConnection,
    message_id: i64,
    error: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update webhook_messages set status = 'failed', last_error = $2, next_attempt_at = null where id = $1",
        message_id,
        error
    )
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone)]
pub struct AttemptRow {
    pub id: i64,
    pub endpoint_id: String,
    pub event_id: String,
    pub attempt: i32,
    pub status_code: Option<i32>,
    pub response_body: Option<String>,
    pub error: Option<String>,
    pub duration_ms: i32,
    pub created_at: DateTime<Utc>,
}

/// An endpoint's attempts, newest first (optionally of one event).
pub async fn list_attempts(
    conn: &mut PgConnection,
    org_id: &str,
    endpoint_id: &str,
    event_id: Option<&str>,
    limit: i64,
    before_id: Option<i64>,
) -> sqlx::Result<Vec<AttemptRow>> {
    sqlx::query_as!(
        AttemptRow,
        "select id, endpoint_id, event_id, attempt, status_code, response_body, error, duration_ms, created_at
         from webhook_attempts
         where org_id = $1 and endpoint_id = $2
           and ($3::text is null or event_id = $3)
           and ($4::bigint is null or id < $4)
         order by id desc
         limit $5",
        org_id,
        endpoint_id,
        event_id,
        before_id,
        limit
    )
    .fetch_all(conn)
    .await
}
