//! Identities: the ways a user signs in (an issuer and its subject), linked to one user each.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

#[derive(Debug, Clone)]
pub struct IdentityRow {
    pub id: String,
    pub issuer: String,
    pub subject: String,
    pub user_id: String,
    pub provider: String,
    pub email: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// The user an identity belongs to (and records its use).
pub async fn use_identity(
    conn: &mut PgConnection,
    issuer: &str,
    subject: &str,
    email: Option<&str>,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!(
        "update identities set last_used_at = now(), email = coalesce($3, email)
         where issuer = $1 and subject = $2 returning user_id",
        issuer,
        subject,
        email
    )
    .fetch_optional(conn)
    .await
}

/// Links an identity to a user; false when it already belongs to someone.
pub async fn insert_identity(
    conn: &mut PgConnection,
    issuer: &str,
    subject: &str,
    user_id: &str,
    provider: &str,
    email: Option<&str>,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "insert into identities (id, issuer, subject, user_id, provider, email)
         values ($1, $2, $3, $4, $5, $6) on conflict do nothing",
        crate::ids::new_id(crate::ids::Kind::Identity),
        issuer,
        subject,
        user_id,
        provider,
        email
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn identities(conn: &mut PgConnection, user_id: &str) -> sqlx::Result<Vec<IdentityRow>> {
    sqlx::query_as!(
        IdentityRow,
        "select id, issuer, subject, user_id, provider, email, created_at
         from identities where user_id = $1 order by created_at",
        user_id
    )
    .fetch_all(conn)
    .await
}

/// Unlinks one of a user's identities, unless it is their last (locks them all).
/// `Ok(None)`: no such identity; `Ok(Some((false, _)))`: it is the last one, kept.
pub async fn delete_identity(
    conn: &mut PgConnection,
    user_id: &str,
    id: &str,
) -> sqlx::Result<Option<(bool, IdentityRow)>> {
    let all = sqlx::query_as!(
        IdentityRow,
        "select id, issuer, subject, user_id, provider, email, created_at
         from identities where user_id = $1 for update",
        user_id
    )
    .fetch_all(&mut *conn)
    .await?;
    let Some(found) = all.iter().find(|i| i.id == id).cloned() else {
        return Ok(None);
    };
    if all.len() <= 1 {
        return Ok(Some((false, found)));
    }
    sqlx::query!(
        "delete from identities where user_id = $1 and id = $2",
        user_id,
        id
    )
    .execute(conn)
    .await?;
    Ok(Some((true, found)))
}
