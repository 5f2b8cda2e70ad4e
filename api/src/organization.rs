//! `/v1/organization` and `/v1/blocked_numbers`: the caller's organization and its dialing
//! policy — the countries its calls may reach, the number types it refuses, its blocklist.

use chrono::{DateTime, Utc};
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use pushdial_core::access::Action;
use pushdial_core::ids::{self, Kind};
use pushdial_core::phone::{self, NumberType};
use pushdial_core::store::orgs::{self, BlockedRow, OrgRow};
use pushdial_core::{Ctx, Error};

use crate::auth::OrgAuth;
use crate::models::List;
use crate::problems;
use crate::Tags;

pub struct OrganizationApi;

/// Most entries of one organization's blocklist (each call checks them all).
const MAX_BLOCKED: usize = 10_000;

/// Which numbers the organization's calls may reach.
#[derive(Debug, Clone, Object)]
pub struct DialingPolicy {
    /// ISO 3166 alpha-2 codes of the countries calls may go to.
    pub allowed_countries: Vec<String>,
    /// Number types refused (`premium_rate`, `shared_cost`, `uan`, `personal_number` by
    /// default; also `toll_free`, `voip`, `pager`, `mobile`, `fixed_line`, … ).
    pub blocked_number_types: Vec<String>,
}

/// The organization of the key in use.
#[derive(Debug, Clone, Object)]
pub struct Organization {
    pub id: String,
    /// Always `organization`.
    pub object: String,
    pub name: String,
    /// Home country (ISO 3166 alpha-2).
    pub country: String,
    pub dialing: DialingPolicy,
    pub created_at: DateTime<Utc>,
}

impl From<OrgRow> for Organization {
    fn from(o: OrgRow) -> Self {
        Organization {
            id: o.id,
            object: "organization".into(),
            name: o.name,
            country: o.country,
            dialing: DialingPolicy {
                allowed_countries: o.allowed_countries,
                blocked_number_types: o.blocked_number_types,
            },
            created_at: o.created_at,
        }
    }
}

/// Changes the dialing policy; absent lists stay as they are.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct UpdateDialing {
    pub allowed_countries: Option<Vec<String>>,
    pub blocked_number_types: Option<Vec<String>>,
}

/// Changes the organization.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct UpdateOrganization {
    pub dialing: Option<UpdateDialing>,
}

/// A number or prefix the organization never calls.
#[derive(Debug, Clone, Object)]
pub struct BlockedNumber {
    pub id: String,
    /// Always `blocked_number`.
    pub object: String,
    /// E.164 number or prefix (`+1900` blocks every number starting so).
    pub prefix: String,
    pub created_at: DateTime<Utc>,
}

impl From<BlockedRow> for BlockedNumber {
    fn from(b: BlockedRow) -> Self {
        BlockedNumber {
            id: b.id,
            object: "blocked_number".into(),
            prefix: b.prefix,
            created_at: b.created_at,
        }
    }
}

/// Blocks a number or prefix.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct CreateBlockedNumber {
    /// `+` and 1 to 15 digits.
    pub prefix: String,
}

#[derive(ApiResponse)]
pub enum Blocked {
    #[oai(status = 201)]
    Created(Json<BlockedNumber>),
}

problems!(
    /// Errors of the organization endpoints.
    OrganizationError {
        400 => BadRequest, 401 => Unauthorized, 403 => Forbidden, 404 => NotFound,
        409 => Conflict, 413 => PayloadTooLarge
    }
);

