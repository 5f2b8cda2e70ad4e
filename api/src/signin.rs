//! The browser side of sign-in, under `/auth`:
//!
//! - `GET /auth/providers`: the configured providers, for a sign-in page;
//! - `GET /auth/{provider}/login?return_to=/path[&link=true]`: starts the authorization
//!   code flow (PKCE, state, nonce) and redirects to the provider; the state is also put
//!   in a short-lived cookie so that only this browser can finish it. With `link=true` a
//!   signed-in user adds this identity to their account;
//! - `GET /auth/{provider}/callback`: checks state, exchanges the code, verifies the
//!   identity, finds or creates the user, starts a fresh session (cookie `pd_session`) and
//!   redirects to `return_to` (a path on this deployment);
//! - `POST /auth/logout[?everywhere=true]`: ends this session, or all of the user's.

use poem::http::{header, StatusCode};
use poem::web::{Data, Json, Path, Query};
use poem::{handler, IntoResponse, Request, Response};
use pushdial_core::accounts::{self, VerifiedIdentity};
use pushdial_core::sessions;
use pushdial_core::signin::{self, Callback};
use pushdial_core::store::accounts::{self as store, AuditEntry};
use pushdial_core::{limits, Ctx, Error};

use crate::auth::{check_origin, client_key, client_of, cookie};
use crate::problem::Problem;

/// Where a browser lands after sign-in when it asked for no particular page: the console.
pub const DEFAULT_RETURN: &str = "/console/";

fn problem(e: &Error) -> Response {
    Problem::from_core(e).into_poem()
}

/// The configured sign-in providers.
#[handler]
pub async fn providers(ctx: Data<&Ctx>) -> Response {
    let data: Vec<_> = ctx
        .signin
        .list()
        .iter()
        .map(|p| {
            serde_json::json!({
                "id": p.id,
                "name": p.name,
                "login_url": format!("/auth/{}/login", p.id),
            })
        })
        .collect();
    Json(serde_json::json!({ "object": "list", "data": data, "has_more": false })).into_response()
}

#[derive(serde::Deserialize)]
pub struct LoginQuery {
    return_to: Option<String>,
    link: Option<bool>,
}

fn state_cookie(ctx: &Ctx, value: &str, max_age: u64) -> String {
    format!(
        "{}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{}",
        signin::state_cookie_name(&ctx.config),
        sessions::secure(ctx)
    )
}

/// The live session the request carries, if any.
async fn current_session(ctx: &Ctx, req: &Request) -> Option<sessions::Session> {
    let token = cookie(req, sessions::cookie_name(ctx))?;
    sessions::resolve(ctx, &token).await.ok()
}

/// Starts a sign-in with `provider`.
#[handler]
pub async fn login(
    req: &Request,
    ctx: Data<&Ctx>,
    Path(provider): Path<String>,
    Query(query): Query<LoginQuery>,
) -> Response {
    let started = async {
        limits::take(&ctx, "signin", &client_key(req), limits::per_minute(30)).await?;
        let link = if query.link.unwrap_or(false) {
            let session = current_session(&ctx, req).await.ok_or_else(|| {
                Error::unauthenticated(
                    "session_required",
                    "sign in first to link another sign-in to your account",
                )
            })?;
            // Adding a way in is sensitive: only soon after signing in, so that a stolen
            // session cookie alone cannot attach an attacker's account.
            let age = (chrono::Utc::now() - session.created_at)
                .to_std()
                .unwrap_or_default();
            if age > sessions::RECENT_SIGN_IN {
                return Err(Error::forbidden(
                    "reauthentication_required",
                    "sign in again, then link the other sign-in within 15 minutes",
                ));
            }
            Some((session.user_id, session.id_hash))
        } else {
            None
        };
        let return_to = signin::safe_return_to(query.return_to.as_deref());
        ctx.signin
            .start(
                &ctx.config,
                &ctx.db,
                &ctx.secrets,
                &provider,
                return_to.as_deref(),
                link.as_ref().map(|(u, h)| (u.as_str(), h.as_slice())),
            )
            .await
    }
    .await;
    match started {
        Ok(s) => Response::builder()
            .status(StatusCode::SEE_OTHER)
            .header(header::LOCATION, s.authorize_url)
            .header(header::CACHE_CONTROL, "no-store")
            .header(
                header::SET_COOKIE,
                state_cookie(&ctx, &s.state, signin::SIGN_IN_TTL.as_secs()),
            )
            .finish(),
        Err(e) => problem(&e),
    }
}

