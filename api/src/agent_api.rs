//! `/agent/v1`: what a phone agent app calls — pairing, its push channel, heartbeats, the
//! ack that returns the call's details in one round trip, and status reports.

use chrono::{DateTime, Utc};
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{ApiResponse, Object, OpenApi};
use pushdial_core::calls::{self, reachability, Change};
use pushdial_core::ids::{self, Kind};
use pushdial_core::store::devices::{self as device_store, DeviceUpdate, NewDevice};
use pushdial_core::store::pairing;
use pushdial_core::{devices, limits, secrets, text, Ctx, Error};

use crate::auth::DeviceToken;
use crate::limits::retry_later;
use crate::models::{Call, Device};
use crate::problems;
use crate::Tags;

pub struct AgentApi;

/// Pairs a device with a pairing code from `POST /v1/pairing_codes`: the short `code` a
/// person types, or the `token` its QR code or link carries. Exactly one of the two.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct PairRequest {
    /// The typed code, like `K7Q2-9XMD` (case, spaces and the dash do not matter).
    pub code: Option<String>,
    /// The `pairing_token` (`pd_pair_…`) of the QR code or link.
    pub token: Option<String>,
    /// A name for the device, 1 to 100 characters.
    pub name: String,
    /// `android`, `ios`, `web` or `cli`.
    pub platform: String,
}

/// The device's identity and its token (shown once).
#[derive(Debug, Object)]
pub struct PairResponse {
    /// Always `device_token`.
    pub object: String,
    /// The device id.
    pub id: String,
    pub agent_id: String,
    /// `pd_dev_…`: send as `Authorization: Bearer` on every agent request.
    pub token: String,
}

/// How the server wakes the device when it holds no live socket.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct PushRegistration {
    /// `fcm`, `apns`, `webpush` (or `loopback`, for local development).
    pub provider: String,
    /// The registration token (FCM), the device token in hex (APNs), or the subscription
    /// `{endpoint, keys: {p256dh, auth}}` as an object or its JSON text (Web Push).
    pub token: serde_json::Value,
}

/// What an agent needs to register for push.
#[derive(Debug, Object)]
pub struct PushConfig {
    /// VAPID public key (base64url) for `PushManager.subscribe({applicationServerKey})`.
    pub webpush_public_key: Option<String>,
}

/// What a device tells the server about itself.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct UpdateDevice {
    /// The push channel; `null` removes it.
    pub push: MaybeUndefined<PushRegistration>,
    /// Deprecated form of `push.provider`.
    #[oai(deprecated)]
    pub push_channel: MaybeUndefined<String>,
    /// Deprecated form of `push.token`.
    #[oai(deprecated)]
    pub push_token: MaybeUndefined<String>,
    pub app_version: Option<String>,
    pub capabilities: Option<Vec<String>>,
    /// The device dials without asking its user.
    pub auto_dial: Option<bool>,
}

/// Answer to a heartbeat.
#[derive(Debug, Object)]
pub struct HeartbeatResponse {
    pub device_id: String,
    pub server_time: DateTime<Utc>,
}

/// Everything the phone needs to place the call.
#[derive(Debug, Object)]
pub struct AckResponse {
    pub call_id: String,
    /// The number to dial, E.164.
    pub to: String,
    /// `prompt`: ask the user first; `auto`: dial at once; `required`: ask the user first,
    /// even on a phone set to dial by itself (a widget's visitor gave the number).
    pub confirm: String,
    /// Never dial after this instant.
    pub expires_at: DateTime<Utc>,
    pub status: String,
}

/// A status report of the phone.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct ReportRequest {
    /// accepted, declined, dialing, connected, completed or failed.
    pub status: String,
    /// Length of a completed call in seconds.
    pub duration_s: Option<i32>,
    /// For `failed`: `dial_failed` (default) or `expired`.
    pub reason: Option<String>,
    /// `false` when the app inferred the state rather than observed it (default true).
    pub observed: Option<bool>,
}

