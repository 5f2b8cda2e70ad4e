//! `/v1/api_keys` (create, list, roll, revoke, transfer) and `/v1/audit_events` (the
//! organization's security log). Owners and admins only.
//!
//! A key never has more power than its creator: it acts with the role its creator has now,
//! and is revoked when they leave. A key made through a key belongs to that key's creator;
//! an admin may not roll or revoke a key that acts as an owner; an owner may take a key over
//! (`transfer`) so that it outlives its creator's membership.

use chrono::{DateTime, Utc};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use pushdial_core::access::Action;
use pushdial_core::accounts::{self, Role};
use pushdial_core::ids::{self, Kind};
use pushdial_core::store::accounts::{self as account_store, AuditRow};
use pushdial_core::store::keys::{self, KeyRow};
use pushdial_core::{tenants, text, Ctx, Error};

use crate::auth::OrgAuth;
use crate::models::{List, Pagination};
use crate::problems;
use crate::Tags;

pub struct ApiKeysApi;

/// The longest a rolled key may keep working beside its replacement.
const MAX_OVERLAP_S: i64 = 7 * 86_400;

/// An API key. The key itself (`secret`) is only in the answer that created it.
#[derive(Debug, Clone, Object)]
pub struct ApiKey {
    pub id: String,
    /// Always `api_key`.
    pub object: String,
    /// `secret` (`pd_sk_…`, server to server) or `publishable` (`pd_pk_…`, the widget).
    #[oai(rename = "type")]
    pub kind: String,
    pub name: String,
    /// The key's type prefix and last four characters, e.g. `pd_sk_…3f9a`.
    pub redacted: String,
    /// The member who created it, or took it over (none for the organization's own key,
    /// made by `pushdial admin create-org`). The key stops working when they leave.
    pub created_by: Option<String>,
    /// Their role when they did (`owner`, `admin` or `agent`; none for the organization's
    /// own key).
    pub creator_role: Option<String>,
    /// The role the key acts with now: its creator's current role (`owner` for the
    /// organization's own key; none when the creator is no longer a member).
    pub role: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Within a minute.
    pub last_used_at: Option<DateTime<Utc>>,
    /// Set when the key was rolled: it stops working then.
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// The key that replaced this one.
    pub rolled_to: Option<String>,
    /// `active`, `expiring` (rolled, still working), `expired` or `revoked`.
    pub status: String,
    /// The key itself: shown once, in the answer that created it.
    pub secret: Option<String>,
}

impl From<KeyRow> for ApiKey {
    fn from(k: KeyRow) -> Self {
        let now = Utc::now();
        let status = match (k.revoked_at, k.expires_at) {
            (Some(_), _) => "revoked",
            (None, Some(at)) if at <= now => "expired",
            (None, Some(_)) => "expiring",
            (None, None) => "active",
        };
        let prefix = if k.kind == "secret" {
            "pd_sk_"
        } else {
            "pd_pk_"
        };
        ApiKey {
            redacted: format!("{prefix}…{}", k.last4),
            id: k.id,
            object: "api_key".into(),
            kind: k.kind,
            name: k.name,
            created_by: k.created_by,
            creator_role: k.creator_role,
            role: k.role,
            created_at: k.created_at,
            last_used_at: k.last_used_at,
            expires_at: k.expires_at,
            revoked_at: k.revoked_at,
            rolled_to: k.rolled_to,
            status: status.into(),
            secret: None,
        }
    }
}

/// Creates a key.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct CreateApiKey {
    /// What the key is for, 1 to 100 characters.
    pub name: String,
    /// `secret` or `publishable`.
    #[oai(rename = "type")]
    pub kind: String,
}

/// Rolls a key: a new key replaces it, and the old one keeps working for the overlap.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct RollApiKey {
    /// Seconds the old key keeps working, 0 (stops now) to 604800 (7 days). Default 0.
    pub expires_in: Option<i64>,
}

