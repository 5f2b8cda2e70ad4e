//! Who may do what in an organization: the acting principal (`OrgScope`: the tenant, the
//! actor and its role) that the api's security schemes resolve a credential to, and the
//! checks a use case asks of it. Here, not in the api, so that a use case in `core`
//! (`placing`) can apply the same rules the handlers do, in its own order.

use crate::accounts::Role;
use crate::store::accounts::{self as account_store, AuditEntry};
use crate::Error;

/// What an actor asks to do in an organization. Each handler names its action and asks
/// [`OrgScope::require`]; which roles may do it is decided here, in one table
/// ([`Action::allowed_roles`]), so that the rule for a resource cannot differ between its
/// handlers. What an agent may see of the organization (only their own agent's calls and
/// devices) is a further scope, `OrgScope::own_agent`, not a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Place a call (an agent through their own phones only).
    PlaceCall,
    /// See calls and their events (an agent their own only).
    ReadCalls,
    /// Cancel a call (an agent their own only).
    CancelCall,
    /// Create agents.
    CreateAgent,
    /// Rename agents.
    RenameAgent,
    /// Delete agents (their devices are revoked, their calls kept).
    DeleteAgent,
    /// Change the organization's settings.
    ManageOrganization,
    /// Add, list and remove blocked numbers.
    ManageBlockedNumbers,
    /// List members, change their roles, remove others.
    ManageMembers,
    /// Invite members, list and revoke invitations.
    ManageInvitations,
    /// Create, read, roll and revoke API keys.
    ManageApiKeys,
    /// Read the audit log.
    ReadAuditLog,
    /// Hand an API key to another member.
    TransferApiKey,
    /// Set, read and delete push credentials.
    ManagePushCredentials,
    /// Webhook endpoints, their secrets, deliveries and the event log.
    ManageWebhooks,
    /// Create, read, change and delete widgets.
    ManageWidgets,
}

const EVERYONE: &[Role] = &[Role::Agent, Role::Admin, Role::Owner];
const ADMINS: &[Role] = &[Role::Admin, Role::Owner];
const OWNERS: &[Role] = &[Role::Owner];

impl Action {
    /// The roles that may do this (a secret key acts with its creator's role).
    pub fn allowed_roles(self) -> &'static [Role] {
        match self {
            Action::PlaceCall | Action::ReadCalls | Action::CancelCall => EVERYONE,
            Action::CreateAgent
            | Action::RenameAgent
            | Action::DeleteAgent
            | Action::ManageOrganization
            | Action::ManageBlockedNumbers
            | Action::ManageMembers
            | Action::ManageInvitations
            | Action::ManageApiKeys
            | Action::ReadAuditLog
            | Action::ManagePushCredentials
            | Action::ManageWebhooks
            | Action::ManageWidgets => ADMINS,
            Action::TransferApiKey => OWNERS,
        }
    }
}

/// Who is acting.
#[derive(Debug, Clone)]
pub enum Actor {
    /// A secret API key, acting with its creator's role now (`Owner` for the organization's
    /// own key, which has no creator).
    Key {
        key_id: String,
        role: Role,
        /// The member who made it: their user id and their own agent.
        creator: Option<KeyCreator>,
    },
    /// A signed-in member.
    Member {
        user_id: String,
        role: Role,
        /// The member's own agent: their calls and devices.
        agent_id: String,
    },
}

/// The member a key acts for.
#[derive(Debug, Clone)]
pub struct KeyCreator {
    pub user_id: String,
    pub agent_id: String,
}