fn check_countries(list: Vec<String>) -> Result<Vec<String>, Error> {
    if list.is_empty() || list.len() > 250 {
        return Err(Error::invalid(
            "dialing.allowed_countries",
            "1 to 250 countries",
        ));
    }
    let mut out: Vec<String> = list.iter().map(|c| c.trim().to_ascii_uppercase()).collect();
    if let Some(bad) = out.iter().find(|c| !phone::is_country(c)) {
        return Err(Error::invalid(
            "dialing.allowed_countries",
            format!("`{bad}` is not an ISO 3166 alpha-2 code"),
        ));
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn check_types(list: Vec<String>) -> Result<Vec<String>, Error> {
    let mut out = list;
    if let Some(bad) = out.iter().find(|t| NumberType::parse(t).is_none()) {
        return Err(Error::invalid(
            "dialing.blocked_number_types",
            format!("unknown number type `{bad}`"),
        ));
    }
    out.sort();
    out.dedup();
    Ok(out)
}

#[OpenApi(tag = "Tags::Organization")]
impl OrganizationApi {
    /// Retrieve the organization
    #[oai(
        path = "/v1/organization",
        method = "get",
        operation_id = "get_organization"
    )]
    async fn get(
        &self,
        auth: OrgAuth,
        ctx: poem::web::Data<&Ctx>,
    ) -> Result<Json<Organization>, OrganizationError> {
        let mut conn = ctx.db.acquire().await?;
        let org = orgs::get(&mut conn, &auth.org_id)
            .await?
            .ok_or(Error::NotFound("organization"))?;
        Ok(Json(org.into()))
    }

    /// Update the dialing policy
    #[oai(
        path = "/v1/organization",
        method = "patch",
        operation_id = "update_organization"
    )]
    async fn update(
        &self,
        auth: OrgAuth,
        ctx: poem::web::Data<&Ctx>,
        body: Json<UpdateOrganization>,
    ) -> Result<Json<Organization>, OrganizationError> {
        auth.require(Action::ManageOrganization)?;
        let dialing = body.0.dialing.unwrap_or(UpdateDialing {
            allowed_countries: None,
            blocked_number_types: None,
        });
        let countries = dialing.allowed_countries.map(check_countries).transpose()?;
        let types = dialing.blocked_number_types.map(check_types).transpose()?;
        let mut conn = ctx.db.begin().await?;
        let org = orgs::update_dialing(
            &mut conn,
            &auth.org_id,
            countries.as_deref(),
            types.as_deref(),
        )
        .await?
        .ok_or(Error::NotFound("organization"))?;
        let mut entry = auth.audit("organization.dialing_updated", "organization", &org.id);
        entry.data = serde_json::json!({
            "allowed_countries": org.allowed_countries,
            "blocked_number_types": org.blocked_number_types,
        });
        pushdial_core::accounts::audit(&mut conn, &entry).await?;
        conn.commit().await?;
        Ok(Json(org.into()))
    }

    /// Block a number or prefix
    #[oai(
        path = "/v1/blocked_numbers",
        method = "post",
        operation_id = "create_blocked_number"
    )]
    async fn block(
        &self,
        auth: OrgAuth,
        ctx: poem::web::Data<&Ctx>,
        body: Json<CreateBlockedNumber>,
    ) -> Result<Blocked, OrganizationError> {
        auth.require(Action::ManageBlockedNumbers)?;
        let prefix: String = body
            .0
            .prefix
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
            .collect();
        let ok = prefix
            .strip_prefix('+')
            .is_some_and(|d| (1..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()));
        if !ok {
            return Err(Error::invalid(
                "prefix",
                "+ and 1 to 15 digits, like +1900 or +14155550123",
            )
            .into());
        }
        let mut conn = ctx.db.begin().await?;
        if orgs::blocked(&mut conn, &auth.org_id).await?.len() >= MAX_BLOCKED {
            let why = format!("a blocklist holds at most {MAX_BLOCKED} numbers and prefixes; use shorter prefixes");
            return Err(Error::conflict("blocklist_full", why).into());
        }
        let row = orgs::block(
            &mut conn,
            &ids::new_id(Kind::BlockedNumber),
            &auth.org_id,
            &prefix,
        )
        .await?
        .ok_or_else(|| {
            Error::conflict("already_blocked", format!("{prefix} is blocked already"))
        })?;
        let mut entry = auth.audit("blocked_number.created", "blocked_number", &row.id);
        entry.data = serde_json::json!({ "prefix": prefix });
        pushdial_core::accounts::audit(&mut conn, &entry).await?;
        conn.commit().await?;
        Ok(Blocked::Created(Json(row.into())))
    }

    /// List blocked numbers and prefixes
    #[oai(
        path = "/v1/blocked_numbers",
        method = "get",
        operation_id = "list_blocked_numbers"
    )]
    async fn blocked(
        &self,
        auth: OrgAuth,
        ctx: poem::web::Data<&Ctx>,
    ) -> Result<Json<List<BlockedNumber>>, OrganizationError> {
        auth.require(Action::ManageBlockedNumbers)?;
        let mut conn = ctx.db.acquire().await?;
        let rows = orgs::blocked(&mut conn, &auth.org_id).await?;
        Ok(Json(List::new(
            rows.into_iter().map(Into::into).collect(),
            false,
        )))
    }

    /// Unblock a number or prefix
    #[oai(
        path = "/v1/blocked_numbers/:blocked_number_id",
        method = "delete",
        operation_id = "delete_blocked_number"
    )]
    async fn unblock(
        &self,
        auth: OrgAuth,
        ctx: poem::web::Data<&Ctx>,
        blocked_number_id: Path<String>,
    ) -> Result<Json<BlockedNumber>, OrganizationError> {
        auth.require(Action::ManageBlockedNumbers)?;
        let id = ids::parse(
            Kind::BlockedNumber,
            "blocked_number_id",
            &blocked_number_id.0,
        )?;
        let mut conn = ctx.db.begin().await?;
        let row = orgs::unblock(&mut conn, &auth.org_id, &id)
            .await?
            .ok_or(Error::NotFound("blocked number"))?;
        let entry = auth.audit("blocked_number.deleted", "blocked_number", &row.id);
        pushdial_core::accounts::audit(&mut conn, &entry).await?;
        conn.commit().await?;
        Ok(Json(row.into()))
    }
}
