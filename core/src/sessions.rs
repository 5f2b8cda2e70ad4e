//! Console sessions, server-side. The browser holds only a random token (cookie
//! `pd_session`); Postgres keeps the durable record (hash of the token, user, absolute
//! expiry, last use, revocation) and Redis the hot copy, read and renewed with one `GETEX`
//! per request. When Redis is down, sessions are read from Postgres; when both are down
//! the answer is a clear 503 `sessions_unavailable`.
//!
//! Limits: idle (`PUSHDIAL_SESSION_IDLE_TIMEOUT`, default 12 h, the Redis TTL renewed on
//! each use) and absolute (`PUSHDIAL_SESSION_LIFETIME`, default 7 days from sign-in). A
//! Redis copy is re-checked against Postgres at least once a minute, so a revocation made
//! while Redis was unreachable takes effect within a minute of it coming back.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::store::accounts as store;
use crate::{secrets, Ctx, Error, Result};

/// Prefix of session tokens.
const PREFIX: &str = "pd_ses_";
/// How stale the Redis copy may be before Postgres is asked again.
const RECHECK: Duration = Duration::from_secs(60);
/// How long Redis remembers a revocation (so a request racing the sign-out cannot put the
/// session back).
const TOMBSTONE: Duration = Duration::from_secs(120);
/// A linked identity may only be added this soon after signing in.
pub const RECENT_SIGN_IN: Duration = Duration::from_secs(15 * 60);

/// The session cookie's name: `__Host-pd_session` (bound to this host, `Secure`, path `/`),
/// or `pd_session` on plain-http loopback where `Secure` cookies cannot be set.
pub fn cookie_name(ctx: &Ctx) -> &'static str {
    if ctx.config.insecure_cookies() {
        "pd_session"
    } else {
        "__Host-pd_session"
    }
}

/// A live session.
#[derive(Debug, Clone)]
pub struct Session {
    pub user_id: String,
    pub id_hash: Vec<u8>,
    pub expires_at: DateTime<Utc>,
    /// When the user signed in.
    pub created_at: DateTime<Utc>,
}

/// What Redis holds for a session.
#[derive(serde::Serialize, serde::Deserialize)]
struct Cached {
    user_id: String,
    /// Sign-in time, milliseconds since the epoch.
    created_at: i64,
    /// Absolute expiry, milliseconds since the epoch.
    expires_at: i64,
    /// When Postgres last confirmed the session, milliseconds since the epoch.
    checked_at: i64,
}

fn expired() -> Error {
    Error::unauthenticated("session_expired", "the session has ended; sign in again")
}

fn unavailable() -> Error {
    Error::Unavailable {
        code: "sessions_unavailable",
        message: "sessions cannot be checked right now (Redis and PostgreSQL are unreachable); retry shortly".into(),
    }
}

/// Starts a session for `user_id`; returns the cookie value (shown once) and the session.
pub async fn create(
    ctx: &Ctx,
    user_id: &str,
    ip: Option<&str>,
    user_agent: Option<&str>,
) -> Result<(String, Session)> {
    let token = secrets::new_token(PREFIX);
    let id_hash = secrets::hash(&token);
    let lifetime = chrono::Duration::from_std(ctx.config.session_lifetime)
        .map_err(|e| Error::Internal(e.to_string()))?;
    let now = Utc::now();
    let expires_at = now + lifetime;
    let mut conn = ctx.db.acquire().await?;
    store::insert_session(&mut conn, &id_hash, user_id, expires_at, ip, user_agent).await?;
    drop(conn);
    let session = Session {
        user_id: user_id.to_owned(),
        id_hash,
        expires_at,
        created_at: now,
    };
    cache(ctx, &session).await;
    Ok((token, session))
}

/// The Redis time-to-live of a session: the idle timeout, never past the absolute expiry.
fn ttl(ctx: &Ctx, expires_at: DateTime<Utc>) -> Duration {
    let left = (expires_at - Utc::now()).to_std().unwrap_or_default();
    ctx.config.session_idle_timeout.min(left)
}

async fn cache(ctx: &Ctx, session: &Session) {
    let value = Cached {
        user_id: session.user_id.clone(),
        created_at: session.created_at.timestamp_millis(),
        expires_at: session.expires_at.timestamp_millis(),
        checked_at: Utc::now().timestamp_millis(),
    };
    let value = serde_json::to_string(&value).unwrap_or_default();
    let ttl = ttl(ctx, session.expires_at);
    if ttl.is_zero() {
        return;
    }
    if let Err(e) = ctx
        .presence
        .session_put(&hex::encode(&session.id_hash), &value, ttl)
        .await
    {
        tracing::warn!(error = %e, "session not cached in Redis; Postgres still holds it");
    }
}

