//! The audit log: who did what to what, per organization.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::store::{Page, Paged};

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
