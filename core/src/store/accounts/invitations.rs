//! Invitations to join an organization, accepted once by their token.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::store::{Page, Paged};

#[derive(Debug, Clone)]
pub struct InvitationRow {
    pub id: String,
    pub org_id: String,
    pub email: Option<String>,
    pub role: String,
    pub invited_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub accepted_by: Option<String>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[allow(clippy::too_many_arguments)]
pub async fn insert_invitation(
    conn: &mut PgConnection,
    id: &str,
    org_id: &str,
    email: Option<&str>,
    role: &str,
    token_hash: &[u8],
    invited_by: Option<&str>,
    expires_at: DateTime<Utc>,
) -> sqlx::Result<InvitationRow> {
    sqlx::query_as!(
        InvitationRow,
        "insert into invitations (id, org_id, email, role, token_hash, invited_by, expires_at)
         values ($1, $2, $3, $4, $5, $6, $7)
         returning id, org_id, email, role, invited_by, created_at, expires_at,
                   accepted_at, accepted_by, revoked_at",
        id,
        org_id,
        email,
        role,
        token_hash,
        invited_by,
        expires_at
    )
    .fetch_one(conn)
    .await
}

pub async fn invitations(
    conn: &mut PgConnection,
    org_id: &str,
    page: &Page,
) -> sqlx::Result<Paged<InvitationRow>> {
    let rows = sqlx::query_as!(
        InvitationRow,
        "select id, org_id, email, role, invited_by, created_at, expires_at,
                accepted_at, accepted_by, revoked_at
         from invitations
         where org_id = $1
           and ($2::text is null or id < $2)
           and ($3::text is null or id > $3)
         order by case when $3::text is null then id end desc, id asc
         limit $4",
        org_id,
        page.starting_after.as_deref(),
        page.ending_before.as_deref(),
        page.limit + 1
    )
    .fetch_all(conn)
    .await?;
    Ok(page.finish(rows))
}

pub async fn get_invitation(
    conn: &mut PgConnection,
    org_id: &str,
    id: &str,
) -> sqlx::Result<Option<InvitationRow>> {
    sqlx::query_as!(
        InvitationRow,
        "select id, org_id, email, role, invited_by, created_at, expires_at,
                accepted_at, accepted_by, revoked_at
         from invitations where org_id = $1 and id = $2",
        org_id,
        id
    )
    .fetch_optional(conn)
    .await
}

/// An invitation by its token, locked for accepting.
pub async fn invitation_by_token(
    conn: &mut PgConnection,
    token_hash: &[u8],
) -> sqlx::Result<Option<InvitationRow>> {
    sqlx::query_as!(
        InvitationRow,
        "select id, org_id, email, role, invited_by, created_at, expires_at,
                accepted_at, accepted_by, revoked_at
         from invitations where token_hash = $1 for update",
        token_hash
    )
    .fetch_optional(conn)
    .await
}

pub async fn accept_invitation(
    conn: &mut PgConnection,
    id: &str,
    user_id: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update invitations set accepted_at = now(), accepted_by = $2 where id = $1",
        id,
        user_id
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn revoke_invitation(
    conn: &mut PgConnection,
    org_id: &str,
    id: &str,
) -> sqlx::Result<Option<InvitationRow>> {
    sqlx::query_as!(
        InvitationRow,
        "update invitations set revoked_at = coalesce(revoked_at, now())
         where org_id = $1 and id = $2
         returning id, org_id, email, role, invited_by, created_at, expires_at,
                   accepted_at, accepted_by, revoked_at",
        org_id,
        id
    )
    .fetch_optional(conn)
    .await
}