/// The organization a request acts in, who acts, and from where.
#[derive(Debug, Clone)]
pub struct OrgScope {
    pub org_id: String,
    pub actor: Actor,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl OrgScope {
    /// The actor's role; a secret key has its creator's.
    pub fn role(&self) -> Role {
        match &self.actor {
            Actor::Key { role, .. } | Actor::Member { role, .. } => *role,
        }
    }

    /// The member acting, in person or through a key they made: whom a key made now
    /// belongs to. `None` for the organization's own key.
    pub fn acting_user(&self) -> Option<&str> {
        match &self.actor {
            Actor::Member { user_id, .. } => Some(user_id),
            Actor::Key { creator, .. } => creator.as_ref().map(|c| c.user_id.as_str()),
        }
    }

    /// The acting member's own agent, in person or through a key they made.
    fn acting_agent(&self) -> Option<&str> {
        match &self.actor {
            Actor::Member { agent_id, .. } => Some(agent_id),
            Actor::Key { creator, .. } => creator.as_ref().map(|c| c.agent_id.as_str()),
        }
    }

    /// Refuses an actor whose role may not do `action` (403 `role_forbidden`): the one
    /// question a handler asks before it reads or writes anything of the organization.
    pub fn require(&self, action: Action) -> Result<(), Error> {
        let allowed = action.allowed_roles();
        if allowed.contains(&self.role()) {
            return Ok(());
        }
        let roles: Vec<&str> = allowed.iter().map(|r| r.as_str()).collect();
        Err(Error::forbidden(
            "role_forbidden",
            format!(
                "this needs the {} role in the organization",
                roles.join(" or ")
            ),
        ))
    }

    /// For a member with the `agent` role (or a key whose creator has it now): the only
    /// agent whose calls and devices they may see and use. `None` for admins and owners.
    pub fn own_agent(&self) -> Option<&str> {
        match self.role() {
            // A key with the agent role always has a creator (the organization's is owner);
            // should one not, it sees an agent that cannot exist: nothing.
            Role::Agent => Some(self.acting_agent().unwrap_or("")),
            _ => None,
        }
    }

    /// Whether the actor may see and use `agent_id`'s calls and devices: admins and owners
    /// any agent's, an agent only their own. Others' are answered 404, as if absent.
    pub fn sees_agent(&self, agent_id: &str) -> bool {
        self.own_agent().is_none_or(|own| own == agent_id)
    }

    /// The signed-in member's agent (whatever their role).
    pub fn member_agent(&self) -> Option<&str> {
        match &self.actor {
            Actor::Member { agent_id, .. } => Some(agent_id),
            Actor::Key { .. } => None,
        }
    }

    pub fn user_id(&self) -> Option<&str> {
        match &self.actor {
            Actor::Member { user_id, .. } => Some(user_id),
            Actor::Key { .. } => None,
        }
    }

    /// An audit entry for an act of this actor on a target.
    pub fn audit(&self, action: &str, target_type: &str, target_id: &str) -> AuditEntry {
        let (actor_type, actor_id) = match &self.actor {
            Actor::Key { key_id, .. } => ("api_key", key_id.clone()),
            Actor::Member { user_id, .. } => ("user", user_id.clone()),
        };
        AuditEntry {
            org_id: Some(self.org_id.clone()),
            action: action.to_owned(),
            actor_type: actor_type.to_owned(),
            actor_id: Some(actor_id),
            target_type: Some(target_type.to_owned()),
            target_id: Some(target_id.to_owned()),
            ip: self.ip.clone(),
            user_agent: self.user_agent.clone(),
            data: serde_json::json!({}),
        }
    }
}

/// Refuses an admin (not an owner) acting on an owner's agent — pairing a phone to it,
/// revoking its phones, or calling through them: admins manage everyone but owners. An
/// admin's key is refused alike (a key has its creator's role). Owners, the organization's
/// own key, and members acting on their own agent pass (agents are held to their own agent
/// by `own_agent` before this).
/// Asks on the request's own connection, so that a request never holds two.
pub async fn may_use_agent(
    conn: &mut sqlx::PgConnection,
    scope: &OrgScope,
    agent_id: &str,
) -> Result<(), Error> {
    if scope.role() != Role::Admin || scope.acting_agent() == Some(agent_id) {
        return Ok(());
    }
    let role = account_store::role_of_agent(conn, &scope.org_id, agent_id).await?;
    if role.as_deref() == Some("owner") {
        return Err(Error::forbidden(
            "role_forbidden",
            "admins may not use or manage an owner's phones",
        ));
    }
    Ok(())
}
