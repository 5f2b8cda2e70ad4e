//! API keys, stored as SHA-256 hashes with their last four characters for display.
//!
//! A key never has more power than its creator: a secret key acts with the current role of
//! the member who made it (`created_by`), and stops when they are no longer a member. A key
//! without a creator (`creator_role` null too: `pushdial admin create-org`'s) is the
//! organization's own and acts as an owner.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::roles::Role;

/// What a presented key resolves to, with its creator's membership as it is now (cached by
/// each api process: a membership change notifies, see `keycache`).
#[derive(Debug, Clone)]
pub struct KeyRecord {
    pub id: String,
    pub org_id: String,
    pub kind: String,
    pub revoked_at: Option<DateTime<Utc>>,
    /// Set on a rolled key: it stops working then.
    pub expires_at: Option<DateTime<Utc>>,
    /// The organization's plan limit, if it has its own.
    pub limit_api_per_second: Option<i32>,
    /// The member who made the key (or took it over).
    pub created_by: Option<String>,
    /// Their role when they did; null only for the organization's own keys.
    pub creator_role: Option<String>,
    /// The creator's role now, if they are still a member.
    pub member_role: Option<String>,
    /// The creator's own agent, if they are still a member.
    pub member_agent_id: Option<String>,
}

/// Who a key acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyHolder {
    /// The organization's own key (no creator): an owner's rights.
    Organization,
    /// A member's key: their role now, and their agent.
    Member {
        user_id: String,
        role: Role,
        agent_id: String,
    },
    /// The creator is no longer a member: the key must not work.
    Gone,
}

impl KeyRecord {
    /// Who the key acts as, now.
    pub fn holder(&self) -> KeyHolder {
        match (&self.created_by, &self.creator_role) {
            (None, None) => KeyHolder::Organization,
            (Some(user_id), _) => match (
                self.member_role.as_deref().and_then(Role::parse),
                &self.member_agent_id,
            ) {
                (Some(role), Some(agent_id)) => KeyHolder::Member {
                    user_id: user_id.clone(),
                    role,
                    agent_id: agent_id.clone(),
                },
                _ => KeyHolder::Gone,
            },
            // A creator recorded once and lost since (a user deleted by hand).
            (None, Some(_)) => KeyHolder::Gone,
        }
    }
}

/// A key as its organization lists it (never the secret).
#[derive(Debug, Clone)]
pub struct KeyRow {
    pub id: String,
    pub org_id: String,
    pub kind: String,
    pub name: String,
    pub last4: String,
    pub created_by: Option<String>,
    /// The creator's role when the key was made or handed over (none: the organization's).
    pub creator_role: Option<String>,
    /// The role the key acts with now: its creator's current role (`owner` for the
    /// organization's own keys; none when the creator is no longer a member).
    pub role: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub rolled_to: Option<String>,
}

/// What a new key is.
pub struct NewKey<'a> {
    pub id: &'a str,
    pub org_id: &'a str,
    pub kind: &'a str,
    pub name: &'a str,
    pub key_hash: &'a [u8],
    pub last4: &'a str,
    pub created_by: Option<&'a str>,
}

pub async fn insert(conn: &mut PgConnection, k: &NewKey<'_>) -> sqlx::Result<KeyRow> {
    sqlx::query_as!(
        KeyRow,
        r#"insert into api_keys (id, org_id, kind, name, key_hash, last4, created_by, creator_role)
         values ($1, $2, $3, $4, $5, $6, $7,
                 (select role from memberships where org_id = $2 and user_id = $7))
         returning id, org_id, kind, name, last4, created_by, creator_role,
                   case when created_by is null then 'owner'
                        else (select role from memberships m
                              where m.org_id = api_keys.org_id and m.user_id = api_keys.created_by)
                   end as role,
                   created_at, last_used_at, expires_at, revoked_at, rolled_to"#,
        k.id,
        k.org_id,
        k.kind,
        k.name,
        k.key_hash,
        k.last4,
        k.created_by
    )
    .fetch_one(conn)
    .await
}

