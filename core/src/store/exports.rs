//! The call log read for an export: the organization's calls in a time window, oldest
//! first, in batches that each resume after the last row of the one before (keyset on
//! `(created_at, id)`). Each batch is a short query on its own connection, so an export
//! neither holds a connection while its client reads nor keeps running once nobody reads.

use chrono::{DateTime, Utc};
use pushdial_protocol::{CallStatus, Confirm};
use sqlx::PgConnection;

use super::calls::CallRow;

/// Which calls an export reads.
#[derive(Debug, Clone)]
pub struct ExportWindow {
    pub created_gte: DateTime<Utc>,
    pub created_lt: DateTime<Utc>,
    /// Only this agent's calls (the agent role's scope).
    pub agent_id: Option<String>,
}

/// The next `limit` calls of the window after `after` (the last row's `(created_at, id)`).
pub async fn call_batch(
    conn: &mut PgConnection,
    org_id: &str,
    window: &ExportWindow,
    after: Option<&(DateTime<Utc>, String)>,
    limit: i64,
) -> sqlx::Result<Vec<CallRow>> {
    sqlx::query_as!(
        CallRow,
        "select id, org_id, agent_id, target_device_id, device_id, attempted_device_ids, to_number,
                confirm as \"confirm: Confirm\", status as \"status: CallStatus\", reason, metadata, duration_s, expires_at, created_at, updated_at
         from calls
         where org_id = $1
           and created_at >= $2 and created_at < $3
           and ($4::text is null or agent_id = $4)
           and ($5::timestamptz is null or (created_at, id) > ($5, $6::text))
         order by created_at, id
         limit $7",
        org_id,
        window.created_gte,
        window.created_lt,
        window.agent_id.as_deref(),
        after.map(|a| a.0),
        after.map(|a| a.1.as_str()),
        limit
    )
    .fetch_all(conn)
    .await
}
