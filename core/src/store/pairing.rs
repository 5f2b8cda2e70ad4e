//! Pairing codes: short-lived, single-use secrets that bind a new device to an agent.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

pub async fn insert(
    conn: &mut PgConnection,
    code_hash: &[u8],
    org_id: &str,
    agent_id: &str,
    expires_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into pairing_codes (code_hash, org_id, agent_id, expires_at) values ($1, $2, $3, $4)",
        code_hash,
        org_id,
        agent_id,
        expires_at
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks a valid code used and returns its (org_id, agent_id); `None` when the code is
/// unknown, used or expired. The update is the check, so two devices cannot both pair.
pub async fn consume(
    conn: &mut PgConnection,
    code_hash: &[u8],
) -> sqlx::Result<Option<(String, String)>> {
    let row = sqlx::query!(
        "update pairing_codes set used_at = now()
         where code_hash = $1 and used_at is null and expires_at > now()
         returning org_id, agent_id",
        code_hash
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| (r.org_id, r.agent_id)))
}
