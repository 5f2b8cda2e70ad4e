//! Authentication. The security schemes resolve a credential to a principal that carries
//! the tenant scope (`org_id`): a handler cannot reach data without one.
//!
//! - Secret keys (`Authorization: Bearer pd_sk_…`) open the public API with the rights of
//!   the member who made them, as they are now (a key never has more power than its
//!   creator; the organization's own key from `pushdial admin create-org` has an owner's);
//!   publishable keys (`pd_pk_…`) are refused there.
//! - A console session (cookie `pd_session`) opens the same API for a signed-in member, in
//!   the organization named by the `Pushdial-Organization` header, with the member's role.
//!   State-changing requests with a session must come from an allowed `Origin`.
//! - Device tokens (`pd_dev_…`) open the agent API.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use poem::Request;
use poem_openapi::auth::{ApiKey, Bearer};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions, SecurityScheme};
use pushdial_core::accounts::Role;
use pushdial_core::ratelimit::Limit;
use pushdial_core::sessions::{self, Session};
use pushdial_core::store::accounts::{self as account_store, AuditEntry};
use pushdial_core::store::devices::{self, DeviceRow};
use pushdial_core::store::keys::{self, KeyHolder};
use pushdial_core::{limits, secrets, Ctx, Error};

use crate::problem::ApiError;

/// The header naming the organization a session request acts in.
pub const ORG_HEADER: &str = "pushdial-organization";

pub use pushdial_core::access::{may_use_agent, Actor, KeyCreator, OrgScope};

/// The client's address as per-address limits key it (an IPv6 client's /64).
pub fn client_key(req: &Request) -> String {
    req.extensions()
        .get::<crate::request::ClientIp>()
        .map(|c| pushdial_core::limits::ip_key(c.0).to_string())
        .unwrap_or_default()
}

/// The client's address and user agent, for the audit log.
pub fn client_of(req: &Request) -> (Option<String>, Option<String>) {
    let ip = req
        .extensions()
        .get::<crate::request::ClientIp>()
        .map(|c| c.0.to_string());
    let ua = req
        .headers()
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(512).collect());
    (ip, ua)
}

/// A secret API key: `Authorization: Bearer pd_sk_…`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", rename = "SecretKey", checker = "check_secret_key")]
pub struct SecretKey(pub OrgScope);

/// A signed-in person: their session, and where the request comes from.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub session: Session,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl SignedIn {
    /// An audit entry for an act of this user.
    pub fn audit(
        &self,
        org_id: Option<&str>,
        action: &str,
        target_type: &str,
        target_id: &str,
    ) -> AuditEntry {
        AuditEntry {
            org_id: org_id.map(str::to_owned),
            action: action.to_owned(),
            actor_type: "user".into(),
            actor_id: Some(self.session.user_id.clone()),
            target_type: Some(target_type.to_owned()),
            target_id: Some(target_id.to_owned()),
            ip: self.ip.clone(),
            user_agent: self.user_agent.clone(),
            data: serde_json::json!({}),
        }
    }
}

/// A console session: the `__Host-pd_session` cookie set by sign-in at
/// `/auth/{provider}/login` (`pd_session` on plain-http loopback). Documents the scheme;
/// `SessionCookie` does the work, since the cookie's name depends on the deployment.
#[derive(SecurityScheme)]
#[oai(
    ty = "api_key",
    key_name = "__Host-pd_session",
    key_in = "cookie",
    rename = "Session"
)]
#[allow(dead_code)]
struct SessionScheme(ApiKey);

/// A signed-in person, from the session cookie.
pub struct SessionCookie(pub SignedIn);

impl<'a> ApiExtractor<'a> for SessionCookie {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut poem_openapi::registry::Registry) {
        <SessionScheme as ApiExtractor>::register(registry);
    }

    fn security_schemes() -> Vec<&'static str> {
        <SessionScheme as ApiExtractor>::security_schemes()
    }

    async fn from_request(
        req: &'a Request,
        _body: &mut poem::RequestBody,
        _param_opts: ExtractParamOptions<()>,
    ) -> poem::Result<Self> {
        let ctx = ctx(req)?;
        let token = cookie(req, sessions::cookie_name(ctx))
            .ok_or(poem_openapi::error::AuthorizationError)?;
        // The origin first: a cross-site request must not even renew the session.
        check_origin(ctx, req).map_err(ApiError)?;
        let session = sessions::resolve(ctx, &token).await.map_err(ApiError)?;
        let (ip, user_agent) = client_of(req);
        Ok(SessionCookie(SignedIn {
            session,
            ip,
            user_agent,
        }))
    }
}

