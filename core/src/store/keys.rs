//! API keys, stored as SHA-256 hashes with their last four characters for display.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

/// What a presented key resolves to.
#[derive(Debug, Clone)]
pub struct KeyRecord {
    pub id: String,
    pub org_id: String,
    pub kind: String,
    pub revoked_at: Option<DateTime<Utc>>,
    /// Set on a rolled key: it stops working then.
    pub expires_at: Option<DateTime<Utc>>,
    /// The organization's plan limit, if it has its own.
    pub limit_api_per_second: Option<i32>,
}

/// A key as its organization lists it (never the secret).
#[derive(Debug, Clone)]
pub struct KeyRow {
    pub id: String,
    pub org_id: String,
    pub kind: String,
    pub name: String,
    pub last4: String,
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub rolled_to: Option<String>,
}

/// What a new key is.
pub struct NewKey<'a> {
    pub id: &'a str,
    pub org_id: &'a str,
    pub kind: &'a str,
    pub name: &'a str,
    pub key_hash: &'a [u8],
    pub last4: &'a str,
    pub created_by: Option<&'a str>,
}

pub async fn insert(conn: &mut PgConnection, k: &NewKey<'_>) -> sqlx::Result<KeyRow> {
    sqlx::query_as!(
        KeyRow,
        "insert into api_keys (id, org_id, kind, name, key_hash, last4, created_by)
         values ($1, $2, $3, $4, $5, $6, $7)
         returning id, org_id, kind, name, last4, created_by, created_at, last_used_at,
                   expires_at, revoked_at, rolled_to",
        k.id,
        k.org_id,
        k.kind,
        k.name,
        k.key_hash,
        k.last4,
        k.created_by
    )
    .fetch_one(conn)
    .await
}

pub async fn get(conn: &mut PgConnection, org_id: &str, id: &str) -> sqlx::Result<Option<KeyRow>> {
    sqlx::query_as!(
        KeyRow,
        "select id, org_id, kind, name, last4, created_by, created_at, last_used_at,
                expires_at, revoked_at, rolled_to
         from api_keys where org_id = $1 and id = $2",
        org_id,
        id
    )
    .fetch_optional(conn)
    .await
}

/// The organization's keys, newest first; revoked and expired keys only when asked.
pub async fn list(
    conn: &mut PgConnection,
    org_id: &str,
    include_inactive: bool,
    page: &super::Page,
) -> sqlx::Result<super::Paged<KeyRow>> {
    let rows = sqlx::query_as!(
        KeyRow,
        "select id, org_id, kind, name, last4, created_by, created_at, last_used_at,
                expires_at, revoked_at, rolled_to
         from api_keys
         where org_id = $1
           and ($2 or (revoked_at is null and (expires_at is null or expires_at > now())))
           and ($3::text is null or id < $3)
           and ($4::text is null or id > $4)
         order by case when $4::text is null then id end desc, id asc
         limit $5",
        org_id,
        include_inactive,
        page.starting_after.as_deref(),
        page.ending_before.as_deref(),
        page.limit + 1
    )
    .fetch_all(conn)
    .await?;
    Ok(page.finish(rows))
}

/// Marks a key as rolled: it keeps working until `expires_at`. False when it is not active
/// or was rolled already (a key has one replacement).
pub async fn roll(
    conn: &mut PgConnection,
    org_id: &str,
    id: &str,
    expires_at: DateTime<Utc>,
    rolled_to: &str,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "update api_keys set expires_at = least(coalesce(expires_at, $3), $3), rolled_to = $4
         where org_id = $1 and id = $2 and revoked_at is null and rolled_to is null
           and (expires_at is null or expires_at > now())",
        org_id,
        id,
        expires_at,
        rolled_to
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records that a key was used (callers throttle this).
pub async fn touch(conn: &mut PgConnection, id: &str) -> sqlx::Result<()> {
    sqlx::query!("update api_keys set last_used_at = now() where id = $1", id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn find_by_hash(
    conn: &mut PgConnection,
    key_hash: &[u8],
) -> sqlx::Result<Option<KeyRecord>> {
    sqlx::query_as!(
        KeyRecord,
        "select k.id, k.org_id, k.kind, k.revoked_at, k.expires_at, o.limit_api_per_second
         from api_keys k join organizations o on o.id = k.org_id
         where k.key_hash = $1",
        key_hash
    )
    .fetch_optional(conn)
    .await
}

pub async fn revoke(conn: &mut PgConnection, org_id: &str, id: &str) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "update api_keys set revoked_at = now() where org_id = $1 and id = $2 and revoked_at is null",
        org_id,
        id
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
