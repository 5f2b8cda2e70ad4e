//! An organization's own push credentials (one per provider). The secret part is sealed by
//! the caller (`crypto::SecretBox`) and never leaves this module unsealed.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

#[derive(Debug, Clone)]
pub struct CredentialRow {
    pub id: String,
    pub org_id: String,
    pub provider: String,
    pub metadata: serde_json::Value,
    pub secret: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub failing_since: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
}

/// Stores the organization's credential for `provider`, replacing the one it had.
pub async fn upsert(
    conn: &mut PgConnection,
    id: &str,
    org_id: &str,
    provider: &str,
    metadata: &serde_json::Value,
    sealed: &[u8],
) -> sqlx::Result<CredentialRow> {
    sqlx::query_as!(
        CredentialRow,
        "insert into push_credentials (id, org_id, provider, metadata, secret)
         values ($1, $2, $3, $4, $5)
         on conflict (org_id, provider) do update
            set id = excluded.id, metadata = excluded.metadata, secret = excluded.secret,
                created_at = now(), failing_since = null, last_error = null, last_error_at = null
         returning id, org_id, provider, metadata, secret, created_at, failing_since,
                   last_error, last_error_at",
        id,
        org_id,
        provider,
        metadata,
        sealed
    )
    .fetch_one(conn)
    .await
}

pub async fn list(conn: &mut PgConnection, org_id: &str) -> sqlx::Result<Vec<CredentialRow>> {
    sqlx::query_as!(
        CredentialRow,
        "select id, org_id, provider, metadata, secret, created_at, failing_since,
                last_error, last_error_at
         from push_credentials where org_id = $1 order by provider",
        org_id
    )
    .fetch_all(conn)
    .await
}

pub async fn get(
    conn: &mut PgConnection,
    org_id: &str,
    provider: &str,
) -> sqlx::Result<Option<CredentialRow>> {
    sqlx::query_as!(
        CredentialRow,
        "select id, org_id, provider, metadata, secret, created_at, failing_since,
                last_error, last_error_at
         from push_credentials where org_id = $1 and provider = $2",
        org_id,
        provider
    )
    .fetch_optional(conn)
    .await
}

/// The id of the organization's credential for `provider`, if it has one (the cheap
/// lookup made before every send; the sealed secret is read only when not cached).
pub async fn current_id(
    conn: &mut PgConnection,
    org_id: &str,
    provider: &str,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!(
        "select id from push_credentials where org_id = $1 and provider = $2",
        org_id,
        provider
    )
    .fetch_optional(conn)
    .await
}

pub async fn delete(conn: &mut PgConnection, org_id: &str, provider: &str) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "delete from push_credentials where org_id = $1 and provider = $2",
        org_id,
        provider
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// The provider refused the credential itself (`reason`); shown through the API.
pub async fn mark_failing(conn: &mut PgConnection, id: &str, reason: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "update push_credentials
            set failing_since = coalesce(failing_since, now()), last_error = $2, last_error_at = now()
          where id = $1",
        id,
        reason
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A send through the credential succeeded: it is not failing any more.
pub async fn mark_working(conn: &mut PgConnection, id: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "update push_credentials set failing_since = null where id = $1 and failing_since is not null",
        id
    )
    .execute(conn)
    .await?;
    Ok(())
}