pub async fn get(conn: &mut PgConnection, org_id: &str, id: &str) -> sqlx::Result<Option<KeyRow>> {
    sqlx::query_as!(
        KeyRow,
        r#"select k.id, k.org_id, k.kind, k.name, k.last4, k.created_by, k.creator_role,
                case when k.created_by is null and k.creator_role is null then 'owner'
                     else m.role end as role,
                k.created_at, k.last_used_at, k.expires_at, k.revoked_at, k.rolled_to
         from api_keys k
         left join memberships m on m.org_id = k.org_id and m.user_id = k.created_by
         where k.org_id = $1 and k.id = $2"#,
        org_id,
        id
    )
    .fetch_optional(conn)
    .await
}

/// The organization's keys, newest first; revoked and expired keys only when asked.
pub async fn list(
    conn: &mut PgConnection,
    org_id: &str,
    include_inactive: bool,
    page: &super::Page,
) -> sqlx::Result<super::Paged<KeyRow>> {
    let rows = sqlx::query_as!(
        KeyRow,
        r#"select k.id, k.org_id, k.kind, k.name, k.last4, k.created_by, k.creator_role,
                case when k.created_by is null and k.creator_role is null then 'owner'
                     else m.role end as role,
                k.created_at, k.last_used_at, k.expires_at, k.revoked_at, k.rolled_to
         from api_keys k
         left join memberships m on m.org_id = k.org_id and m.user_id = k.created_by
         where k.org_id = $1
           and ($2 or (k.revoked_at is null and (k.expires_at is null or k.expires_at > now())))
           and ($3::text is null or k.id < $3)
           and ($4::text is null or k.id > $4)
         order by case when $4::text is null then k.id end desc, k.id asc
         limit $5"#,
        org_id,
        include_inactive,
        page.starting_after.as_deref(),
        page.ending_before.as_deref(),
        page.limit + 1
    )
    .fetch_all(conn)
    .await?;
    Ok(page.finish(rows))
}

/// Marks a key as rolled: it keeps working until `expires_at`. False when it is not active
/// or was rolled already (a key has one replacement).
pub async fn roll(
    conn: &mut PgConnection,
    org_id: &str,
    id: &str,
    expires_at: DateTime<Utc>,
    rolled_to: &str,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "update api_keys set expires_at = least(coalesce(expires_at, $3), $3), rolled_to = $4
         where org_id = $1 and id = $2 and revoked_at is null and rolled_to is null
           and (expires_at is null or expires_at > now())",
        org_id,
        id,
        expires_at,
        rolled_to
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records that a key was used (callers throttle this).
pub async fn touch(conn: &mut PgConnection, id: &str) -> sqlx::Result<()> {
    sqlx::query!("update api_keys set last_used_at = now() where id = $1", id)
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
        r#"select k.id, k.org_id, k.kind, k.revoked_at, k.expires_at, o.limit_api_per_second,
                k.created_by, k.creator_role, m.role as "member_role?",
                m.agent_id as "member_agent_id?"
         from api_keys k join organizations o on o.id = k.org_id
         left join memberships m on m.org_id = k.org_id and m.user_id = k.created_by
         where k.key_hash = $1"#,
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

/// Revokes the active secret keys a member made (they are leaving): returns their ids.
/// Publishable keys stay: each belongs to a widget on the tenant's site and opens only
/// widget calls.
pub async fn revoke_created_by(
    conn: &mut PgConnection,
    org_id: &str,
    user_id: &str,
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar!(
        "update api_keys set revoked_at = now()
         where org_id = $1 and created_by = $2 and kind = 'secret' and revoked_at is null
           and (expires_at is null or expires_at > now())
         returning id",
        org_id,
        user_id
    )
    .fetch_all(conn)
    .await
}

/// Makes `user_id` (with `role`; none for the organization itself) the creator of an active
/// key, so that it outlives its former creator's membership. False when the key is not
/// active.
pub async fn transfer(
    conn: &mut PgConnection,
    org_id: &str,
    id: &str,
    user_id: Option<&str>,
    role: Option<&str>,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "update api_keys set created_by = $3, creator_role = $4
         where org_id = $1 and id = $2 and revoked_at is null
           and (expires_at is null or expires_at > now())",
        org_id,
        id,
        user_id,
        role
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
