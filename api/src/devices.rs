//! `/v1/devices`: an organization's paired phones, their presence, and revocation.

use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::OpenApi;
use pushdial_core::calls::reachability;
use pushdial_core::ids::{self, Kind};
use pushdial_core::store::devices as device_store;
use pushdial_core::{devices, Ctx, Error};

use crate::auth::OrgAuth;
use crate::models::{Device, List, Pagination};
use crate::problems;
use crate::Tags;

pub struct DevicesApi;

problems!(
    /// Errors of device endpoints.
    DeviceError { 400 => BadRequest, 401 => Unauthorized, 403 => Forbidden, 404 => NotFound }
);

/// A device the actor may see: an agent sees only their own (others are 404).
async fn one(ctx: &Ctx, auth: &OrgAuth, id: &str) -> Result<Device, Error> {
    let id = ids::parse(Kind::Device, "device_id", id)?;
    let mut conn = ctx.db.acquire().await?;
    let row = device_store::get(&mut conn, &auth.org_id, &id)
        .await?
        .filter(|d| auth.sees_agent(&d.agent_id))
        .ok_or(Error::NotFound("device"))?;
    drop(conn);
    let reach = reachability(ctx, std::slice::from_ref(&row)).await;
    Ok(Device::new(row, &reach[0]))
}

/// After devices were revoked: announces those that were reachable as unreachable, and
/// closes their live sockets.
pub(crate) async fn after_revoke(ctx: &Ctx, org_id: &str, revoked: &[(String, bool)]) {
    for (id, was_reachable) in revoked {
        if let Err(e) = devices::announce_if_changed(ctx, org_id, id, *was_reachable).await {
            tracing::warn!(device_id = %id, error = %e, "reachability event not recorded");
        }
        let close = pushdial_core::protocol::ToPhone::DeviceRevoked;
        if let Err(e) = ctx.presence.send_to_device(id, None, &close).await {
            tracing::warn!(device_id = %id, error = %e, "could not close the revoked device's socket");
        }
    }
}

/// Which of an agent's live devices are reachable now (before revoking them).
pub(crate) async fn agent_devices(
    ctx: &Ctx,
    org_id: &str,
    agent_id: &str,
) -> Result<Vec<(String, bool)>, Error> {
    let mut conn = ctx.db.acquire().await?;
    let rows: Vec<_> = device_store::list(&mut conn, org_id, Some(&[agent_id.to_owned()]))
        .await?
        .into_iter()
        .filter(|d| d.revoked_at.is_none())
        .collect();
    drop(conn);
    let reach = reachability(ctx, &rows).await;
    Ok(rows
        .into_iter()
        .zip(reach.iter())
        .map(|(d, r)| (d.id, r.is_reachable()))
        .collect())
}

#[OpenApi(tag = "Tags::Devices")]
impl DevicesApi {
    /// List devices
    #[oai(path = "/v1/devices", method = "get", operation_id = "list_devices")]
    async fn list(
        &self,
        auth: OrgAuth,
        ctx: poem::web::Data<&Ctx>,
        /// Only this agent's devices.
        agent_id: Query<Option<String>>,
        pagination: Pagination,
    ) -> Result<Json<List<Device>>, DeviceError> {
        let page = pagination.page(Kind::Device)?;
        let mut agent = agent_id
            .0
            .map(|a| ids::parse(Kind::Agent, "agent_id", &a))
            .transpose()?;
        if let Some(own) = auth.own_agent() {
            if agent.as_deref().is_some_and(|a| a != own) {
                return Err(Error::NotFound("agent").into());
            }
            agent = Some(own.to_owned());
        }
        let mut conn = ctx.db.acquire().await?;
        let rows = device_store::page(&mut conn, &auth.org_id, agent.as_deref(), &page).await?;
        drop(conn);
        let reach = reachability(&ctx, &rows.data).await;
        let data = rows
            .data
            .into_iter()
            .zip(reach.iter())
            .map(|(d, r)| Device::new(d, r))
            .collect();
        Ok(Json(List::new(data, rows.has_more)))
    }

    /// Retrieve a device
    #[oai(
        path = "/v1/devices/:device_id",
        method = "get",
        operation_id = "get_device"
    )]
    async fn get(
        &self,
        auth: OrgAuth,
        ctx: poem::web::Data<&Ctx>,
        device_id: Path<String>,
    ) -> Result<Json<Device>, DeviceError> {
        Ok(Json(one(&ctx, &auth, &device_id.0).await?))
    }

    /// Revoke a device
    ///
    /// Its token stops working at once and its live socket is closed.
    #[oai(
        path = "/v1/devices/:device_id",
        method = "delete",
        operation_id = "revoke_device"
    )]
    async fn revoke(
        &self,
        auth: OrgAuth,
        ctx: poem::web::Data<&Ctx>,
        device_id: Path<String>,
    ) -> Result<Json<Device>, DeviceError> {
        let before = one(&ctx, &auth, &device_id.0).await?;
        let mut tx = ctx.db.begin().await?;
        crate::auth::may_use_agent(&mut tx, &auth, &before.agent_id).await?;
        let id = before.id.clone();
        let was_reachable = before.reachable;
        device_store::revoke(&mut tx, &auth.org_id, &id).await?;
        pushdial_core::accounts::audit(&mut tx, &auth.audit("device.revoked", "device", &id))
            .await?;
        tx.commit().await?;
        after_revoke(&ctx, &auth.org_id, &[(id.clone(), was_reachable)]).await;
        Ok(Json(one(&ctx, &auth, &id).await?))
    }
}
