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
    /// The organization's plan limit, if it has its own.
    pub limit_api_per_second: Option<i32>,
}

pub async fn insert(
    conn: &mut PgConnection,
    id: &str,
    org_id: &str,
    kind: &str,
    key_hash: &[u8],
    last4: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into api_keys (id, org_id, kind, key_hash, last4) values ($1, $2, $3, $4, $5)",
        id,
        org_id,
        kind,
        key_hash,
        last4
    )
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
        "select k.id, k.org_id, k.kind, k.revoked_at, o.limit_api_per_second
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