/// Finishes a sign-in at the provider's redirect.
#[handler]
pub async fn callback(
    req: &Request,
    ctx: Data<&Ctx>,
    Path(provider): Path<String>,
    Query(cb): Query<Callback>,
) -> Response {
    let (ip, user_agent) = client_of(req);
    let cookie_state = cookie(req, signin::state_cookie_name(&ctx.config));
    let clear_state = state_cookie(&ctx, "", 0);
    let outcome = async {
        limits::take(&ctx, "signin", &client_key(req), limits::per_minute(30)).await?;
        let finished = ctx
            .signin
            .finish(
                &ctx.config,
                &ctx.db,
                &ctx.secrets,
                &provider,
                &cb,
                cookie_state.as_deref(),
            )
            .await?;
        let mut tx = ctx.db.begin().await?;
        if let Some((_, session_hash)) = &finished.link {
            // The session that asked for the link must still be live (not signed out).
            let live = store::get_session(&mut tx, session_hash)
                .await?
                .is_some_and(|s| s.revoked_at.is_none() && s.expires_at > chrono::Utc::now());
            if !live {
                return Err(Error::unauthenticated(
                    "session_expired",
                    "the session that started linking has ended; sign in and try again",
                ));
            }
        }
        let link_user = finished.link.as_ref().map(|(u, _)| u.as_str());
        let (user_id, created) =
            accounts::user_for_identity(&mut tx, &finished.identity, link_user).await?;
        let memberships = store::memberships_of_user(&mut tx, &user_id).await?;
        let record = |org_id: Option<&str>, action: &str| AuditEntry {
            org_id: org_id.map(str::to_owned),
            action: action.to_owned(),
            actor_type: "user".into(),
            actor_id: Some(user_id.clone()),
            target_type: Some("user".into()),
            target_id: Some(user_id.clone()),
            ip: ip.clone(),
            user_agent: user_agent.clone(),
            data: identity_data(&finished.identity, created),
        };
        let action = if finished.link.is_some() {
            "user.identity_linked"
        } else {
            "user.signed_in"
        };
        if memberships.is_empty() {
            accounts::audit(&mut tx, &record(None, action)).await?;
        }
        for m in &memberships {
            accounts::audit(&mut tx, &record(Some(&m.org_id), action)).await?;
        }
        tx.commit().await?;
        Ok::<_, Error>((user_id, finished.return_to))
    }
    .await;
    let (user_id, return_to) = match outcome {
        Ok(v) => v,
        Err(e) => {
            if !matches!(
                e,
                Error::Unavailable { .. } | Error::Database(_) | Error::RateLimited { .. }
            ) {
                failed_sign_in(&ctx, &provider, &e, ip, user_agent).await;
            }
            let mut resp = problem(&e);
            if let Ok(v) = clear_state.parse() {
                resp.headers_mut().append(header::SET_COOKIE, v);
            }
            return resp;
        }
    };
    // A fresh session at every sign-in (no fixation): an older one in this browser ends.
    if let Some(old) = current_session(&ctx, req).await {
        if let Err(e) = sessions::revoke(&ctx, &old.id_hash).await {
            tracing::warn!(error = %e, "previous session not ended");
        }
    }
    match sessions::create(&ctx, &user_id, ip.as_deref(), user_agent.as_deref()).await {
        Ok((token, _)) => Response::builder()
            .status(StatusCode::SEE_OTHER)
            .header(
                header::LOCATION,
                return_to.unwrap_or_else(|| DEFAULT_RETURN.to_owned()),
            )
            .header(header::CACHE_CONTROL, "no-store")
            .header(header::SET_COOKIE, sessions::cookie(&ctx, &token))
            .header(header::SET_COOKIE, clear_state)
            .finish(),
        Err(e) => problem(&e),
    }
}

fn identity_data(identity: &VerifiedIdentity, created: bool) -> serde_json::Value {
    serde_json::json!({
        "provider": identity.provider,
        "issuer": identity.issuer,
        "subject": identity.subject,
        "new_user": created,
    })
}

/// Records a failed sign-in (no organization: the identity is not known to be anyone's).
async fn failed_sign_in(
    ctx: &Ctx,
    provider: &str,
    e: &Error,
    ip: Option<String>,
    user_agent: Option<String>,
) {
    let entry = AuditEntry {
        org_id: None,
        action: "user.sign_in_failed".into(),
        actor_type: "anonymous".into(),
        actor_id: None,
        target_type: None,
        target_id: None,
        ip,
        user_agent,
        data: serde_json::json!({ "provider": provider, "code": e.code(), "reason": e.to_string() }),
    };
    let written = async {
        let mut conn = ctx.db.acquire().await?;
        accounts::audit(&mut conn, &entry).await
    }
    .await;
    if let Err(e) = written {
        tracing::warn!(error = %e, "failed sign-in not recorded");
    }
}

#[derive(serde::Deserialize)]
pub struct LogoutQuery {
    everywhere: Option<bool>,
}

/// Ends the session (or every session of its user); always clears the cookie.
#[handler]
pub async fn logout(req: &Request, ctx: Data<&Ctx>, Query(q): Query<LogoutQuery>) -> Response {
    if let Err(e) = check_origin(&ctx, req) {
        return problem(&e);
    }
    let (ip, user_agent) = client_of(req);
    let ended = async {
        let Some(session) = current_session(&ctx, req).await else {
            return Ok(0);
        };
        let count = if q.everywhere.unwrap_or(false) {
            sessions::revoke_all(&ctx, &session.user_id).await?
        } else {
            sessions::revoke(&ctx, &session.id_hash).await?;
            1
        };
        let mut conn = ctx.db.acquire().await?;
        let memberships = store::memberships_of_user(&mut conn, &session.user_id).await?;
        for m in memberships {
            let entry = AuditEntry {
                org_id: Some(m.org_id),
                action: "user.signed_out".into(),
                actor_type: "user".into(),
                actor_id: Some(session.user_id.clone()),
                target_type: Some("user".into()),
                target_id: Some(session.user_id.clone()),
                ip: ip.clone(),
                user_agent: user_agent.clone(),
                data: serde_json::json!({ "everywhere": q.everywhere.unwrap_or(false), "sessions_ended": count }),
            };
            accounts::audit(&mut conn, &entry).await?;
        }
        Ok::<_, Error>(count)
    }
    .await;
    match ended {
        Ok(count) => Response::builder()
            .status(StatusCode::OK)
            .content_type("application/json")
            .header(header::SET_COOKIE, sessions::clear_cookie(&ctx))
            .body(serde_json::json!({ "sessions_ended": count }).to_string()),
        Err(e) => problem(&e),
    }
}
