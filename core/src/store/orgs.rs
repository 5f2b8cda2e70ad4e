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

/// Sets an organization's plan limits (`None` leaves one as it is; `Some(None)` returns it
/// to the deployment default); `false` if there is no such organization.
pub async fn set_limits(
    conn: &mut PgConnection,
    id: &str,
    api_per_second: Option<Option<i32>>,
    calls_per_minute: Option<Option<i32>>,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "update organizations set
            limit_api_per_second = case when $2 then $3 else limit_api_per_second end,
            limit_calls_per_minute = case when $4 then $5 else limit_calls_per_minute end
         where id = $1",
        id,
        api_per_second.is_some(),
        api_per_second.flatten(),
        calls_per_minute.is_some(),
        calls_per_minute.flatten()
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