/// Either credential of the public API: a secret key, or a session with the
/// `Pushdial-Organization` header.
pub struct OrgAuth(pub OrgScope);

impl std::ops::Deref for OrgAuth {
    type Target = OrgScope;
    fn deref(&self) -> &OrgScope {
        &self.0
    }
}

impl<'a> ApiExtractor<'a> for OrgAuth {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut poem_openapi::registry::Registry) {
        <SecretKey as ApiExtractor>::register(registry);
        <SessionCookie as ApiExtractor>::register(registry);
    }

    fn security_schemes() -> Vec<&'static str> {
        let mut schemes = <SecretKey as ApiExtractor>::security_schemes();
        schemes.extend(<SessionCookie as ApiExtractor>::security_schemes());
        schemes
    }

    async fn from_request(
        req: &'a Request,
        body: &mut poem::RequestBody,
        param_opts: ExtractParamOptions<()>,
    ) -> poem::Result<Self> {
        // A request that names a key is judged by its key alone.
        let session_cookie = ctx(req).map(|c| has_cookie(req, sessions::cookie_name(c)))?;
        if req
            .headers()
            .contains_key(poem::http::header::AUTHORIZATION)
            || !session_cookie
        {
            let key = <SecretKey as ApiExtractor>::from_request(req, body, param_opts).await?;
            return Ok(OrgAuth(key.0));
        }
        let signed_in = <SessionCookie as ApiExtractor>::from_request(req, body, param_opts)
            .await?
            .0;
        Ok(OrgAuth(
            member_scope(req, signed_in).await.map_err(ApiError)?,
        ))
    }
}

fn has_cookie(req: &Request, name: &str) -> bool {
    cookie(req, name).is_some()
}

/// The value of a request cookie.
pub fn cookie(req: &Request, name: &str) -> Option<String> {
    req.headers()
        .get_all(poem::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"').to_owned())
}

fn ctx(req: &Request) -> Result<&Ctx, ApiError> {
    req.data::<Ctx>()
        .ok_or_else(|| ApiError(Error::Internal("no context".into())))
}

/// The origin a signed-in browser may change things from: the deployment's own (the
/// console is served by the api; no other origin gets credentials).
fn origin_allowed(ctx: &Ctx, origin: &str) -> bool {
    origin == ctx.config.public_origin()
}

/// Refuses a state-changing request carried by a session cookie unless its `Origin` (or,
/// without one, its `Referer`) is allowed: the defence against cross-site request forgery
/// besides `SameSite=Lax`.
pub fn check_origin(ctx: &Ctx, req: &Request) -> Result<(), Error> {
    use poem::http::Method;
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let origin = match header("origin") {
        Some(o) => Some(o.to_owned()),
        None => header("referer")
            .and_then(|r| url::Url::parse(r).ok())
            .map(|u| u.origin().ascii_serialization()),
    };
    match origin {
        Some(o) if origin_allowed(ctx, &o) => Ok(()),
        _ => Err(Error::forbidden(
            "origin_not_allowed",
            "a signed-in browser may change things only from the console's origin",
        )),
    }
}

/// The scope of a session request: the member's role in the organization the header
/// names. Not a member, or no such organization: 404, so that ids of other tenants'
/// organizations are not confirmed.
async fn member_scope(req: &Request, signed_in: SignedIn) -> Result<OrgScope, Error> {
    let ctx = ctx(req).map_err(|e| e.0)?;
    // The header, or for live streams (EventSource cannot send headers) `?organization=`.
    let from_query = || {
        (*req.method() == poem::http::Method::GET && req.uri().path().ends_with("/stream"))
            .then(|| req.uri().query())
            .flatten()
            .and_then(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .find(|(k, _)| k == "organization")
                    .map(|(_, v)| v.into_owned())
            })
    };
    let org_id = req
        .headers()
        .get(ORG_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(from_query);
    let org_id = org_id
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| Error::Invalid {
            code: "organization_required",
            message:
                "a session request names its organization in the `Pushdial-Organization` header"
                    .into(),
            errors: vec![],
        })?;
    let mut conn = ctx.db.acquire().await?;
    let member = account_store::membership(&mut conn, org_id, &signed_in.session.user_id)
        .await?
        .ok_or(Error::NotFound("organization"))?;
    let limit_rate = pushdial_core::store::orgs::api_limit(&mut conn, org_id).await?;
    drop(conn);
    let rate = limit_rate
        .and_then(|r| u32::try_from(r).ok())
        .unwrap_or(ctx.config.limit_api_per_second);
    if let Some(d) = limits::take(ctx, "org", org_id, Limit::per_second(rate)).await? {
        crate::request::report_rate("org", rate, 1, &d);
    }
    Ok(OrgScope {
        org_id: member.org_id,
        actor: Actor::Member {
            user_id: member.user_id,
            role: Role::parse(&member.role).unwrap_or(Role::Agent),
            agent_id: member.agent_id,
        },
        ip: signed_in.ip,
        user_agent: signed_in.user_agent,
    })
}

