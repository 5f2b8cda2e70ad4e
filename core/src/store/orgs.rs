//! Organizations: the tenants, with their dialing policy and blocklist.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

#[derive(Debug, Clone)]
pub struct OrgRow {
    pub id: String,
    pub name: String,
    pub country: String,
    pub allowed_countries: Vec<String>,
    pub blocked_number_types: Vec<String>,
    pub created_at: DateTime<Utc>,
}

/// Creates an organization whose calls may go to its own country.
pub async fn insert(
    conn: &mut PgConnection,
    id: &str,
    name: &str,
    country: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into organizations (id, name, country, allowed_countries) values ($1, $2, $3, array[$3])",
        id,
        name,
        country
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn get(conn: &mut PgConnection, id: &str) -> sqlx::Result<Option<OrgRow>> {
    sqlx::query_as!(
        OrgRow,
        "select id, name, country, allowed_countries, blocked_number_types, created_at
         from organizations where id = $1",
        id
    )
    .fetch_optional(conn)
    .await
}

/// Changes the dialing policy; `None` leaves a list as it is.
pub async fn update_dialing(
    conn: &mut PgConnection,
    id: &str,
    allowed_countries: Option<&[String]>,
    blocked_number_types: Option<&[String]>,
) -> sqlx::Result<Option<OrgRow>> {
    sqlx::query_as!(
        OrgRow,
        "update organizations set
            allowed_countries = coalesce($2, allowed_countries),
            blocked_number_types = coalesce($3, blocked_number_types)
         where id = $1
         returning id, name, country, allowed_countries, blocked_number_types, created_at",
        id,
        allowed_countries,
        blocked_number_types
    )
    .fetch_optional(conn)
    .await
}

#[derive(Debug, Clone)]
pub struct BlockedRow {
    pub id: String,
    pub prefix: String,
    pub created_at: DateTime<Utc>,
}

/// Adds a number or prefix to the blocklist; `None` if it is listed already.
pub async fn block(
    conn: &mut PgConnection,
    id: &str,
    org_id: &str,
    prefix: &str,
) -> sqlx::Result<Option<BlockedRow>> {
    sqlx::query_as!(
        BlockedRow,
        "insert into blocked_numbers (id, org_id, prefix) values ($1, $2, $3)
         on conflict (org_id, prefix) do nothing
         returning id, prefix, created_at",
        id,
        org_id,
        prefix
    )
    .fetch_optional(conn)
    .await
}

pub async fn blocked(conn: &mut PgConnection, org_id: &str) -> sqlx::Result<Vec<BlockedRow>> {
    sqlx::query_as!(
        BlockedRow,
        "select id, prefix, created_at from blocked_numbers where org_id = $1 order by prefix",
        org_id
    )
    .fetch_all(conn)
    .await
}

pub async fn unblock(
    conn: &mut PgConnection,
    org_id: &str,
    id: &str,
) -> sqlx::Result<Option<BlockedRow>> {
    sqlx::query_as!(
        BlockedRow,
        "delete from blocked_numbers where org_id = $1 and id = $2 returning id, prefix, created_at",
        org_id,
        id
    )
    .fetch_optional(conn)
    .await
}

/// Whether a number is on the organization's blocklist (exactly or by prefix).
/// What deciding a call's destination needs, in one round trip: the policy, whether the
/// number is on the blocklist, and the plan's calls per minute.
#[derive(Debug, Clone)]
pub struct DialingView {
    pub allowed_countries: Vec<String>,
    pub blocked_number_types: Vec<String>,
    pub blocked: bool,
    pub limit_calls_per_minute: Option<i32>,
}

pub async fn dialing_view(
    conn: &mut PgConnection,
    org_id: &str,
    e164: &str,
) -> sqlx::Result<Option<DialingView>> {
    sqlx::query_as!(
        DialingView,
        r#"select o.allowed_countries, o.blocked_number_types, o.limit_calls_per_minute,
                  exists(select 1 from blocked_numbers b
                         where b.org_id = o.id and starts_with($2, b.prefix)) as "blocked!"
           from organizations o where o.id = $1"#,
        org_id,
        e164
    )
    .fetch_optional(conn)
    .await
}

/// What routing a call to an agent needs, in one round trip: the dialing view, whether
/// the agent exists, and its devices that are not revoked, most recently active first.
#[derive(Debug, Clone)]
pub struct RouteView {
    pub dialing: DialingView,
    pub agent_exists: bool,
    pub devices: Vec<super::devices::DeviceRow>,
}

pub async fn route_view(
    conn: &mut PgConnection,
    org_id: &str,
    e164: &str,
    agent_id: &str,
) -> sqlx::Result<Option<RouteView>> {
    // One row per device (the organization's columns repeated), or one without a device.
    let rows = sqlx::query!(
        r#"select o.allowed_countries, o.blocked_number_types, o.limit_calls_per_minute,
                  exists(select 1 from blocked_numbers b
                         where b.org_id = o.id and starts_with($2, b.prefix)) as "blocked!",
                  exists(select 1 from agents a where a.org_id = o.id and a.id = $3
                         and a.deleted_at is null) as "agent_exists!",
                  d.id as "device_id?", d.name as "name?", d.platform as "platform?",
                  d.push_channel as "push_channel?", d.push_token as "push_token?",
                  d.push_rejected_at as "push_rejected_at?", d.app_version as "app_version?",
                  d.capabilities as "capabilities?", d.auto_dial as "auto_dial?",
                  d.last_seen_at as "last_seen_at?", d.stream_seen_at as "stream_seen_at?",
                  d.created_at as "created_at?"
           from organizations o
           left join devices d on d.org_id = o.id and d.agent_id = $3 and d.revoked_at is null
           where o.id = $1
           order by greatest(d.last_seen_at, d.stream_seen_at) desc nulls last, d.id desc"#,
        org_id,
        e164,
        agent_id
    )
    .fetch_all(conn)
    .await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let dialing = DialingView {
        allowed_countries: first.allowed_countries.clone(),
        blocked_number_types: first.blocked_number_types.clone(),
        blocked: first.blocked,
        limit_calls_per_minute: first.limit_calls_per_minute,
    };
    let agent_exists = first.agent_exists;
    let devices = rows
        .into_iter()
        .filter_map(|r| {
            Some(super::devices::DeviceRow {
                id: r.device_id?,
                org_id: org_id.to_owned(),
                agent_id: agent_id.to_owned(),
                name: r.name.unwrap_or_default(),
                platform: r.platform.unwrap_or_default(),
                push_channel: r.push_channel,
                push_token: r.push_token,
                push_rejected_at: r.push_rejected_at,
                app_version: r.app_version,
                capabilities: r.capabilities.unwrap_or_default(),
                auto_dial: r.auto_dial.unwrap_or_default(),
                last_seen_at: r.last_seen_at,
                stream_seen_at: r.stream_seen_at,
                created_at: r.created_at.unwrap_or_default(),
                revoked_at: None,
            })
        })
        .collect();
    Ok(Some(RouteView {
        dialing,
        agent_exists,
        devices,
    }))
}

/// An organization's plan limits; for each, `None` leaves it as it is and `Some(None)`
/// returns it to the deployment default.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlanLimits {
    pub api_per_second: Option<Option<i32>>,
    pub calls_per_minute: Option<Option<i32>>,
    pub webhook_endpoints: Option<Option<i32>>,
}

/// Sets an organization's plan limits; `false` if there is no such organization.
pub async fn set_limits(
    conn: &mut PgConnection,
    id: &str,
    limits: PlanLimits,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "update organizations set
            limit_api_per_second = case when $2 then $3 else limit_api_per_second end,
            limit_calls_per_minute = case when $4 then $5 else limit_calls_per_minute end,
            limit_webhook_endpoints = case when $6 then $7 else limit_webhook_endpoints end
         where id = $1",
        id,
        limits.api_per_second.is_some(),
        limits.api_per_second.flatten(),
        limits.calls_per_minute.is_some(),
        limits.calls_per_minute.flatten(),
        limits.webhook_endpoints.is_some(),
        limits.webhook_endpoints.flatten()
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The organization's own public-API rate, if its plan sets one.
pub async fn api_limit(conn: &mut PgConnection, id: &str) -> sqlx::Result<Option<i32>> {
    Ok(sqlx::query_scalar!(
        "select limit_api_per_second from organizations where id = $1",
        id
    )
    .fetch_optional(conn)
    .await?
    .flatten())
}
