//! People: `/v1/me` (the signed-in user), `/v1/organizations` (create one), `/v1/members`
//! (roles, removal, leaving) and `/v1/invitations` (by link or e-mail, accepted by a
//! signed-in user).

use chrono::{DateTime, Utc};
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use pushdial_core::access::Action;
use pushdial_core::accounts::{self, Role};
use pushdial_core::ids::{self, Kind};
use pushdial_core::store::accounts::{self as store, InvitationRow, MemberRow};
use pushdial_core::{Ctx, Error};

use crate::auth::{OrgAuth, SessionCookie};
use crate::models::{List, Pagination};
use crate::problems;
use crate::Tags;

pub struct MembersApi;

/// A sign-in identity of a user (an account at a provider).
#[derive(Debug, Clone, Object)]
pub struct Identity {
    pub id: String,
    /// `oidc`, `google` or `github`.
    pub provider: String,
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// An organization as one of its members sees it.
#[derive(Debug, Clone, Object)]
pub struct Membership {
    /// Always `membership`.
    pub object: String,
    pub organization_id: String,
    pub organization_name: String,
    pub user_id: String,
    pub name: String,
    pub email: Option<String>,
    /// `owner`, `admin` or `agent`.
    pub role: String,
    /// The member's own agent: their calls and devices.
    pub agent_id: String,
    pub created_at: DateTime<Utc>,
}

impl From<MemberRow> for Membership {
    fn from(m: MemberRow) -> Self {
        Membership {
            object: "membership".into(),
            organization_id: m.org_id,
            organization_name: m.org_name,
            user_id: m.user_id,
            name: m.user_name,
            email: m.user_email,
            role: m.role,
            agent_id: m.agent_id,
            created_at: m.created_at,
        }
    }
}

/// The signed-in user.
#[derive(Debug, Clone, Object)]
pub struct Me {
    /// Always `user`.
    pub object: String,
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    pub created_at: DateTime<Utc>,
    pub identities: Vec<Identity>,
    /// The organizations the user belongs to; none yet means: create one, or accept an
    /// invitation.
    pub memberships: Vec<Membership>,
    /// When the current session ends at the latest.
    pub session_expires_at: DateTime<Utc>,
}

/// Creates an organization owned by the signed-in user.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct CreateOrganization {
    /// 1 to 200 characters.
    pub name: String,
    /// ISO 3166 alpha-2: calls may go to this country (more can be allowed later).
    /// Default `US`.
    pub country: Option<String>,
}

/// A member who was removed (or left), with what went with them.
#[derive(Debug, Clone, Object)]
pub struct RemovedMember {
    #[oai(flatten)]
    pub membership: Membership,
    /// Their devices, revoked.
    pub revoked_devices: Vec<String>,
    /// The secret keys they made, revoked: a key never outlives its creator's membership.
    /// (An owner takes one over first to keep it: `POST /v1/api_keys/{id}/transfer`.
    /// Publishable keys stay with their widget.)
    pub revoked_api_keys: Vec<String>,
}

/// Changes a member's role.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct UpdateMember {
    /// `owner`, `admin` or `agent`. Only owners make or unmake owners; an organization
    /// always keeps one.
    pub role: String,
}

/// Invites someone to the organization.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct CreateInvitation {
    /// Where to send the invitation (when the deployment has SMTP); optional.
    pub email: Option<String>,
    /// `owner` (owners only), `admin` or `agent`.
    pub role: String,
}

/// An invitation to join an organization: single use, valid for 7 days.
#[derive(Debug, Clone, Object)]
pub struct Invitation {
    pub id: String,
    /// Always `invitation`.
    pub object: String,
    pub organization_id: String,
    pub email: Option<String>,
    pub role: String,
    pub invited_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub accepted_by: Option<String>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// `pending`, `accepted`, `revoked` or `expired`.
    pub status: String,
    /// The link to give the invitee (only in the creation answer, and only when it was
    /// not sent by e-mail). Shown once.
    pub url: Option<String>,
    /// `email` when the deployment sent it, else `link`.
    pub delivery: Option<String>,
}

