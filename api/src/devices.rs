//! `/v1/devices`: an organization's paired phones, their presence, and revocation.

use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::OpenApi;
use pushdial_core::calls::reachability;
use pushdial_core::ids::{self, Kind};
use pushdial_core::store::devices as device_store;
use pushdial_core::{devices, Ctx, Error};

use crate::auth::SecretKey;
use crate::models::{page, Device, List};
use crate::problems;
use crate::Tags;

pub struct DevicesApi;

problems!(
    /// Errors of device endpoints.
    DeviceError { 400 => BadRequest, 401 => Unauthorized, 403 => Forbidden, 404 => NotFound }
);

async fn one(ctx: &Ctx, org_id: &str, id: &str) -> Result<Device, Error> {
    let id = ids::parse(Kind::Device, "device_id", id)?;
    let mut conn = ctx.db.acquire().await?;
    let row = device_store::get(&mut conn, org_id, &id)
        .await?
        .ok_or(Error::NotFound("device"))?;
    drop(conn);
    let reach = reachability(ctx, std::slice::from_ref(&row)).await;
    Ok(Device::new(row, &reach[0]))
}

#[OpenApi(tag = "Tags::Devices")]
impl DevicesApi {
    /// List devices
    #[oai(path = "/v1/devices", method = "get", operation_id = "list_devices")]
    async fn list(
        &self,
        auth: SecretKey,
        ctx: poem::web::Data<&Ctx>,
        /// Only this agent's devices.
        agent_id: Query<Option<String>>,
        /// 1 to 100, default 20.
        limit: Query<Option<i64>>,
        starting_after: Query<Option<String>>,
        ending_before: Query<Option<String>>,
    ) -> Result<Json<List<Device>>, DeviceError> {
        let page = page(Kind::Device, limit.0, starting_after.0, ending_before.0)?;
        let agent = agent_id
            .0
            .map(|a| ids::parse(Kind::Agent, "agent_id", &a))
            .transpose()?;
        let mut conn = ctx.db.acquire().await?;
        let rows = device_store::page(&mut conn, &auth.0.org_id, agent.as_deref(), &page).await?;
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
        auth: SecretKey,
        ctx: poem::web::Data<&Ctx>,
        device_id: Path<String>,
    ) -> Result<Json<Device>, DeviceError> {
        Ok(Json(one(&ctx, &auth.0.org_id, &device_id.0).await?))
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
        auth: SecretKey,
        ctx: poem::web::Data<&Ctx>,
        device_id: Path<String>,
    ) -> Result<Json<Device>, DeviceError> {
        let id = ids::parse(Kind::Device, "device_id", &device_id.0)?;
        let mut conn = ctx.db.acquire().await?;
        let before = device_store::get(&mut conn, &auth.0.org_id, &id)
            .await?
            .ok_or(Error::NotFound("device"))?;
        drop(conn);
        let was_reachable =
            reachability(&ctx, std::slice::from_ref(&before)).await[0].is_reachable();
        let mut conn = ctx.db.acquire().await?;
        device_store::revoke(&mut conn, &auth.0.org_id, &id).await?;
        drop(conn);
        if let Err(e) = devices::announce_if_changed(&ctx, &auth.0.org_id, &id, was_reachable).await
        {
            tracing::warn!(device_id = %id, error = %e, "reachability event not recorded");
        }
        let close = serde_json::json!({ "type": "device.revoked" });
        if let Err(e) = ctx.presence.send_to_device(&id, None, &close).await {
            tracing::warn!(device_id = %id, error = %e, "could not close the revoked device's socket");
        }
        Ok(Json(one(&ctx, &auth.0.org_id, &id).await?))
    }
}
