//! People and their access: users, identities, memberships, sessions, pending sign-ins,
//! invitations and the audit log.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::{Page, Paged};

#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    pub created_at: DateTime<Utc>,
}

pub async fn insert_user(
    conn: &mut PgConnection,
    id: &str,
    name: &str,
    email: Option<&str>,
) -> sqlx::Result<UserRow> {
    sqlx::query_as!(
        UserRow,
        "insert into users (id, name, email) values ($1, $2, $3)
         returning id, name, email, created_at",
        id,
        name,
        email
    )
    .fetch_one(conn)
    .await
}

pub async fn get_user(conn: &mut PgConnection, id: &str) -> sqlx::Result<Option<UserRow>> {
    sqlx::query_as!(
        UserRow,
        "select id, name, email, created_at from users where id = $1",
        id
    )
    .fetch_optional(conn)
    .await
}

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

/// A membership as its user sees it (with the organization's name) or as its organization
/// sees it (with the user's name and e-mail).
#[derive(Debug, Clone)]
pub struct MemberRow {
    pub org_id: String,
    pub org_name: String,
    pub user_id: String,
    pub user_name: String,
    pub user_email: Option<String>,
    pub role: String,
    pub agent_id: String,
    pub created_at: DateTime<Utc>,
}

pub async fn insert_membership(
    conn: &mut PgConnection,
    org_id: &str,
    user_id: &str,
    role: &str,
    agent_id: &str,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "insert into memberships (org_id, user_id, role, agent_id) values ($1, $2, $3, $4)
         on conflict do nothing",
        org_id,
        user_id,
        role,
        agent_id
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn membership(
    conn: &mut PgConnection,
    org_id: &str,
    user_id: &str,
) -> sqlx::Result<Option<MemberRow>> {
    sqlx::query_as!(
        MemberRow,
        "select m.org_id, o.name as org_name, m.user_id, u.name as user_name,
                u.email as user_email, m.role, m.agent_id, m.created_at
         from memberships m
         join organizations o on o.id = m.org_id
         join users u on u.id = m.user_id
         where m.org_id = $1 and m.user_id = $2",
        org_id,
        user_id
    )
    .fetch_optional(conn)
    .await
}

pub async fn memberships_of_user(
    conn: &mut PgConnection,
    user_id: &str,
) -> sqlx::Result<Vec<MemberRow>> {
    sqlx::query_as!(
        MemberRow,
        "select m.org_id, o.name as org_name, m.user_id, u.name as user_name,
                u.email as user_email, m.role, m.agent_id, m.created_at
         from memberships m
         join organizations o on o.id = m.org_id
         join users u on u.id = m.user_id
         where m.user_id = $1 order by m.created_at",
        user_id
    )
    .fetch_all(conn)
    .await
}

/// Members of an organization, paged by user id.
pub async fn members(
    conn: &mut PgConnection,
    org_id: &str,
    page: &Page,
) -> sqlx::Result<Paged<MemberRow>> {
    let rows = sqlx::query_as!(
        MemberRow,
        "select m.org_id, o.name as org_name, m.user_id, u.name as user_name,
                u.email as user_email, m.role, m.agent_id, m.created_at
         from memberships m
         join organizations o on o.id = m.org_id
         join users u on u.id = m.user_id
         where m.org_id = $1
           and ($2::text is null or m.user_id < $2)
           and ($3::text is null or m.user_id > $3)
         order by case when $3::text is null then m.user_id end desc, m.user_id asc
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

/// Locks the organization's owner rows, so that two concurrent demotions cannot both see
/// another owner and leave none; returns how many owners there are.
pub async fn lock_owners(conn: &mut PgConnection, org_id: &str) -> sqlx::Result<i64> {
    let owners = sqlx::query_scalar!(
        "select user_id from memberships where org_id = $1 and role = 'owner' for update",
        org_id
    )
    .fetch_all(conn)
    .await?;
    Ok(owners.len() as i64)
}

pub async fn set_role(
    conn: &mut PgConnection,
    org_id: &str,
    user_id: &str,
    role: &str,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "update memberships set role = $3 where org_id = $1 and user_id = $2",
        org_id,
        user_id,
        role
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn delete_membership(
    conn: &mut PgConnection,
    org_id: &str,
    user_id: &str,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "delete from memberships where org_id = $1 and user_id = $2",
        org_id,
        user_id
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The agent row of a user in an organization, if they ever joined it.
pub async fn agent_of_user(
    conn: &mut PgConnection,
    org_id: &str,
    user_id: &str,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!(
        "select id from agents where org_id = $1 and user_id = $2",
        org_id,
        user_id
    )
    .fetch_optional(conn)
    .await
}

pub async fn insert_member_agent(
    conn: &mut PgConnection,
    id: &str,
    org_id: &str,
    user_id: &str,
    name: &str,
    email: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into agents (id, org_id, name, email, user_id) values ($1, $2, $3, $4, $5)",
        id,
        org_id,
        name,
        email,
        user_id
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The role of the member an agent belongs to (none for agents created through the API).
pub async fn role_of_agent(
    conn: &mut PgConnection,
    org_id: &str,
    agent_id: &str,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!(
        "select role from memberships where org_id = $1 and agent_id = $2",
        org_id,
        agent_id
    )
    .fetch_optional(conn)
    .await
}

/// Deletes an agent's unused pairing codes (a member who left must not pair a phone).
pub async fn delete_pairing_codes(
    conn: &mut PgConnection,
    org_id: &str,
    agent_id: &str,
) -> sqlx::Result<u64> {
    Ok(sqlx::query!(
        "delete from pairing_codes where org_id = $1 and agent_id = $2 and used_at is null",
        org_id,
        agent_id
    )
    .execute(conn)
    .await?
    .rows_affected())
}

/// Revokes every device of an agent (a member who left must not keep taking calls);
/// returns the revoked devices' ids.
pub async fn revoke_agent_devices(
    conn: &mut PgConnection,
    org_id: &str,
    agent_id: &str,
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar!(
        "update devices set revoked_at = now()
         where org_id = $1 and agent_id = $2 and revoked_at is null returning id",
        org_id,
        agent_id
    )
    .fetch_all(conn)
    .await
}

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

pub async fn insert_sign_in(
    conn: &mut PgConnection,
    state_hash: &[u8],
    provider: &str,
    sealed: &[u8],
    return_to: Option<&str>,
    link: Option<(&str, &[u8])>,
) -> sqlx::Result<()> {
    // Old attempts are cleared as new ones start: the table stays small without a job.
    sqlx::query!("delete from sign_ins where created_at < now() - interval '1 day'")
        .execute(&mut *conn)
        .await?;
    sqlx::query!(
        "insert into sign_ins (state_hash, provider, secrets, return_to, link_user_id, link_session_hash)
         values ($1, $2, $3, $4, $5, $6)",
        state_hash,
        provider,
        sealed,
        return_to,
        link.map(|l| l.0),
        link.map(|l| l.1)
    )
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone)]
pub struct SignInRow {
    pub provider: String,
    pub secrets: Vec<u8>,
    pub return_to: Option<String>,
    pub link_user_id: Option<String>,
    pub link_session_hash: Option<Vec<u8>>,
}

/// Takes a pending sign-in: once, within `max_age_s` seconds of its start.
pub async fn take_sign_in(
    conn: &mut PgConnection,
    state_hash: &[u8],
    max_age_s: f64,
) -> sqlx::Result<Option<SignInRow>> {
    sqlx::query_as!(
        SignInRow,
        "update sign_ins set used_at = now()
         where state_hash = $1 and used_at is null
           and created_at > now() - make_interval(secs => $2)
         returning provider, secrets, return_to, link_user_id, link_session_hash",
        state_hash,
        max_age_s
    )
    .fetch_optional(conn)
    .await
}

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

/// One entry of the audit log.
#[derive(Debug, Clone, Default)]
pub struct AuditEntry {
    pub org_id: Option<String>,
    pub action: String,
    pub actor_type: String,
    pub actor_id: Option<String>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub data: serde_json::Value,
}

#[derive(Debug, Clone)]
pub struct AuditRow {
    pub id: String,
    pub org_id: Option<String>,
    pub action: String,
    pub actor_type: String,
    pub actor_id: Option<String>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub data: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

pub async fn insert_audit(conn: &mut PgConnection, id: &str, e: &AuditEntry) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into audit_events
            (id, org_id, action, actor_type, actor_id, target_type, target_id, ip, user_agent, data)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        id,
        e.org_id,
        e.action,
        e.actor_type,
        e.actor_id,
        e.target_type,
        e.target_id,
        e.ip,
        e.user_agent,
        e.data
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn audit_events(
    conn: &mut PgConnection,
    org_id: &str,
    action: Option<&str>,
    page: &Page,
) -> sqlx::Result<Paged<AuditRow>> {
    let rows = sqlx::query_as!(
        AuditRow,
        "select id, org_id, action, actor_type, actor_id, target_type, target_id, ip,
                user_agent, data, created_at
         from audit_events
         where org_id = $1
           and ($2::text is null or action = $2)
           and ($3::text is null or id < $3)
           and ($4::text is null or id > $4)
         order by case when $4::text is null then id end desc, id asc
         limit $5",
        org_id,
        action,
        page.starting_after.as_deref(),
        page.ending_before.as_deref(),
        page.limit + 1
    )
    .fetch_all(conn)
    .await?;
    Ok(page.finish(rows))
}
