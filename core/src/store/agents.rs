//! Agents: the people of an organization who take calls on their devices. A deleted agent
//! keeps its row (its calls reference it) with `deleted_at` set, and every read here skips it.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::{Page, Paged};

#[derive(Debug, Clone)]
pub struct AgentRow {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub email: Option<String>,
    pub created_at: DateTime<Utc>,
}

pub async fn insert(
    conn: &mut PgConnection,
    id: &str,
    org_id: &str,
    name: &str,
    email: Option<&str>,
) -> sqlx::Result<AgentRow> {
    sqlx::query_as!(
        AgentRow,
        "insert into agents (id, org_id, name, email) values ($1, $2, $3, $4)
         returning id, org_id, name, email, created_at",
        id,
        org_id,
        name,
        email
    )
    .fetch_one(conn)
    .await
}

pub async fn get(
    conn: &mut PgConnection,
    org_id: &str,
    id: &str,
) -> sqlx::Result<Option<AgentRow>> {
    sqlx::query_as!(
        AgentRow,
        "select id, org_id, name, email, created_at from agents
         where org_id = $1 and id = $2 and deleted_at is null",
        org_id,
        id
    )
    .fetch_optional(conn)
    .await
}

pub async fn list(
    conn: &mut PgConnection,
    org_id: &str,
    page: &Page,
) -> sqlx::Result<Paged<AgentRow>> {
    let rows = sqlx::query_as!(
        AgentRow,
        "select id, org_id, name, email, created_at from agents
         where org_id = $1 and deleted_at is null
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

/// Renames a live agent; `None` when there is none with this id.
pub async fn rename(
    conn: &mut PgConnection,
    org_id: &str,
    id: &str,
    name: &str,
) -> sqlx::Result<Option<AgentRow>> {
    sqlx::query_as!(
        AgentRow,
        "update agents set name = $3 where org_id = $1 and id = $2 and deleted_at is null
         returning id, org_id, name, email, created_at",
        org_id,
        id,
        name
    )
    .fetch_optional(conn)
    .await
}

/// Locks a live agent's row until the transaction ends, so that its deletion and a
/// concurrent rename or pairing take turns; `None` when there is none with this id.
pub async fn lock(
    conn: &mut PgConnection,
    org_id: &str,
    id: &str,
) -> sqlx::Result<Option<AgentRow>> {
    sqlx::query_as!(
        AgentRow,
        "select id, org_id, name, email, created_at from agents
         where org_id = $1 and id = $2 and deleted_at is null for update",
        org_id,
        id
    )
    .fetch_optional(conn)
    .await
}

/// Marks an agent deleted; false when it already was (or never existed).
pub async fn mark_deleted(conn: &mut PgConnection, org_id: &str, id: &str) -> sqlx::Result<bool> {
    Ok(sqlx::query!(
        "update agents set deleted_at = now()
         where org_id = $1 and id = $2 and deleted_at is null",
        org_id,
        id
    )
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}
