//! Stored responses of mutating requests sent with an `Idempotency-Key` (24 h): the same key
//! and body replay the stored answer, another body is refused, and a request still in flight
//! with the same key is refused rather than run twice.

use sha2::{Digest, Sha256};
use sqlx::PgConnection;

/// A stored answer.
#[derive(Debug, Clone)]
pub struct Stored {
    pub request_hash: Vec<u8>,
    pub status: i16,
    pub body: serde_json::Value,
}

/// Looks up a key (younger than 24 h).
pub async fn find(
    conn: &mut PgConnection,
    org_id: &str,
    key: &str,
) -> sqlx::Result<Option<Stored>> {
    sqlx::query_as!(
        Stored,
        "select request_hash, status, body from idempotency_keys
         where org_id = $1 and key = $2 and created_at > now() - interval '24 hours'",
        org_id,
        key
    )
    .fetch_optional(conn)
    .await
}

/// Takes the key's lock for the rest of the transaction; `false` when another request holds
/// it (a concurrent request with the same key).
pub async fn try_lock(conn: &mut PgConnection, org_id: &str, key: &str) -> sqlx::Result<bool> {
    let digest = Sha256::digest(format!("{org_id}\0{key}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let lock_key = i64::from_be_bytes(first);
    let row = sqlx::query_scalar!("select pg_try_advisory_xact_lock($1)", lock_key)
        .fetch_one(conn)
        .await?;
    Ok(row.unwrap_or(false))
}

/// Stores the answer; an expired row under the same key is replaced.
pub async fn save(
    conn: &mut PgConnection,
    org_id: &str,
    key: &str,
    request_hash: &[u8],
    status: i16,
    body: &serde_json::Value,
) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into idempotency_keys (org_id, key, request_hash, status, body)
         values ($1, $2, $3, $4, $5)
         on conflict (org_id, key) do update
           set request_hash = excluded.request_hash, status = excluded.status,
               body = excluded.body, created_at = now()",
        org_id,
        key,
        request_hash,
        status,
        body
    )
    .execute(conn)
    .await?;
    Ok(())
}