/// When each key's last use was last written: `last_used_at` is kept to the minute without
/// a write per request.
static KEY_USE: Mutex<Option<HashMap<String, Instant>>> = Mutex::new(None);
const KEY_USE_EVERY: Duration = Duration::from_secs(60);

fn record_key_use(ctx: &Ctx, key_id: &str) {
    {
        let mut seen = KEY_USE.lock().unwrap_or_else(|e| e.into_inner());
        let seen = seen.get_or_insert_with(HashMap::new);
        if seen
            .get(key_id)
            .is_some_and(|at| at.elapsed() < KEY_USE_EVERY)
        {
            return;
        }
        if seen.len() > 100_000 {
            seen.retain(|_, at| at.elapsed() < KEY_USE_EVERY);
        }
        seen.insert(key_id.to_owned(), Instant::now());
    }
    let db = ctx.db.clone();
    let key_id = key_id.to_owned();
    tokio::spawn(async move {
        if let Ok(mut conn) = db.acquire().await {
            if let Err(e) = keys::touch(&mut conn, &key_id).await {
                tracing::debug!(error = %e, "key use not recorded");
            }
        }
    });
}

/// A device token from pairing: `Authorization: Bearer pd_dev_…`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", rename = "DeviceToken", checker = "check_device_token")]
pub struct DeviceToken(pub DeviceRow);

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
    let hash = secrets::hash(&bearer.token);
    let key = match ctx.keys.get(&hash) {
        Some(key) => key,
        None => {
            let generation = ctx.keys.generation();
            let mut conn = ctx.db.acquire().await.map_err(|e| ApiError(e.into()))?;
            let key = keys::find_by_hash(&mut conn, &hash)
                .await
                .map_err(|e| ApiError(e.into()))?
                .ok_or_else(invalid)?;
            // Only secret keys are asked for often enough to be worth keeping.
            if key.kind == "secret" {
                ctx.keys.put(&hash, &key, generation);
            }
            key
        }
    };
    if key.revoked_at.is_some() {
        return Err(ApiError(Error::unauthenticated(
            "api_key_revoked",
            "the API key was revoked",
        ))
        .into());
    }
    if key.expires_at.is_some_and(|at| at <= chrono::Utc::now()) {
        return Err(ApiError(Error::unauthenticated(
            "api_key_expired",
            "the API key was rolled and its overlap has ended; use its replacement",
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
    // A key acts as its creator now; one whose creator is no longer a member is revoked
    // with the removal, and refused the same should the revocation be missing.
    let (role, creator) = match key.holder() {
        KeyHolder::Organization => (Role::Owner, None),
        KeyHolder::Member {
            user_id,
            role,
            agent_id,
        } => (role, Some(KeyCreator { user_id, agent_id })),
        KeyHolder::Gone => {
            return Err(ApiError(Error::unauthenticated(
                "api_key_revoked",
                "the API key was revoked: its creator is no longer a member",
            ))
            .into())
        }
    };
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
        crate::request::report_rate("org", rate, 1, &d);
    }
    // A key's own limit only matters below the organization's (it could never refuse
    // first otherwise), so it costs a round trip only when configured lower.
    if let Some(per_key) = ctx.config.limit_key_per_second.filter(|k| *k < rate) {
        limits::take(ctx, "key", &key.id, Limit::per_second(per_key))
            .await
            .map_err(ApiError)?;
    }
    record_key_use(ctx, &key.id);
    let (ip, user_agent) = client_of(req);
    Ok(OrgScope {
        org_id: key.org_id,
        actor: Actor::Key {
            key_id: key.id,
            role,
            creator,
        },
        ip,
        user_agent,
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
