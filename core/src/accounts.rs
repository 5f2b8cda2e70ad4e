//! Users and their organizations: first sign-in, linking identities, organizations created
//! by a user, members and roles (with the owner rules), invitations, and the audit log.

use chrono::{Duration, Utc};
use sqlx::PgConnection;

use crate::ids::{self, Kind};
pub use crate::roles::Role;
use crate::store::accounts::{self as store, AuditEntry, InvitationRow, MemberRow};
use crate::{secrets, tenants, Error, Result};

/// An identity a provider vouched for.
#[derive(Debug, Clone)]
pub struct VerifiedIdentity {
    pub provider: String,
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    pub name: Option<String>,
}

/// The user behind an identity: found, linked to `link_user_id`, or created on first
/// sign-in. Returns the user id and whether the user is new.
pub async fn user_for_identity(
    conn: &mut PgConnection,
    identity: &VerifiedIdentity,
    link_user_id: Option<&str>,
) -> Result<(String, bool)> {
    let email = identity.email.as_deref();
    if let Some(user_id) =
        store::use_identity(conn, &identity.issuer, &identity.subject, email).await?
    {
        if let Some(link) = link_user_id {
            if link != user_id {
                return Err(Error::conflict(
                    "identity_in_use",
                    "this sign-in already belongs to another user",
                ));
            }
        }
        return Ok((user_id, false));
    }
    if let Some(link) = link_user_id {
        if !store::insert_identity(
            conn,
            &identity.issuer,
            &identity.subject,
            link,
            &identity.provider,
            email,
        )
        .await?
        {
            return Err(Error::conflict(
                "identity_in_use",
                "this sign-in already belongs to another user",
            ));
        }
        return Ok((link.to_owned(), false));
    }
    let name = identity
        .name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .or_else(|| email.and_then(|e| e.split('@').next()).map(str::to_owned))
        .unwrap_or_else(|| "New user".to_owned());
    let name: String = name.trim().chars().take(200).collect();
    let user_id = ids::new_id(Kind::User);
    store::insert_user(conn, &user_id, &name, email).await?;
    if !store::insert_identity(
        conn,
        &identity.issuer,
        &identity.subject,
        &user_id,
        &identity.provider,
        email,
    )
    .await?
    {
        // Signed in twice at once: the other sign-in created the user; this one is undone
        // by the caller's rollback.
        return Err(Error::conflict(
            "sign_in_in_progress",
            "another sign-in of this identity is in progress; try again",
        ));
    }
    Ok((user_id, true))
}

/// Makes `user_id` a member with `role`, bound to their agent row in the organization
/// (reused when they were a member before, so their call history stays theirs).
pub async fn join(
    conn: &mut PgConnection,
    org_id: &str,
    user_id: &str,
    role: Role,
) -> Result<MemberRow> {
    let user = store::get_user(conn, user_id)
        .await?
        .ok_or(Error::NotFound("user"))?;
    let agent_id = match store::reclaim_agent_of_user(conn, org_id, user_id).await? {
        Some(id) => id,
        None => {
            let id = ids::new_id(Kind::Agent);
            store::insert_member_agent(
                conn,
                &id,
                org_id,
                user_id,
                &user.name,
                user.email.as_deref(),
            )
            .await?;
            id
        }
    };
    if !store::insert_membership(conn, org_id, user_id, role.as_str(), &agent_id).await? {
        return Err(Error::conflict(
            "already_member",
            "the user is already a member of this organization",
        ));
    }
    store::membership(conn, org_id, user_id)
        .await?
        .ok_or_else(|| Error::Internal("membership vanished".into()))
}

/// Creates an organization for a signed-in user, who becomes its owner.
pub async fn create_org_for_user(
    conn: &mut PgConnection,
    user_id: &str,
    name: &str,
    country: &str,
) -> Result<MemberRow> {
    let (name, country) = tenants::check_org(name, country)?;
    let org_id = tenants::insert_org(conn, &name, &country).await?;
    join(conn, &org_id, user_id, Role::Owner).await
}

/// Whether `actor` may change a member whose role is `target_current` (absent for a new
/// member) to `target_new` (absent for a removal).
pub fn may_manage(
    actor: Role,
    target_current: Option<Role>,
    target_new: Option<Role>,
) -> Result<()> {
    let touches_owner = target_current == Some(Role::Owner) || target_new == Some(Role::Owner);
    if actor < Role::Admin {
        return Err(Error::forbidden(
            "role_forbidden",
            "only owners and admins may manage members",
        ));
    }
    if touches_owner && actor != Role::Owner {
        return Err(Error::forbidden(
            "role_forbidden",
            "only owners may make or change owners",
        ));
    }
    Ok(())
}

/// Changes a member's role. Keeps at least one owner.
pub async fn change_role(
    conn: &mut PgConnection,
    org_id: &str,
    actor: Role,
    user_id: &str,
    role: Role,
) -> Result<MemberRow> {
    let owners = store::lock_owners(conn, org_id).await?;
    let member = store::membership(conn, org_id, user_id)
        .await?
        .ok_or(Error::NotFound("member"))?;
    let current = Role::parse(&member.role);
    may_manage(actor, current, Some(role))?;
    if current == Some(Role::Owner) && role != Role::Owner && owners <= 1 {
        return Err(Error::conflict(
            "last_owner",
            "an organization needs at least one owner: make someone else owner first",
        ));
    }
    store::set_role(conn, org_id, user_id, role.as_str()).await?;
    store::membership(conn, org_id, user_id)
        .await?
        .ok_or(Error::NotFound("member"))
}