impl From<InvitationRow> for Invitation {
    fn from(i: InvitationRow) -> Self {
        let status = if i.accepted_at.is_some() {
            "accepted"
        } else if i.revoked_at.is_some() {
            "revoked"
        } else if i.expires_at <= Utc::now() {
            "expired"
        } else {
            "pending"
        };
        Invitation {
            id: i.id,
            object: "invitation".into(),
            organization_id: i.org_id,
            email: i.email,
            role: i.role,
            invited_by: i.invited_by,
            created_at: i.created_at,
            expires_at: i.expires_at,
            accepted_at: i.accepted_at,
            accepted_by: i.accepted_by,
            revoked_at: i.revoked_at,
            status: status.into(),
            url: None,
            delivery: None,
        }
    }
}

/// Accepts an invitation.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct AcceptInvitation {
    /// The `pd_inv_…` token from the invitation link.
    pub token: String,
}

#[derive(ApiResponse)]
pub enum MembershipCreated {
    #[oai(status = 201)]
    Created(Json<Membership>),
}

#[derive(ApiResponse)]
pub enum InvitationCreated {
    #[oai(status = 201)]
    Created(Json<Invitation>),
}

problems!(
    /// Errors of the signed-in user's endpoints.
    MeError { 400 => BadRequest, 401 => Unauthorized, 403 => Forbidden, 404 => NotFound, 409 => Conflict, 413 => PayloadTooLarge }
);
problems!(
    /// Errors of member and invitation endpoints.
    MemberError { 400 => BadRequest, 401 => Unauthorized, 403 => Forbidden, 404 => NotFound, 409 => Conflict, 413 => PayloadTooLarge }
);

/// Where an invitee goes: the console's join page, with the token in the fragment so that
/// it reaches no server log and no `Referer`.
fn invitation_url(ctx: &Ctx, token: &str) -> String {
    format!("{}/console/join#{token}", ctx.config.public_url())
}

#[OpenApi(tag = "Tags::Members")]
impl MembersApi {
    /// The signed-in user
    ///
    /// With their identities and the organizations they belong to (console sessions only).
    #[oai(path = "/v1/me", method = "get", operation_id = "get_me")]
    async fn me(
        &self,
        auth: SessionCookie,
        ctx: poem::web::Data<&Ctx>,
    ) -> Result<Json<Me>, MeError> {
        let session = &auth.0.session;
        let mut conn = ctx.db.acquire().await?;
        let user = store::get_user(&mut conn, &session.user_id)
            .await?
            .ok_or(Error::NotFound("user"))?;
        let identities = store::identities(&mut conn, &user.id).await?;
        let memberships = store::memberships_of_user(&mut conn, &user.id).await?;
        Ok(Json(Me {
            object: "user".into(),
            id: user.id,
            name: user.name,
            email: user.email,
            created_at: user.created_at,
            identities: identities
                .into_iter()
                .map(|i| Identity {
                    id: i.id,
                    provider: i.provider,
                    issuer: i.issuer,
                    subject: i.subject,
                    email: i.email,
                    created_at: i.created_at,
                })
                .collect(),
            memberships: memberships.into_iter().map(Into::into).collect(),
            session_expires_at: session.expires_at,
        }))
    }

