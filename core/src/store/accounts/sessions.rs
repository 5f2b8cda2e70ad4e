//! Sessions: a signed-in browser, known by the hash of its cookie.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

#[derive(Debug, Clone)]
pub struct SessionRow {
    pub user_id: String,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

pub async fn insert_session(
    conn: &mut PgConnection,
    id_hash: &[u8],
    user_id: &str,
    expires_at: DateTime<Utc>,
    ip: Option<&str>,
    user_agent: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into sessions (id_hash, user_id, expires_at, ip, user_agent)
         values ($1, $2, $3, $4, $5)",
        id_hash,
        user_id,
        expires_at,
        ip,
        user_agent
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Reads a session and records its use.
pub async fn touch_session(
    conn: &mut PgConnection,
    id_hash: &[u8],
) -> sqlx::Result<Option<SessionRow>> {
    sqlx::query_as!(
        SessionRow,
        "update sessions set last_seen_at = greatest(last_seen_at, now())
         where id_hash = $1
         returning user_id, created_at, last_seen_at, expires_at, revoked_at",
        id_hash
    )
    .fetch_optional(conn)
    .await
}

/// Reads a session without recording its use.
pub async fn get_session(
    conn: &mut PgConnection,
    id_hash: &[u8],
) -> sqlx::Result<Option<SessionRow>> {
    sqlx::query_as!(
        SessionRow,
        "select user_id, created_at, last_seen_at, expires_at, revoked_at
         from sessions where id_hash = $1",
        id_hash
    )
    .fetch_optional(conn)
    .await
}

pub async fn revoke_session(conn: &mut PgConnection, id_hash: &[u8]) -> sqlx::Result<()> {
    sqlx::query!(
        "update sessions set revoked_at = now() where id_hash = $1 and revoked_at is null",
        id_hash
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Revokes every session of a user not revoked yet; returns each one's hash (to drop from
/// Redis) and whether it was still live (within both timeouts).
pub async fn revoke_user_sessions(
    conn: &mut PgConnection,
    user_id: &str,
    idle_s: f64,
) -> sqlx::Result<Vec<(Vec<u8>, bool)>> {
    let rows = sqlx::query!(
        "update sessions set revoked_at = now()
         where user_id = $1 and revoked_at is null
         returning id_hash,
                   (expires_at > now() and last_seen_at > now() - make_interval(secs => $2)) as live",
        user_id,
        idle_s
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.id_hash, r.live.unwrap_or(false)))
        .collect())
}
