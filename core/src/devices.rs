//! Device reachability as tenants see it: `device.reachable` and `device.unreachable`
//! events, emitted when a change (a socket opening or closing, a push channel set, cleared
//! or rejected, a revocation) flips whether a call could reach the device.

use crate::calls::{reachability, Reach};
use crate::ids::{self, Kind};
use crate::store::devices::{self as store, DeviceRow};
use crate::{Ctx, Result};

/// The device as the API and webhooks show it (the `data` of `device.*` events).
pub fn device_json(d: &DeviceRow, reach: &Reach) -> serde_json::Value {
    let last_seen = d.stream_seen_at.max(d.last_seen_at);
    serde_json::json!({
        "id": d.id,
        "object": "device",
        "agent_id": d.agent_id,
        "name": d.name,
        "platform": d.platform,
        "push_channel": d.push_channel,
        "app_version": d.app_version,
        "capabilities": d.capabilities,
        "auto_dial": d.auto_dial,
        "reachable": reach.is_reachable(),
        "presence": reach.presence(),
        "last_seen_at": last_seen.map(|t| t.to_rfc3339()),
        "created_at": d.created_at.to_rfc3339(),
        "revoked_at": d.revoked_at.map(|t| t.to_rfc3339()),
    })
}

/// Whether the device can be reached now.
pub async fn is_reachable(ctx: &Ctx, org_id: &str, device_id: &str) -> Result<bool> {
    let mut conn = ctx.db.acquire().await?;
    let Some(device) = store::get(&mut conn, org_id, device_id).await? else {
        return Ok(false);
    };
    drop(conn);
    Ok(reachability(ctx, std::slice::from_ref(&device)).await[0].is_reachable())
}

/// Emits `device.reachable` or `device.unreachable` if reachability differs from `was`.
pub async fn announce_if_changed(
    ctx: &Ctx,
    org_id: &str,
    device_id: &str,
    was: bool,
) -> Result<()> {
    let mut conn = ctx.db.acquire().await?;
    let Some(device) = store::get(&mut conn, org_id, device_id).await? else {
        return Ok(());
    };
    drop(conn);
    let reach = reachability(ctx, std::slice::from_ref(&device))
        .await
        .remove(0);
    if reach.is_reachable() == was {
        return Ok(());
    }
    let kind = if reach.is_reachable() {
        "device.reachable"
    } else {
        "device.unreachable"
    };
    let mut tx = ctx.db.begin().await?;
    crate::webhooks::record(
        &mut tx,
        &ids::new_id(Kind::Event),
        org_id,
        kind,
        None,
        &device_json(&device, &reach),
    )
    .await?;
    tx.commit().await?;
    ctx.wake_workers().await;
    Ok(())
}