    /// Create an organization
    ///
    /// The signed-in user becomes its owner (console sessions only).
    #[oai(
        path = "/v1/organizations",
        method = "post",
        operation_id = "create_organization",
        tag = "Tags::Organization"
    )]
    async fn create_organization(
        &self,
        auth: SessionCookie,
        ctx: poem::web::Data<&Ctx>,
        body: Json<CreateOrganization>,
    ) -> Result<MembershipCreated, MeError> {
        let b = body.0;
        let country = b.country.unwrap_or_else(|| "US".into());
        let mut tx = ctx.db.begin().await?;
        let member =
            accounts::create_org_for_user(&mut tx, &auth.0.session.user_id, &b.name, &country)
                .await?;
        let mut entry = auth.0.audit(
            Some(&member.org_id),
            "organization.created",
            "organization",
            &member.org_id,
        );
        entry.data = serde_json::json!({ "name": member.org_name });
        accounts::audit(&mut tx, &entry).await?;
        tx.commit().await?;
        Ok(MembershipCreated::Created(Json(member.into())))
    }

    /// List members
    #[oai(path = "/v1/members", method = "get", operation_id = "list_members")]
    async fn list(
        &self,
        auth: OrgAuth,
        ctx: poem::web::Data<&Ctx>,
        pagination: Pagination,
    ) -> Result<Json<List<Membership>>, MemberError> {
        auth.require(Action::ManageMembers)?;
        let page = pagination.page(Kind::User)?;
        let mut conn = ctx.db.acquire().await?;
        let rows = store::members(&mut conn, &auth.org_id, &page).await?;
        Ok(Json(List::from(rows)))
    }

    /// Change a member's role
    #[oai(
        path = "/v1/members/:user_id",
        method = "patch",
        operation_id = "update_member"
    )]
    async fn update(
        &self,
        auth: OrgAuth,
        ctx: poem::web::Data<&Ctx>,
        user_id: Path<String>,
        body: Json<UpdateMember>,
    ) -> Result<Json<Membership>, MemberError> {
        let user_id = ids::parse(Kind::User, "user_id", &user_id.0)?;
        let role = Role::from_field("role", &body.0.role)?;
        auth.require(Action::ManageMembers)?;
        let mut tx = ctx.db.begin().await?;
        let before = store::membership(&mut tx, &auth.org_id, &user_id)
            .await?
            .ok_or(Error::NotFound("member"))?;
        let member =
            accounts::change_role(&mut tx, &auth.org_id, auth.role(), &user_id, role).await?;
        if before.role != member.role {
            let mut entry = auth.audit("member.role_changed", "user", &user_id);
            entry.data = serde_json::json!({ "from": before.role, "to": member.role });
            accounts::audit(&mut tx, &entry).await?;
        }
        tx.commit().await?;
        // Their keys act with their new role: other processes hear of it from the
        // database; this one knows now.
        ctx.keys
            .forget(&format!("member:{}:{}", auth.org_id, user_id));
        Ok(Json(member.into()))
    }

    /// Remove a member, or leave
    ///
    /// A member may always remove themself; owners and admins remove others (admins not
    /// owners). The last owner cannot leave (`409 last_owner`). The member's devices are
    /// revoked, and so are the secret keys they made (`revoked_api_keys`; an owner may take
    /// a key over first to keep it).
    #[oai(
        path = "/v1/members/:user_id",
        method = "delete",
        operation_id = "delete_member"
    )]
    async fn remove(
        &self,
        auth: OrgAuth,
        ctx: poem::web::Data<&Ctx>,
        user_id: Path<String>,
    ) -> Result<Json<RemovedMember>, MemberError> {
        let user_id = ids::parse(Kind::User, "user_id", &user_id.0)?;
        // Others are removed by owners and admins only; asked before anything is looked up,
        // so that an agent learns nothing about who is a member.
        if auth.user_id() != Some(user_id.as_str()) {
            auth.require(Action::ManageMembers)?;
        }
        let mut conn = ctx.db.acquire().await?;
        let agent_id = store::membership(&mut conn, &auth.org_id, &user_id)
            .await?
            .ok_or(Error::NotFound("member"))?
            .agent_id;
        drop(conn);
        let reach = crate::devices::agent_devices(&ctx, &auth.org_id, &agent_id).await?;
        let mut tx = ctx.db.begin().await?;
        let removed =
            accounts::remove_member(&mut tx, &auth.org_id, auth.role(), auth.user_id(), &user_id)
                .await?;
        let (member, devices) = (removed.member, removed.devices);
        let action = if auth.user_id() == Some(user_id.as_str()) {
            "member.left"
        } else {
            "member.removed"
        };
        let mut entry = auth.audit(action, "user", &user_id);
        entry.data = serde_json::json!({
            "role": member.role,
            "revoked_devices": devices,
            "revoked_api_keys": removed.api_keys,
        });
        accounts::audit(&mut tx, &entry).await?;
        // Each key's own log says why it stopped.
        for key_id in &removed.api_keys {
            let mut entry = auth.audit("api_key.revoked", "api_key", key_id);
            entry.data = serde_json::json!({ "reason": "creator_removed", "creator": user_id });
            accounts::audit(&mut tx, &entry).await?;
        }
        tx.commit().await?;
        // Other processes hear of it from the database; this one knows now.
        ctx.keys
            .forget(&format!("member:{}:{}", auth.org_id, user_id));
        let revoked: Vec<(String, bool)> = devices
            .iter()
            .map(|id| {
                let was = reach.iter().any(|(d, r)| d == id && *r);
                (id.clone(), was)
            })
            .collect();
        crate::devices::after_revoke(&ctx, &auth.org_id, &revoked).await;
        Ok(Json(RemovedMember {
            membership: member.into(),
            revoked_devices: devices,
            revoked_api_keys: removed.api_keys,
        }))
    }

    /// Invite someone
    ///
    /// Sends the invitation by e-mail when the deployment has SMTP and an `email` is given;
    /// otherwise the answer carries the link (`url`, shown once) to pass on.
    #[oai(
        path = "/v1/invitations",
        method = "post",
        operation_id = "create_invitation"
    )]
    async fn invite(
        &self,
        auth: OrgAuth,
        ctx: poem::web::Data<&Ctx>,
        body: Json<CreateInvitation>,
    ) -> Result<InvitationCreated, MemberError> {
        let b = body.0;
        let role = Role::from_field("role", &b.role)?;
        auth.require(Action::ManageInvitations)?;
        let mut tx = ctx.db.begin().await?;
        let (token, row) = accounts::invite(
            &mut tx,
            &auth.org_id,
            auth.role(),
            auth.user_id(),
            b.email.as_deref(),
            role,
        )
        .await?;
        let url = invitation_url(&ctx, &token);
        let org = pushdial_core::store::orgs::get(&mut tx, &auth.org_id)
            .await?
            .ok_or(Error::NotFound("organization"))?;
        let emailed = row.email.is_some() && ctx.config.smtp_url.is_some();
        let mut entry = auth.audit("member.invited", "invitation", &row.id);
        entry.data =
            serde_json::json!({ "email": row.email, "role": row.role, "emailed": emailed });
        accounts::audit(&mut tx, &entry).await?;
        tx.commit().await?;
        if let (true, Some(to)) = (emailed, &row.email) {
            // Sent after the commit (no connection held while the mail server answers);
            // an invitation that could not be sent is withdrawn again.
            if let Err(e) =
                pushdial_core::mail::send_invitation(&ctx.config, to, &org.name, role, &url).await
            {
                let mut conn = ctx.db.acquire().await?;
                store::revoke_invitation(&mut conn, &auth.org_id, &row.id).await?;
                return Err(e.into());
            }
        }
        let mut out = Invitation::from(row);
        if emailed {
            out.delivery = Some("email".into());
        } else {
            out.url = Some(url);
            out.delivery = Some("link".into());
        }
        Ok(InvitationCreated::Created(Json(out)))
    }

    /// List invitations
    #[oai(
        path = "/v1/invitations",
        method = "get",
        operation_id = "list_invitations"
    )]
    async fn invitations(
        &self,
        auth: OrgAuth,
        ctx: poem::web::Data<&Ctx>,
        pagination: Pagination,
    ) -> Result<Json<List<Invitation>>, MemberError> {
        auth.require(Action::ManageInvitations)?;
        let page = pagination.page(Kind::Invitation)?;
        let mut conn = ctx.db.acquire().await?;
        let rows = store::invitations(&mut conn, &auth.org_id, &page).await?;
        Ok(Json(List::from(rows)))
    }

    /// Revoke an invitation
    #[oai(
        path = "/v1/invitations/:invitation_id",
        method = "delete",
        operation_id = "revoke_invitation"
    )]
    async fn revoke_invitation(
        &self,
        auth: OrgAuth,
        ctx: poem::web::Data<&Ctx>,
        invitation_id: Path<String>,
    ) -> Result<Json<Invitation>, MemberError> {
        let id = ids::parse(Kind::Invitation, "invitation_id", &invitation_id.0)?;
        auth.require(Action::ManageInvitations)?;
        let mut tx = ctx.db.begin().await?;
        let current = store::get_invitation(&mut tx, &auth.org_id, &id)
            .await?
            .ok_or(Error::NotFound("invitation"))?;
        if current.accepted_at.is_some() {
            return Err(Error::conflict(
                "invitation_used",
                "this invitation was already accepted; remove the member instead",
            )
            .into());
        }
        let row = store::revoke_invitation(&mut tx, &auth.org_id, &id)
            .await?
            .ok_or(Error::NotFound("invitation"))?;
        if current.revoked_at.is_none() {
            accounts::audit(
                &mut tx,
                &auth.audit("invitation.revoked", "invitation", &id),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(Json(row.into()))
    }

    /// Unlink a sign-in
    ///
    /// Removes one of the signed-in user's identities; the last one cannot be removed (`409
    /// last_identity`).
    #[oai(
        path = "/v1/me/identities/:identity_id",
        method = "delete",
        operation_id = "delete_identity"
    )]
    async fn unlink(
        &self,
        auth: SessionCookie,
        ctx: poem::web::Data<&Ctx>,
        identity_id: Path<String>,
    ) -> Result<Json<Identity>, MeError> {
        let id = ids::parse(Kind::Identity, "identity_id", &identity_id.0)?;
        let user_id = &auth.0.session.user_id;
        let mut tx = ctx.db.begin().await?;
        let (removed, row) = store::delete_identity(&mut tx, user_id, &id)
            .await?
            .ok_or(Error::NotFound("identity"))?;
        if !removed {
            return Err(Error::conflict(
                "last_identity",
                "this is your only way to sign in: link another before removing it",
            )
            .into());
        }
        for m in store::memberships_of_user(&mut tx, user_id).await? {
            let mut entry =
                auth.0
                    .audit(Some(&m.org_id), "user.identity_unlinked", "user", user_id);
            entry.data = serde_json::json!({ "provider": row.provider, "issuer": row.issuer, "subject": row.subject });
            accounts::audit(&mut tx, &entry).await?;
        }
        tx.commit().await?;
        Ok(Json(Identity {
            id: row.id,
            provider: row.provider,
            issuer: row.issuer,
            subject: row.subject,
            email: row.email,
            created_at: row.created_at,
        }))
    }

    /// Accept an invitation
    ///
    /// The signed-in user joins the organization with the invitation's role (console
    /// sessions only).
    #[oai(
        path = "/v1/invitations/accept",
        method = "post",
        operation_id = "accept_invitation"
    )]
    async fn accept(
        &self,
        auth: SessionCookie,
        ctx: poem::web::Data<&Ctx>,
        body: Json<AcceptInvitation>,
    ) -> Result<MembershipCreated, MeError> {
        let user_id = &auth.0.session.user_id;
        let mut tx = ctx.db.begin().await?;
        let (invitation, member) =
            accounts::accept_invitation(&mut tx, body.0.token.trim(), user_id).await?;
        let mut entry = auth
            .0
            .audit(Some(&invitation.org_id), "member.joined", "user", user_id);
        entry.data = serde_json::json!({ "invitation_id": invitation.id, "role": member.role });
        accounts::audit(&mut tx, &entry).await?;
        tx.commit().await?;
        Ok(MembershipCreated::Created(Json(member.into())))
    }
}
