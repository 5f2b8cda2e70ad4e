//! Devices: an agent's phones (or reference agents, or PWAs), with their push channel,
//! token hash and the timestamps presence falls back on.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

#[derive(Debug, Clone)]
pub struct DeviceRow {
    pub id: String,
    pub org_id: String,
    pub agent_id: String,
    pub name: String,
    pub platform: String,
    pub push_channel: Option<String>,
    pub push_token: Option<String>,
    pub push_rejected_at: Option<DateTime<Utc>>,
    pub app_version: Option<String>,
    pub capabilities: Vec<String>,
    pub auto_dial: bool,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub stream_seen_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Fields a device may change about itself; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct DeviceUpdate {
    /// `Some(None)` clears the push channel.
    pub push: Option<(Option<String>, Option<String>)>,
    pub app_version: Option<String>,
    pub capabilities: Option<Vec<String>>,
    pub auto_dial: Option<bool>,
}

pub struct NewDevice<'a> {
    pub id: &'a str,
    pub org_id: &'a str,
    pub agent_id: &'a str,
    pub name: &'a str,
    pub platform: &'a str,
    pub token_hash: &'a [u8],
}

pub async fn insert(conn: &mut PgConnection, d: NewDevice<'_>) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into devices (id, org_id, agent_id, name, platform, token_hash, last_seen_at)
         values ($1, $2, $3, $4, $5, $6, now())",
        d.id,
        d.org_id,
        d.agent_id,
        d.name,
        d.platform,
        d.token_hash
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn find_by_token(
    conn: &mut PgConnection,
    token_hash: &[u8],
) -> sqlx::Result<Option<DeviceRow>> {
    sqlx::query_as!(
        DeviceRow,
        "select id, org_id, agent_id, name, platform, push_channel, push_token, push_rejected_at,
                app_version, capabilities, auto_dial, last_seen_at, stream_seen_at, created_at, revoked_at
         from devices where token_hash = $1",
        token_hash
    )
    .fetch_optional(conn)
    .await
}

pub async fn get(
    conn: &mut PgConnection,
    org_id: &str,
    id: &str,
) -> sqlx::Result<Option<DeviceRow>> {
    sqlx::query_as!(
        DeviceRow,
        "select id, org_id, agent_id, name, platform, push_channel, push_token, push_rejected_at,
                app_version, capabilities, auto_dial, last_seen_at, stream_seen_at, created_at, revoked_at
         from devices where org_id = $1 and id = $2",
        org_id,
        id
    )
    .fetch_optional(conn)
    .await
}

/// The devices of the given agents (or of the whole organization), newest first.
pub async fn list(
    conn: &mut PgConnection,
    org_id: &str,
    agent_ids: Option<&[String]>,
) -> sqlx::Result<Vec<DeviceRow>> {
    sqlx::query_as!(
        DeviceRow,
        "select id, org_id, agent_id, name, platform, push_channel, push_token, push_rejected_at,
                app_version, capabilities, auto_dial, last_seen_at, stream_seen_at, created_at, revoked_at
         from devices
         where org_id = $1 and ($2::text[] is null or agent_id = any($2))
         order by id desc",
        org_id,
        agent_ids
    )
    .fetch_all(conn)
    .await
}

/// A page of the organization's devices (optionally one agent's), newest first.
pub async fn page(
    conn: &mut PgConnection,
    org_id: &str,
    agent_id: Option<&str>,
    page: &super::Page,
) -> sqlx::Result<super::Paged<DeviceRow>> {
    let rows = sqlx::query_as!(
        DeviceRow,
        "select id, org_id, agent_id, name, platform, push_channel, push_token, push_rejected_at,
                app_version, capabilities, auto_dial, last_seen_at, stream_seen_at, created_at, revoked_at
         from devices
         where org_id = $1
           and ($2::text is null or agent_id = $2)
           and ($3::text is null or id < $3)
           and ($4::text is null or id > $4)
         order by case when $4::text is null then id end desc, id asc
         limit $5",
        org_id,
        agent_id,
        page.starting_after.as_deref(),
        page.ending_before.as_deref(),
        page.limit + 1
    )
    .fetch_all(conn)
    .await?;
    Ok(page.finish(rows))
}

/// An agent's devices that could take a call, most recently active first.
pub async fn routable(
    conn: &mut PgConnection,
    org_id: &str,
    agent_id: &str,
) -> sqlx::Result<Vec<DeviceRow>> {
    sqlx::query_as!(
        DeviceRow,
        "select id, org_id, agent_id, name, platform, push_channel, push_token, push_rejected_at,
                app_version, capabilities, auto_dial, last_seen_at, stream_seen_at, created_at, revoked_at
         from devices
         where org_id = $1 and agent_id = $2 and revoked_at is null
         order by greatest(last_seen_at, stream_seen_at) desc nulls last, id desc",
        org_id,
        agent_id
    )
    .fetch_all(conn)
    .await
}

pub async fn revoke(conn: &mut PgConnection, org_id: &str, id: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "update devices set revoked_at = coalesce(revoked_at, now()) where org_id = $1 and id = $2",
        org_id,
        id
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn update(
    conn: &mut PgConnection,
    org_id: &str,
    id: &str,
    u: &DeviceUpdate,
) -> sqlx::Result<()> {
    let (set_push, channel, token) = match &u.push {
        Some((c, t)) => (true, c.as_deref(), t.as_deref()),
        None => (false, None, None),
    };
    sqlx::query!(
        "update devices set
            push_channel = case when $2 then $3 else push_channel end,
            push_token = case when $2 then $4 else push_token end,
            push_rejected_at = case when $2 then null else push_rejected_at end,
            app_version = coalesce($5, app_version),
            capabilities = coalesce($6, capabilities),
            auto_dial = coalesce($7, auto_dial),
            last_seen_at = now()
         where id = $1 and org_id = $8",
        id,
        set_push,
        channel,
        token,
        u.app_version.as_deref(),
        u.capabilities.as_deref(),
        u.auto_dial,
        org_id
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Records an authenticated agent request (a push channel's check-in).
pub async fn touch_seen(conn: &mut PgConnection, org_id: &str, id: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "update devices set last_seen_at = now()
         where id = $1 and org_id = $2 and (last_seen_at is null or last_seen_at < now() - interval '5 seconds')",
        id,
        org_id
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Records the heartbeats of live sockets (`(device, organization)` pairs: one on connect,
/// all of an api's once a second) in one statement, for the presence fallback when Redis
/// is down; returns the time written for each device found.
pub async fn touch_streams(
    conn: &mut PgConnection,
    devices: &[(String, String)],
) -> sqlx::Result<Vec<(String, DateTime<Utc>)>> {
    let (ids, orgs): (Vec<String>, Vec<String>) = devices.iter().cloned().unzip();
    let rows = sqlx::query!(
        r#"update devices d set stream_seen_at = now(), last_seen_at = now()
           from unnest($1::text[], $2::text[]) as t(id, org_id)
           where d.id = t.id and d.org_id = t.org_id
           returning d.id, d.stream_seen_at as "seen!""#,
        &ids,
        &orgs
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.id, r.seen)).collect())
}

/// Forgets a closed socket in the fallback too — unless a newer socket of the device
/// refreshed it after `last_written` (this socket's last heartbeat).
pub async fn clear_stream(
    conn: &mut PgConnection,
    org_id: &str,
    id: &str,
    last_written: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update devices set stream_seen_at = null where id = $1 and org_id = $2 and stream_seen_at <= $3",
        id,
        org_id,
        last_written
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A push service said the token is dead: stop counting the channel as reachable.
pub async fn mark_push_rejected(
    conn: &mut PgConnection,
    org_id: &str,
    id: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update devices set push_rejected_at = now() where id = $1 and org_id = $2",
        id,
        org_id
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A call offered to a device and not yet acknowledged, ended or expired.
#[derive(Debug, Clone)]
pub struct PendingOffer {
    pub call_id: String,
    pub device_id: String,
    pub expires_at: DateTime<Utc>,
}

/// The calls offered to these devices (`(device, organization)` pairs) that they have not
/// acknowledged yet and that have not expired: what a phone must be offered again when its
/// socket opens, or when Redis, through which offers reach sockets, comes back.
pub async fn pending_offers(
    conn: &mut PgConnection,
    devices: &[(String, String)],
) -> sqlx::Result<Vec<PendingOffer>> {
    let (ids, orgs): (Vec<String>, Vec<String>) = devices.iter().cloned().unzip();
    sqlx::query_as!(
        PendingOffer,
        r#"select c.id as call_id, c.device_id as "device_id!", c.expires_at
           from calls c
           join unnest($1::text[], $2::text[]) as t(id, org_id)
             on c.org_id = t.org_id and c.device_id = t.id
           where c.status = 'offered' and c.expires_at > now()
           order by c.created_at"#,
        &ids,
        &orgs
    )
    .fetch_all(conn)
    .await
}
