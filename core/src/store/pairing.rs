//! Pairing codes: short-lived, single-use secrets that bind a new device to an agent. Each
//! row has two secrets, both stored hashed: the short code a person types and the long
//! token the QR code and link carry. Either consumes the row, once.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

/// A pairing code to store: the hashes of its typed code and of its token.
#[derive(Debug, Clone, Copy)]
pub struct NewPairing<'a> {
    pub code_hash: &'a [u8],
    pub token_hash: &'a [u8],
    pub org_id: &'a str,
    pub agent_id: &'a str,
    pub expires_at: DateTime<Utc>,
}

pub async fn insert(conn: &mut PgConnection, new: NewPairing<'_>) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into pairing_codes (code_hash, token_hash, org_id, agent_id, expires_at)
         values ($1, $2, $3, $4, $5)",
        new.code_hash,
        new.token_hash,
        new.org_id,
        new.agent_id,
        new.expires_at
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks a valid code used and returns its (org_id, agent_id); `None` when the code is
/// unknown, used or expired, or its agent deleted. The update is the check, so two devices
/// cannot both pair. The agent's row is share-locked until the pairing commits: a deletion
/// of the agent waits for the new device (and revokes it), or goes first and the code fails.
pub async fn consume(
    conn: &mut PgConnection,
    code_hash: &[u8],
) -> sqlx::Result<Option<(String, String)>> {
    let row = sqlx::query!(
        "update pairing_codes set used_at = now()
         where code_hash = $1 and used_at is null and expires_at > now()
           and exists(select 1 from agents a where a.org_id = pairing_codes.org_id
                      and a.id = pairing_codes.agent_id and a.deleted_at is null for share)
         returning org_id, agent_id",
        code_hash
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| (r.org_id, r.agent_id)))
}

/// As [`consume`], by the token of the QR code or link.
pub async fn consume_token(
    conn: &mut PgConnection,
    token_hash: &[u8],
) -> sqlx::Result<Option<(String, String)>> {
    let row = sqlx::query!(
        "update pairing_codes set used_at = now()
         where token_hash = $1 and used_at is null and expires_at > now()
           and exists(select 1 from agents a where a.org_id = pairing_codes.org_id
                      and a.id = pairing_codes.agent_id and a.deleted_at is null for share)
         returning org_id, agent_id",
        token_hash
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| (r.org_id, r.agent_id)))
}