#[derive(ApiResponse)]
pub enum Paired {
    #[oai(status = 201)]
    Created(Json<PairResponse>),
}

problems!(
    /// Errors of pairing.
    PairError { 400 => BadRequest, 404 => NotFound, 413 => PayloadTooLarge }
);
problems!(
    /// Errors of device self-service.
    DeviceSelfError { 400 => BadRequest, 401 => Unauthorized, 404 => NotFound, 413 => PayloadTooLarge }
);
problems!(
    /// Errors of a device's update of itself.
    UpdateDeviceError { 400 => BadRequest, 401 => Unauthorized, 404 => NotFound, 413 => PayloadTooLarge, 422 => UnprocessableEntity }
);
problems!(
    /// Errors of acks and reports.
    AgentCallError { 400 => BadRequest, 401 => Unauthorized, 404 => NotFound, 409 => Conflict, 413 => PayloadTooLarge }
);

/// What a pairing request presents.
enum Secret {
    /// The typed code, normalised.
    Code(String),
    /// The QR code's token.
    Token(String),
}

const PLATFORMS: [&str; 4] = ["android", "ios", "web", "cli"];
const PUSH_CHANNELS: [&str; 4] = ["fcm", "apns", "webpush", "loopback"];

#[OpenApi(tag = "Tags::AgentApi")]
impl AgentApi {
    /// Pair a device
    ///
    /// Exchanges a pairing code (`code`, typed) or its QR code's token (`token`) for the
    /// device's id and token. Either works once, and spends the other. Pairing is limited
    /// per client (an IPv6 /48, an IPv4 address), and failed typed codes across the
    /// deployment: past that budget typed codes are refused for a while (`429`, with
    /// `Retry-After`) while tokens still pair. While the limits cannot be checked (Redis
    /// down) pairing answers `503 limits_unavailable` with `Retry-After`.
    #[oai(path = "/agent/v1/pair", method = "post", operation_id = "agent_pair")]
    async fn pair(
        &self,
        req: &poem::Request,
        ctx: poem::web::Data<&Ctx>,
        body: Json<PairRequest>,
    ) -> Result<Paired, PairError> {
        // Every attempt counts against the client's network: a /48 for IPv6, so that an
        // attacker's many /64s share one budget. Fails closed without Redis.
        let per_client = limits::per_minute(ctx.config.limit_pairing_per_ip_per_minute);
        let client = req
            .extensions()
            .get::<crate::request::ClientIp>()
            .map(|c| limits::ip_key_48(c.0).to_string())
            .unwrap_or_default();
        retry_later(limits::take_fail_closed(&ctx, "pairing", &client, per_client).await)?;
        let b = body.0;
        let name = text::required("name", &b.name, 100)?;
        if !PLATFORMS.contains(&b.platform.as_str()) {
            return Err(Error::invalid("platform", "one of android, ios, web, cli").into());
        }
        let secret = match (b.code.as_deref(), b.token.as_deref()) {
            (Some(code), None) => {
                Secret::Code(secrets::normalize_pairing_code(code).ok_or(Error::Invalid {
                    code: "invalid_pairing_code",
                    message:
                        "code: not a pairing code (8 letters and digits, like K7Q2-9XMD)".into(),
                    errors: vec![pushdial_core::FieldError::new("code", "not a pairing code")],
                })?)
            }
            (None, Some(token))
                if secrets::is_pairing_token(&token.trim().to_ascii_lowercase()) =>
            {
                Secret::Token(token.trim().to_ascii_lowercase())
            }
            (None, Some(_)) => {
                return Err(Error::Invalid {
                    code: "invalid_pairing_code",
                    message: "token: not a pairing token (pd_pair_…)".into(),
                    errors: vec![pushdial_core::FieldError::new(
                        "token",
                        "not a pairing token",
                    )],
                }
                .into())
            }
            _ => return Err(Error::invalid("code", "give `code` or `token`, one of them").into()),
        };
        let mut tx = ctx.db.begin().await?;
        let found = match &secret {
            Secret::Code(code) => {
                // A typed code is a short secret: refused outright while typed codes are
                // locked (the deployment's budget of failed codes is spent), however many
                // addresses ask.
                retry_later(limits::typed_pairing_open(&ctx).await)?;
                pairing::consume(&mut tx, &secrets::hash(code)).await?
            }
            Secret::Token(token) => pairing::consume_token(&mut tx, &secrets::hash(token)).await?,
        };
        let Some((org_id, agent_id)) = found else {
            drop(tx);
            if matches!(secret, Secret::Code(_)) {
                // Counted after the fact; a lock it causes applies from the next attempt.
                if let Err(e @ Error::Unavailable { .. }) = limits::typed_pairing_failed(&ctx).await
                {
                    retry_later::<()>(Err(e))?;
                }
            }
            return Err(
                Error::NotFound("pairing code (it may have expired or been used already)").into(),
            );
        };
        let id = ids::new_id(Kind::Device);
        let token = secrets::new_token("pd_dev_");
        device_store::insert(
            &mut tx,
            NewDevice {
                id: &id,
                org_id: &org_id,
                agent_id: &agent_id,
                name,
                platform: &b.platform,
                token_hash: &secrets::hash(&token),
            },
        )
        .await?;
        let (ip, user_agent) = crate::auth::client_of(req);
        let entry = pushdial_core::store::accounts::AuditEntry {
            org_id: Some(org_id.clone()),
            action: "device.paired".into(),
            actor_type: "device".into(),
            actor_id: Some(id.clone()),
            target_type: Some("agent".into()),
            target_id: Some(agent_id.clone()),
            ip,
            user_agent,
            data: serde_json::json!({ "name": name, "platform": b.platform }),
        };
        pushdial_core::accounts::audit(&mut tx, &entry).await?;
        tx.commit().await?;
        tracing::info!(device_id = %id, org_id = %org_id, "device paired");
        Ok(Paired::Created(Json(PairResponse {
            object: "device_token".into(),
            id,
            agent_id,
            token,
        })))
    }