/// What removing a member undid.
#[derive(Debug, Clone)]
pub struct Removed {
    pub member: MemberRow,
    /// Their devices, revoked: they stop taking the organization's calls.
    pub devices: Vec<String>,
    /// The secret keys they made, revoked: a key never outlives its creator's membership
    /// (an owner hands one over first to keep it; publishable keys stay with their widget).
    pub api_keys: Vec<String>,
}

/// Removes a member (or lets one leave, when `actor_user` is the member). Keeps at least one
/// owner, revokes the member's devices so that they stop taking the organization's calls
/// (and deletes their unused pairing codes), and revokes the secret keys they made.
pub async fn remove_member(
    conn: &mut PgConnection,
    org_id: &str,
    actor: Role,
    actor_user: Option<&str>,
    user_id: &str,
) -> Result<Removed> {
    let owners = store::lock_owners(conn, org_id).await?;
    let member = store::membership(conn, org_id, user_id)
        .await?
        .ok_or(Error::NotFound("member"))?;
    let current = Role::parse(&member.role);
    if actor_user != Some(user_id) {
        may_manage(actor, current, None)?;
    }
    if current == Some(Role::Owner) && owners <= 1 {
        return Err(Error::conflict(
            "last_owner",
            "the last owner cannot leave: make someone else owner first",
        ));
    }
    store::delete_membership(conn, org_id, user_id).await?;
    let devices = store::revoke_agent_devices(conn, org_id, &member.agent_id).await?;
    store::delete_pairing_codes(conn, org_id, &member.agent_id).await?;
    let api_keys = crate::store::keys::revoke_created_by(conn, org_id, user_id).await?;
    Ok(Removed {
        member,
        devices,
        api_keys,
    })
}

/// How long an invitation stays valid.
pub const INVITATION_TTL_DAYS: i64 = 7;

/// Creates an invitation; returns its token (shown once, or sent by e-mail) and its row.
pub async fn invite(
    conn: &mut PgConnection,
    org_id: &str,
    actor: Role,
    invited_by: Option<&str>,
    email: Option<&str>,
    role: Role,
) -> Result<(String, InvitationRow)> {
    may_manage(actor, None, Some(role))?;
    let email = match email.map(str::trim).filter(|e| !e.is_empty()) {
        Some(e) if e.len() <= 254 && e.contains('@') && !e.contains(char::is_whitespace) => {
            Some(e.to_owned())
        }
        Some(_) => return Err(Error::invalid("email", "an e-mail address")),
        None => None,
    };
    let token = secrets::new_token("pd_inv_");
    let row = store::insert_invitation(
        conn,
        &ids::new_id(Kind::Invitation),
        org_id,
        email.as_deref(),
        role.as_str(),
        &secrets::hash(&token),
        invited_by,
        Utc::now() + Duration::days(INVITATION_TTL_DAYS),
    )
    .await?;
    Ok((token, row))
}

/// Accepts an invitation for `user_id`: single use, unexpired, unrevoked.
pub async fn accept_invitation(
    conn: &mut PgConnection,
    token: &str,
    user_id: &str,
) -> Result<(InvitationRow, MemberRow)> {
    let not_found = || Error::NotFound("invitation");
    if !token.starts_with("pd_inv_") || token.len() > 128 {
        return Err(not_found());
    }
    let invitation = store::invitation_by_token(conn, &secrets::hash(token))
        .await?
        .ok_or_else(not_found)?;
    if invitation.revoked_at.is_some() {
        return Err(Error::conflict(
            "invitation_revoked",
            "this invitation was withdrawn",
        ));
    }
    if invitation.accepted_at.is_some() {
        return Err(Error::conflict(
            "invitation_used",
            "this invitation was already accepted",
        ));
    }
    if invitation.expires_at <= Utc::now() {
        return Err(Error::conflict(
            "invitation_expired",
            "this invitation has expired; ask for a new one",
        ));
    }
    let role = Role::parse(&invitation.role).unwrap_or(Role::Agent);
    let member = join(conn, &invitation.org_id, user_id, role).await?;
    store::accept_invitation(conn, &invitation.id, user_id).await?;
    Ok((invitation, member))
}

/// Writes an audit entry (in the caller's transaction, so an act and its record commit
/// together).
pub async fn audit(conn: &mut PgConnection, entry: &AuditEntry) -> Result<()> {
    store::insert_audit(conn, &ids::new_id(Kind::AuditEvent), entry).await?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_owners_touch_owners() {
        assert!(may_manage(Role::Owner, Some(Role::Owner), Some(Role::Admin)).is_ok());
        assert!(may_manage(Role::Admin, Some(Role::Agent), Some(Role::Admin)).is_ok());
        assert!(may_manage(Role::Admin, Some(Role::Owner), Some(Role::Admin)).is_err());
        assert!(may_manage(Role::Admin, Some(Role::Agent), Some(Role::Owner)).is_err());
        assert!(may_manage(Role::Agent, Some(Role::Agent), None).is_err());
    }
}
