//! Authentication. The security schemes resolve a bearer credential to a principal that
//! carries the tenant scope (`org_id`): a handler cannot reach data without one.
//! Secret keys (`pd_sk_…`) open the public API; publishable keys (`pd_pk_…`) are refused
//! there; device tokens (`pd_dev_…`) open the agent API.

use poem::Request;
use poem_openapi::auth::Bearer;
use poem_openapi::SecurityScheme;
use pushdial_core::ratelimit::Limit;
use pushdial_core::store::devices::{self, DeviceRow};
use pushdial_core::store::keys;
use pushdial_core::{limits, secrets, Ctx, Error};

use crate::problem::ApiError;

/// The organization a secret key belongs to.
#[derive(Debug, Clone)]
pub struct OrgScope {
    pub org_id: String,
    pub key_id: String,
}

/// A secret API key: `Authorization: Bearer pd_sk_…`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", rename = "SecretKey", checker = "check_secret_key")]
pub struct SecretKey(pub OrgScope);

/// A device token from pairing: `Authorization: Bearer pd_dev_…`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", rename = "DeviceToken", checker = "check_device_token")]
pub struct DeviceToken(pub DeviceRow);

fn ctx(req: &Request) -> Result<&Ctx, ApiError> {
    req.data::<Ctx>()
        .ok_or_else(|| ApiError(Error::Internal("no context".into())))
}

async fn check_secret_key(req: &Request, bearer: Bearer) -> poem::Result<OrgScope> {
    let ctx = ctx(req)?;
    let invalid = || {
        ApiError(Error::unauthenticated(
            "invalid_api_key",
            "the API key is not valid",
        ))
    };
    if !(bearer.token.starts_with("pd_sk_") || bearer.token.starts_with("pd_pk_")) {
        return Err(invalid().into());
    }
    let mut conn = ctx.db.acquire().await.map_err(|e| ApiError(e.into()))?;
    let key = keys::find_by_hash(&mut conn, &secrets::hash(&bearer.token))
        .await
        .map_err(|e| ApiError(e.into()))?
        .ok_or_else(invalid)?;
    // Not held across the Redis round trips of the rate limits below.
    drop(conn);
    if key.revoked_at.is_some() {
        return Err(ApiError(Error::unauthenticated(
            "api_key_revoked",
            "the API key was revoked",
        ))
        .into());
    }
    if key.kind != "secret" {
        return Err(ApiError(Error::Forbidden {
            code: "secret_key_required",
            message: "a publishable key (pd_pk_…) may only be used by the widget; use a secret key (pd_sk_…)".into(),
        })
        .into());
    }
    // Limits count only requests that authenticated (401/403 consume nothing): per
    // organization (reported in the headers) and per key, each one Redis round trip.
    let rate = key
        .limit_api_per_second
        .and_then(|r| u32::try_from(r).ok())
        .unwrap_or(ctx.config.limit_api_per_second);
    let limit = Limit::per_second(rate);
    if let Some(d) = limits::take(ctx, "org", &key.org_id, limit)
        .await
        .map_err(ApiError)?
    {
        crate::problem::report_rate("org", rate, 1, &d);
    }
    // A key's own limit only matters below the organization's (it could never refuse
    // first otherwise), so it costs a round trip only when configured lower.
    if let Some(per_key) = ctx.config.limit_key_per_second.filter(|k| *k < rate) {
        limits::take(ctx, "key", &key.id, Limit::per_second(per_key))
            .await
            .map_err(ApiError)?;
    }
    Ok(OrgScope {
        org_id: key.org_id,
        key_id: key.id,
    })
}

/// Resolves a device token; shared with the WebSocket handshake.
pub async fn device_from_token(ctx: &Ctx, token: &str) -> Result<DeviceRow, Error> {
    let invalid =
        || Error::unauthenticated("invalid_device_token", "the device token is not valid");
    if !token.starts_with("pd_dev_") {
        return Err(invalid());
    }
    let mut conn = ctx.db.acquire().await?;
    let device = devices::find_by_token(&mut conn, &secrets::hash(token))
        .await?
        .ok_or_else(invalid)?;
    if device.revoked_at.is_some() {
        return Err(Error::unauthenticated(
            "device_revoked",
            "this device was revoked; pair it again",
        ));
    }
    // Any authenticated agent request is a check-in that keeps a push channel fresh.
    devices::touch_seen(&mut conn, &device.org_id, &device.id).await?;
    Ok(device)
}

async fn check_device_token(req: &Request, bearer: Bearer) -> poem::Result<DeviceRow> {
    let ctx = ctx(req)?;
    Ok(device_from_token(ctx, &bearer.token)
        .await
        .map_err(ApiError)?)
}