    /// Update this device
    #[oai(
        path = "/agent/v1/device",
        method = "put",
        operation_id = "agent_update_device"
    )]
    async fn update(
        &self,
        auth: DeviceToken,
        ctx: poem::web::Data<&Ctx>,
        body: Json<UpdateDevice>,
    ) -> Result<Json<Device>, UpdateDeviceError> {
        let mut b = body.0;
        match std::mem::take(&mut b.push) {
            MaybeUndefined::Undefined => {}
            _ if !b.push_channel.is_undefined() || !b.push_token.is_undefined() => {
                let why =
                    "give `push`, or the deprecated `push_channel` and `push_token`, not both";
                return Err(Error::invalid("push", why).into());
            }
            MaybeUndefined::Null => b.push_channel = MaybeUndefined::Null,
            MaybeUndefined::Value(p) => {
                let token = match p.token {
                    serde_json::Value::String(t) => t,
                    v @ serde_json::Value::Object(_) if p.provider == "webpush" => v.to_string(),
                    _ => return Err(Error::invalid("push.token", "a string").into()),
                };
                b.push_channel = MaybeUndefined::Value(p.provider);
                b.push_token = MaybeUndefined::Value(token);
            }
        }
        let token = match b.push_token {
            MaybeUndefined::Value(t) => Some(text::required("push_token", &t, 4096)?.to_owned()),
            _ => None,
        };
        let push = match b.push_channel {
            MaybeUndefined::Undefined => {
                if token.is_some() {
                    return Err(Error::invalid("push_channel", "required with push_token").into());
                }
                None
            }
            // `null` removes the push channel (and its token).
            MaybeUndefined::Null => Some((None, None)),
            MaybeUndefined::Value(channel) => {
                if !PUSH_CHANNELS.contains(&channel.as_str()) {
                    let why = "one of fcm, apns, webpush, loopback, or null";
                    return Err(Error::invalid("push_channel", why).into());
                }
                match token {
                    Some(t) => {
                        check_push_token(&ctx, &channel, &t)?;
                        Some((Some(channel), Some(t)))
                    }
                    None => {
                        return Err(
                            Error::invalid("push_token", "required with push_channel").into()
                        )
                    }
                }
            }
        };
        if let Some(caps) = &b.capabilities {
            if caps.len() > 32 {
                return Err(Error::invalid("capabilities", "at most 32").into());
            }
            for c in caps {
                text::required("capabilities", c, 64)?;
            }
        }
        let app_version =
            text::optional("app_version", b.app_version.as_deref(), 64)?.map(str::to_owned);
        let update = DeviceUpdate {
            push,
            app_version,
            capabilities: b.capabilities,
            auto_dial: b.auto_dial,
        };
        let was_reachable =
            reachability(&ctx, std::slice::from_ref(&auth.0)).await[0].is_reachable();
        let mut conn = ctx.db.acquire().await?;
        device_store::update(&mut conn, &auth.0.org_id, &auth.0.id, &update).await?;
        let row = device_store::get(&mut conn, &auth.0.org_id, &auth.0.id)
            .await?
            .ok_or(Error::NotFound("device"))?;
        drop(conn);
        if let Err(e) =
            devices::announce_if_changed(&ctx, &row.org_id, &row.id, was_reachable).await
        {
            tracing::warn!(device_id = %row.id, error = %e, "reachability event not recorded");
        }
        let reach = reachability(&ctx, std::slice::from_ref(&row)).await;
        Ok(Json(Device::new(row, &reach[0])))
    }

    /// Heartbeat
    ///
    /// Keeps a device with a push channel fresh; devices with a live socket send heartbeats
    /// on the socket instead.
    #[oai(
        path = "/agent/v1/heartbeat",
        method = "post",
        operation_id = "agent_heartbeat"
    )]
    async fn heartbeat(
        &self,
        auth: DeviceToken,
    ) -> Result<Json<HeartbeatResponse>, DeviceSelfError> {
        // The security checker already recorded the check-in.
        Ok(Json(HeartbeatResponse {
            device_id: auth.0.id,
            server_time: Utc::now(),
        }))
    }

    /// Push configuration
    ///
    /// What the agent needs to register a push channel: the VAPID public key a browser
    /// subscribes with (`applicationServerKey`) — the organization's own when it brought
    /// one, else the deployment's; `null` when Web Push is not configured.
    #[oai(
        path = "/agent/v1/push_config",
        method = "get",
        operation_id = "agent_push_config"
    )]
    async fn push_config(
        &self,
        auth: DeviceToken,
        ctx: poem::web::Data<&Ctx>,
    ) -> Result<Json<PushConfig>, DeviceSelfError> {
        let mut conn = ctx.db.acquire().await?;
        let own = pushdial_core::store::push_credentials::get(&mut conn, &auth.0.org_id, "webpush")
            .await?
            .and_then(|c| c.metadata["public_key"].as_str().map(str::to_owned));
        let platform = || {
            let private = ctx.config.vapid_private_key.as_deref()?;
            pushdial_core::push::webpush::VapidKey::new(private, &ctx.config.vapid_subject())
                .ok()
                .map(|k| k.public_key().to_owned())
        };
        Ok(Json(PushConfig {
            webpush_public_key: own.or_else(platform),
        }))
    }

    /// Acknowledge an offer
    ///
    /// Moves the call to `delivered` and returns what the phone needs to dial. After the
    /// call's `expires_at` the answer is `409 call_expired`, never the number.
    #[oai(
        path = "/agent/v1/calls/:call_id/ack",
        method = "post",
        operation_id = "agent_ack"
    )]
    async fn ack(
        &self,
        auth: DeviceToken,
        ctx: poem::web::Data<&Ctx>,
        call_id: Path<String>,
    ) -> Result<Json<AckResponse>, AgentCallError> {
        let id = ids::parse(Kind::Call, "call_id", &call_id.0)?;
        let mut tx = ctx.db.begin().await?;
        let outcome = calls::ack(&mut tx, &auth.0, &id).await?;
        tx.commit().await?;
        let call = outcome?;
        let confirm = call.confirm.for_device(auth.0.auto_dial).to_string();
        Ok(Json(AckResponse {
            call_id: call.id,
            to: call.to_number,
            confirm,
            expires_at: call.expires_at,
            status: call.status.to_string(),
        }))
    }

    /// Report a call's status
    ///
    /// Repeating the current status is harmless; states skipped on the way are recorded as
    /// inferred; anything after the call ended is refused with 409.
    #[oai(
        path = "/agent/v1/calls/:call_id/events",
        method = "post",
        operation_id = "agent_report"
    )]
    async fn report(
        &self,
        auth: DeviceToken,
        ctx: poem::web::Data<&Ctx>,
        call_id: Path<String>,
        body: Json<ReportRequest>,
    ) -> Result<Json<Call>, AgentCallError> {
        let id = ids::parse(Kind::Call, "call_id", &call_id.0)?;
        let b = body.0;
        let status = calls::parse_reported_status(&b.status)?;
        use pushdial_core::lifecycle::CallStatus;
        let reason = match (status, b.reason.as_deref()) {
            (CallStatus::Failed, None | Some("dial_failed")) => Some("dial_failed"),
            // The phone found the call expired between reporting `dialing` and dialing.
            (CallStatus::Failed, Some("expired")) => Some("expired"),
            (_, None) => None,
            _ => {
                let why = "`dial_failed` or `expired`, with status `failed`";
                return Err(Error::invalid("reason", why).into());
            }
        };
        let duration_s = match (status, b.duration_s) {
            (_, None) => None,
            (CallStatus::Completed, Some(d)) if (0..=86_400).contains(&d) => Some(d),
            _ => {
                return Err(
                    Error::invalid("duration_s", "0 to 86400, with status `completed`").into(),
                )
            }
        };
        let change = Change {
            status,
            observed: b.observed.unwrap_or(true),
            reason,
            duration_s,
            device_id: None,
        };
        let mut tx = ctx.db.begin().await?;
        let result = calls::report(&mut tx, &auth.0, &id, change).await?;
        tx.commit().await?;
        Ok(Json(result?.into()))
    }
}