/// Resolves a cookie value to its live session, renewing its idle timeout.
pub async fn resolve(ctx: &Ctx, token: &str) -> Result<Session> {
    if !token.starts_with(PREFIX) || token.len() > 128 {
        return Err(Error::unauthenticated(
            "invalid_session",
            "the session cookie is not valid; sign in again",
        ));
    }
    let id_hash = secrets::hash(token);
    let key = hex::encode(&id_hash);
    let idle = ctx.config.session_idle_timeout;
    match ctx.presence.session_get(&key, idle).await {
        Ok(Some(value)) => {
            // A revoked session's marker does not parse as a session.
            let cached: Cached = serde_json::from_str(&value).map_err(|_| expired())?;
            let now = Utc::now().timestamp_millis();
            let expires_at =
                DateTime::from_timestamp_millis(cached.expires_at).ok_or_else(expired)?;
            if cached.expires_at <= now {
                return Err(expired());
            }
            let session = Session {
                user_id: cached.user_id,
                id_hash,
                expires_at,
                created_at: DateTime::from_timestamp_millis(cached.created_at)
                    .ok_or_else(expired)?,
            };
            if now - cached.checked_at > RECHECK.as_millis() as i64 {
                // Confirm with the durable copy (and record the use there).
                return from_postgres(ctx, session.id_hash, true).await;
            }
            Ok(session)
        }
        // Not in Redis: ended by idleness, or Redis lost it (restart): Postgres decides.
        Ok(None) => from_postgres(ctx, id_hash, true).await,
        Err(_) => from_postgres(ctx, id_hash, false).await,
    }
}

/// Reads a session from Postgres, checking revocation and both timeouts; puts it back in
/// Redis when `recache`.
async fn from_postgres(ctx: &Ctx, id_hash: Vec<u8>, recache: bool) -> Result<Session> {
    let mut conn = ctx.db.acquire().await.map_err(|_| unavailable())?;
    let row = store::get_session(&mut conn, &id_hash)
        .await
        .map_err(|_| unavailable())?;
    let Some(row) = row else {
        return Err(expired());
    };
    let now = Utc::now();
    let idle = chrono::Duration::from_std(ctx.config.session_idle_timeout).unwrap_or_default();
    if row.revoked_at.is_some() || row.expires_at <= now || row.last_seen_at + idle <= now {
        return Err(expired());
    }
    store::touch_session(&mut conn, &id_hash)
        .await
        .map_err(|_| unavailable())?;
    drop(conn);
    let session = Session {
        user_id: row.user_id,
        id_hash,
        expires_at: row.expires_at,
        created_at: row.created_at,
    };
    if recache {
        cache(ctx, &session).await;
    }
    Ok(session)
}

/// Ends one session (sign-out).
pub async fn revoke(ctx: &Ctx, id_hash: &[u8]) -> Result<()> {
    let mut conn = ctx.db.acquire().await?;
    store::revoke_session(&mut conn, id_hash).await?;
    drop(conn);
    if let Err(e) = ctx
        .presence
        .session_revoke(&[hex::encode(id_hash)], TOMBSTONE)
        .await
    {
        tracing::warn!(error = %e, "session not removed from Redis; Postgres refuses it within a minute");
    }
    Ok(())
}

/// Ends every session of a user (sign-out everywhere); returns how many were live.
pub async fn revoke_all(ctx: &Ctx, user_id: &str) -> Result<usize> {
    let mut conn = ctx.db.acquire().await?;
    let idle = ctx.config.session_idle_timeout.as_secs_f64();
    let ended = store::revoke_user_sessions(&mut conn, user_id, idle).await?;
    drop(conn);
    let keys: Vec<String> = ended.iter().map(|(h, _)| hex::encode(h)).collect();
    if let Err(e) = ctx.presence.session_revoke(&keys, TOMBSTONE).await {
        tracing::warn!(error = %e, "sessions not removed from Redis; Postgres refuses them within a minute");
    }
    Ok(ended.iter().filter(|(_, live)| *live).count())
}

/// The `Set-Cookie` value that installs a session.
pub fn cookie(ctx: &Ctx, token: &str) -> String {
    let max_age = ctx.config.session_lifetime.as_secs();
    format!(
        "{}={token}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{}",
        cookie_name(ctx),
        secure(ctx)
    )
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie(ctx: &Ctx) -> String {
    format!(
        "{}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax{}",
        cookie_name(ctx),
        secure(ctx)
    )
}

/// `; Secure`, except on plain-http loopback where browsers would drop such a cookie.
pub fn secure(ctx: &Ctx) -> &'static str {
    if ctx.config.insecure_cookies() {
        ""
    } else {
        "; Secure"
    }
}