/// An act recorded in the audit log.
#[derive(Debug, Clone, Object)]
pub struct AuditEvent {
    pub id: String,
    /// Always `audit_event`.
    pub object: String,
    /// What happened, like `member.invited`, `api_key.rolled`, `user.signed_in`.
    pub action: String,
    /// `user`, `api_key`, `device`, `system` or `anonymous`.
    pub actor_type: String,
    pub actor_id: Option<String>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// Details of the act (never secrets).
    pub data: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

impl From<AuditRow> for AuditEvent {
    fn from(a: AuditRow) -> Self {
        AuditEvent {
            id: a.id,
            object: "audit_event".into(),
            action: a.action,
            actor_type: a.actor_type,
            actor_id: a.actor_id,
            target_type: a.target_type,
            target_id: a.target_id,
            ip: a.ip,
            user_agent: a.user_agent,
            data: a.data,
            created_at: a.created_at,
        }
    }
}

#[derive(ApiResponse)]
pub enum KeyCreated {
    #[oai(status = 201)]
    Created(Json<ApiKey>),
}

problems!(
    /// Errors of API key endpoints.
    ApiKeyError { 400 => BadRequest, 401 => Unauthorized, 403 => Forbidden, 404 => NotFound, 409 => Conflict, 413 => PayloadTooLarge }
);

/// A widget's key is managed with its widget: rolling or revoking it here would silently
/// break the tag on the tenant's site.
async fn not_a_widget_key(conn: &mut sqlx::PgConnection, key: &KeyRow) -> Result<(), Error> {
    match pushdial_core::store::widgets::using_key(conn, &key.org_id, &key.id).await? {
        Some(widget) => Err(Error::conflict(
            "key_in_use_by_widget",
            format!("this is the key of widget {widget}: delete the widget to retire it"),
        )),
        None => Ok(()),
    }
}

/// A key that acts as an owner is managed by owners only: admins manage everything but
/// owners (and rolling one would hand its replacement to an admin).
fn may_manage_key(auth: &OrgAuth, key: &KeyRow) -> Result<(), Error> {
    if key.role.as_deref() == Some("owner") && auth.role() < Role::Owner {
        return Err(Error::forbidden(
            "role_forbidden",
            "only owners may roll or revoke a key that acts as an owner",
        ));
    }
    Ok(())
}

async fn get_key(conn: &mut sqlx::PgConnection, org_id: &str, id: &str) -> Result<KeyRow, Error> {
    let id = ids::parse(Kind::Key, "api_key_id", id)?;
    keys::get(conn, org_id, &id)
        .await?
        .ok_or(Error::NotFound("api key"))
}

#[OpenApi(tag = "Tags::ApiKeys")]
impl ApiKeysApi {
    /// Create an API key
    ///
    /// The answer carries the key (`secret`) once; only its hash is kept.
    #[oai(
        path = "/v1/api_keys",
        method = "post",
        operation_id = "create_api_key"
    )]
    async fn create(
        &self,
        auth: OrgAuth,
        ctx: poem::web::Data<&Ctx>,
        body: Json<CreateApiKey>,
    ) -> Result<KeyCreated, ApiKeyError> {
        let name = text::required("name", &body.0.name, 100)?;
        let kind = match body.0.kind.as_str() {
            k @ ("secret" | "publishable") => k,
            _ => return Err(Error::invalid("type", "secret or publishable").into()),
        };
        auth.require(Action::ManageApiKeys)?;
        let mut tx = ctx.db.begin().await?;
        let (secret, row) =
            tenants::new_key(&mut tx, &auth.org_id, kind, name, auth.acting_user()).await?;
        let mut entry = auth.audit("api_key.created", "api_key", &row.id);
        entry.data = serde_json::json!({ "type": kind, "name": name });
        accounts::audit(&mut tx, &entry).await?;
        tx.commit().await?;
        let mut out = ApiKey::from(row);
        out.secret = Some(secret);
        Ok(KeyCreated::Created(Json(out)))
    }

    /// List API keys
    #[oai(path = "/v1/api_keys", method = "get", operation_id = "list_api_keys")]
    async fn list(
        &self,
        auth: OrgAuth,
        ctx: poem::web::Data<&Ctx>,
        /// Also list revoked and expired keys.
        include_inactive: Query<Option<bool>>,
        pagination: Pagination,
    ) -> Result<Json<List<ApiKey>>, ApiKeyError> {
        let page = pagination.page(Kind::Key)?;
        auth.require(Action::ManageApiKeys)?;
        let mut conn = ctx.db.acquire().await?;
        let rows = keys::list(
            &mut conn,
            &auth.org_id,
            include_inactive.0.unwrap_or(false),
            &page,
        )
        .await?;
        Ok(Json(List::from(rows)))
    }

    /// Retrieve an API key
    #[oai(
        path = "/v1/api_keys/:api_key_id",
        method = "get",
        operation_id = "get_api_key"
    )]
    async fn get(
        &self,
        auth: OrgAuth,
        ctx: poem::web::Data<&Ctx>,
        api_key_id: Path<String>,
    ) -> Result<Json<ApiKey>, ApiKeyError> {
        auth.require(Action::ManageApiKeys)?;
        let mut conn = ctx.db.acquire().await?;
        Ok(Json(
            get_key(&mut conn, &auth.org_id, &api_key_id.0)
                .await?
                .into(),
        ))
    }

    /// Roll an API key
    ///
    /// Creates its replacement (same type and name; the answer carries the new key once)
    /// and lets the old key work for `expires_in` more seconds, so that deployments can
    /// switch without downtime.
    #[oai(
        path = "/v1/api_keys/:api_key_id/roll",
        method = "post",
        operation_id = "roll_api_key"
    )]
    async fn roll(
        &self,
        auth: OrgAuth,
        ctx: poem::web::Data<&Ctx>,
        api_key_id: Path<String>,
        body: Json<RollApiKey>,
    ) -> Result<KeyCreated, ApiKeyError> {
        let overlap = body.0.expires_in.unwrap_or(0);
        if !(0..=MAX_OVERLAP_S).contains(&overlap) {
            return Err(Error::invalid("expires_in", "0 to 604800 seconds (7 days)").into());
        }
        auth.require(Action::ManageApiKeys)?;
        let mut tx = ctx.db.begin().await?;
        let old = get_key(&mut tx, &auth.org_id, &api_key_id.0).await?;
        // A widget's key is retired with its widget, whoever asks.
        not_a_widget_key(&mut tx, &old).await?;
        may_manage_key(&auth, &old)?;
        // The replacement is the roller's: they hold its secret.
        let (secret, row) = tenants::new_key(
            &mut tx,
            &auth.org_id,
            &old.kind,
            &old.name,
            auth.acting_user(),
        )
        .await?;
        let until = Utc::now() + chrono::Duration::seconds(overlap);
        if !keys::roll(&mut tx, &auth.org_id, &old.id, until, &row.id).await? {
            return Err(Error::conflict(
                "api_key_inactive",
                "this key is revoked, expired or already rolled; roll its replacement or create a new key",
            )
            .into());
        }
        let mut entry = auth.audit("api_key.rolled", "api_key", &old.id);
        entry.data = serde_json::json!({ "replaced_by": row.id, "old_key_expires_at": until });
        accounts::audit(&mut tx, &entry).await?;
        tx.commit().await?;
        // Other processes hear of it from the database; this one knows now.
        ctx.keys.forget(&format!("key:{}", old.id));
        let mut out = ApiKey::from(row);
        out.secret = Some(secret);
        Ok(KeyCreated::Created(Json(out)))
    }

    /// Revoke an API key
    ///
    /// It stops working at once.
    #[oai(
        path = "/v1/api_keys/:api_key_id",
        method = "delete",
        operation_id = "revoke_api_key"
    )]
    async fn revoke(
        &self,
        auth: OrgAuth,
        ctx: poem::web::Data<&Ctx>,
        api_key_id: Path<String>,
    ) -> Result<Json<ApiKey>, ApiKeyError> {
        auth.require(Action::ManageApiKeys)?;
        let mut tx = ctx.db.begin().await?;
        let key = get_key(&mut tx, &auth.org_id, &api_key_id.0).await?;
        // A widget's key is retired with its widget, whoever asks.
        not_a_widget_key(&mut tx, &key).await?;
        may_manage_key(&auth, &key)?;
        if keys::revoke(&mut tx, &auth.org_id, &key.id).await? {
            accounts::audit(&mut tx, &auth.audit("api_key.revoked", "api_key", &key.id)).await?;
        }
        let row = get_key(&mut tx, &auth.org_id, &key.id).await?;
        tx.commit().await?;
        // Other processes hear of it from the database; this one knows now.
        ctx.keys.forget(&format!("key:{}", key.id));
        Ok(Json(row.into()))
    }

    /// Take over an API key
    ///
    /// Makes the calling owner the key's creator (owners only): it then acts with their
    /// role and no longer stops when its former creator leaves the organization. Called
    /// with the organization's own key, the key becomes the organization's own.
    #[oai(
        path = "/v1/api_keys/:api_key_id/transfer",
        method = "post",
        operation_id = "transfer_api_key"
    )]
    async fn transfer(
        &self,
        auth: OrgAuth,
        ctx: poem::web::Data<&Ctx>,
        api_key_id: Path<String>,
    ) -> Result<Json<ApiKey>, ApiKeyError> {
        auth.require(Action::TransferApiKey)?;
        let to = auth.acting_user();
        let mut tx = ctx.db.begin().await?;
        let key = get_key(&mut tx, &auth.org_id, &api_key_id.0).await?;
        let role = to.map(|_| Role::Owner.as_str());
        if !keys::transfer(&mut tx, &auth.org_id, &key.id, to, role).await? {
            return Err(Error::conflict(
                "api_key_inactive",
                "this key is revoked or expired: create a new key instead",
            )
            .into());
        }
        let mut entry = auth.audit("api_key.transferred", "api_key", &key.id);
        entry.data = serde_json::json!({
            "from": key.created_by,
            "from_role": key.role,
            "to": to,
        });
        accounts::audit(&mut tx, &entry).await?;
        let row = get_key(&mut tx, &auth.org_id, &key.id).await?;
        tx.commit().await?;
        // Other processes hear of it from the database; this one knows now.
        ctx.keys.forget(&format!("key:{}", key.id));
        Ok(Json(row.into()))
    }

    /// List audit events
    ///
    /// Security-relevant acts in the organization, newest first: sign-ins, members,
    /// invitations, keys, webhook endpoints, push credentials, devices.
    #[oai(
        path = "/v1/audit_events",
        method = "get",
        operation_id = "list_audit_events",
        tag = "Tags::Members"
    )]
    async fn audit_events(
        &self,
        auth: OrgAuth,
        ctx: poem::web::Data<&Ctx>,
        /// Only this action, like `api_key.created`.
        action: Query<Option<String>>,
        pagination: Pagination,
    ) -> Result<Json<List<AuditEvent>>, ApiKeyError> {
        let page = pagination.page(Kind::AuditEvent)?;
        auth.require(Action::ReadAuditLog)?;
        let mut conn = ctx.db.acquire().await?;
        let rows = account_store::audit_events(&mut conn, &auth.org_id, action.0.as_deref(), &page)
            .await?;
        Ok(Json(List::from(rows)))
    }
}