/// Refuses a token that can never work with its provider, so a typo shows at registration
/// rather than as a failed wake-up during a call — and a Web Push endpoint the egress
/// policy refuses (`422 push_endpoint_refused`, nothing stored): the worker would POST to
/// it, so a device could otherwise make the server probe its own network.
fn check_push_token(ctx: &Ctx, provider: &str, token: &str) -> Result<(), Error> {
    let field = "push.token";
    match provider {
        "webpush" => {
            let sub = pushdial_core::push::webpush::parse_subscription(token)
                .map_err(|e| Error::invalid(field, e))?;
            ctx.egress
                .check_push_endpoint(&sub.endpoint)
                .map(|_| ())
                .map_err(|e| Error::Unprocessable {
                    code: "push_endpoint_refused",
                    message: format!("push.token endpoint: {e}"),
                })
        }
        "apns"
            if !(64..=200).contains(&token.len())
                || !token.chars().all(|c| c.is_ascii_hexdigit()) =>
        {
            Err(Error::invalid(
                field,
                "an APNs device token is 64 or more hex digits",
            ))
        }
        "fcm" if token.chars().any(|c| c.is_whitespace() || c.is_control()) => Err(Error::invalid(
            field,
            "an FCM registration token has no spaces",
        )),
        _ => Ok(()),
    }
}
