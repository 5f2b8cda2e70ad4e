//! Memberships: which users belong to which organization, and with what role.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::store::{Page, Paged};

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
