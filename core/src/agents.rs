//! Finishing an agent: what deleting one undoes, in one transaction. The row itself stays
//! (its calls reference it and are kept under the organization's retention), marked
//! deleted, so it is absent from every read, cannot be paired to and cannot be called.

use sqlx::PgConnection;

use crate::store::{accounts as account_store, agents as agent_store};
use crate::{Error, Result};

/// What deleting an agent undid.
#[derive(Debug, Clone)]
pub struct Deleted {
    /// The agent as it was.
    pub agent: agent_store::AgentRow,
    /// Its devices, revoked: their tokens are refused from the commit on.
    pub devices: Vec<String>,
    /// Its unused pairing codes, deleted.
    pub pairing_codes: u64,
}

/// Deletes an agent of the organization: 404 when there is no live one with this id, 409
/// `agent_is_member` when it is a current member's own agent (a member takes calls as
/// their agent: they are removed from the organization first, and their agent may be
/// deleted after). Revokes its devices and deletes its unused pairing codes.
pub async fn delete(conn: &mut PgConnection, org_id: &str, agent_id: &str) -> Result<Deleted> {
    // The lock makes a concurrent rename, pairing or second delete wait for this one (and
    // this one wait for a pairing in progress, whose new device it then revokes).
    let agent = agent_store::lock(conn, org_id, agent_id)
        .await?
        .ok_or(Error::NotFound("agent"))?;
    if account_store::role_of_agent(conn, org_id, agent_id)
        .await?
        .is_some()
    {
        return Err(Error::conflict(
            "agent_is_member",
            "this agent is a member's own: remove the member from the organization first",
        ));
    }
    agent_store::mark_deleted(conn, org_id, agent_id).await?;
    let devices = account_store::revoke_agent_devices(conn, org_id, agent_id).await?;
    let pairing_codes = account_store::delete_pairing_codes(conn, org_id, agent_id).await?;
    Ok(Deleted {
        agent,
        devices,
        pairing_codes,
    })
}
