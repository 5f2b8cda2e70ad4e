//! Sign-in through a real OpenID Connect provider (`oidc-provider` from npm, on loopback),
//! sessions, organizations, members and roles, invitations, API keys and the audit log.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{COOKIE, LOCATION, ORIGIN};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::fakes::github::fake_github;
use crate::fakes::oidc::app_with_oidc;
use crate::fakes::smtp::fake_smtp;
use crate::harness::*;

/// A browser: its own cookie jar, redirects followed by hand so that tests see each hop.
pub struct Browser {
    pub http: reqwest::Client,
    app: String,
}

impl Browser {
    pub fn new(app: &TestApp) -> Browser {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let http = reqwest::Client::builder()
            .cookie_provider(jar)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Browser {
            http,
            app: app.url.clone(),
        }
    }

    /// Starts a sign-in and goes through the provider's login and consent pages as
    /// `login`; returns the provider's redirect to our callback (not yet followed). `tamper`
    /// may change the authorization URL before the browser goes there.
    pub async fn through_provider(
        &self,
        login: &str,
        tamper: impl FnOnce(String) -> String,
    ) -> String {
        self.through("/auth/oidc/login?return_to=/v1/me", login, tamper)
            .await
    }

    /// Like `through_provider`, starting at `start` (a path of the deployment).
    pub async fn through(
        &self,
        start: &str,
        login: &str,
        tamper: impl FnOnce(String) -> String,
    ) -> String {
        let r = self
            .http
            .get(format!("{}{start}", self.app))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{:?}", r.text().await);
        let authorize = r.headers()[LOCATION].to_str().unwrap().to_owned();
        assert!(
            authorize.contains("code_challenge_method=S256"),
            "{authorize}"
        );
        if start.starts_with("/auth/oidc/") {
            assert!(authorize.contains("nonce="), "{authorize}");
        }
        let mut url = reqwest::Url::parse(&tamper(authorize)).unwrap();
        for _ in 0..12 {
            let r = self.http.get(url.clone()).send().await.unwrap();
            if r.status().is_redirection() {
                let next = url.join(r.headers()[LOCATION].to_str().unwrap()).unwrap();
                if next.as_str().starts_with(&self.app) {
                    return next.to_string();
                }
                url = next;
                continue;
            }
            // The provider's own login or consent page: fill in and submit its form.
            let page = r.text().await.unwrap();
            let action = between(&page, "action=\"", "\"").expect("a form on the provider's page");
            // Its hidden fields as they are, plus a login and password where it asks.
            let mut form: Vec<(String, String)> = page
                .split("<input")
                .skip(1)
                .filter(|tag| tag.contains("type=\"hidden\""))
                .filter_map(|tag| {
                    Some((
                        between(tag, "name=\"", "\"")?,
                        between(tag, "value=\"", "\"")?,
                    ))
                })
                .collect();
            if page.contains("name=\"login\"") {
                form.push(("login".into(), login.into()));
                form.push(("password".into(), "any".into()));
            }
            let r = self
                .http
                .post(url.join(&action).unwrap())
                .form(&form)
                .send()
                .await
                .unwrap();
            let status = r.status();
            if !status.is_redirection() {
                panic!(
                    "form answered {status}: {}\npage was: {page}",
                    r.text().await.unwrap_or_default()
                );
            }
            url = url.join(r.headers()[LOCATION].to_str().unwrap()).unwrap();
        }
        panic!("the provider never redirected back");
    }

    /// Signs in as `login` end to end; returns the callback's answer.
    pub async fn sign_in(&self, login: &str) -> reqwest::Response {
        let callback = self.through_provider(login, |u| u).await;
        self.http.get(callback).send().await.unwrap()
    }

    /// A JSON request with this browser's cookies, from the console's origin, in `org`.
    pub async fn api(
        &self,
        method: Method,
        path: &str,
        org: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.app))
            .header(ORIGIN, &self.app);
        if let Some(org) = org {
            req = req.header("Pushdial-Organization", org);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or_default())
    }
}

fn between(s: &str, start: &str, end: &str) -> Option<String> {
    let from = s.find(start)? + start.len();
    let len = s[from..].find(end)?;
    Some(s[from..from + len].replace("&amp;", "&"))
}

fn set_cookies(r: &reqwest::Response) -> Vec<String> {
    r.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// Drops every session's Redis copy (as a Redis restart would); returns how many there were.
async fn forget_redis_sessions(app: &TestApp) -> usize {
    let mut redis = redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}session:*", app.config.redis_prefix))
        .query_async(&mut redis)
        .await
        .unwrap();
    if !keys.is_empty() {
        let _: i64 = redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut redis)
            .await
            .unwrap();
    }
    keys.len()
}

/// A signed-in user with an organization of their own: (browser, org id, user id).
pub async fn owner_of_new_org(app: &TestApp, login: &str) -> (Browser, String, String) {
    let b = Browser::new(app);
    assert_eq!(b.sign_in(login).await.status(), StatusCode::SEE_OTHER);
    let (status, member) = b
        .api(
            Method::POST,
            "/v1/organizations",
            None,
            Some(json!({"name": format!("{login}'s org")})),
        )
        .await;
    assert_eq!(status, 201, "{member}");
    (
        b,
        member["organization_id"].as_str().unwrap().to_owned(),
        member["user_id"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_through_openid_connect_then_use_the_api_with_the_session() {
    let (app, provider) = app_with_oidc(|_| {}).await;
    let browser = Browser::new(&app);
    let r = browser.sign_in("alice").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[LOCATION], "/v1/me");
    let cookies = set_cookies(&r);
    let session = cookies
        .iter()
        .find(|c| c.starts_with("pd_session="))
        .unwrap();
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Lax"),
        "{session}"
    );
    // Plain-http loopback is the one place the cookie may lack Secure.
    assert!(!session.contains("Secure"), "{session}");

    // The user exists, keyed by (issuer, subject), and belongs to no organization yet.
    let (status, me) = browser.api(Method::GET, "/v1/me", None, None).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["name"], "Alice");
    assert_eq!(me["email"], "alice@example.test");
    assert_eq!(me["identities"][0]["issuer"], provider.issuer.as_str());
    assert_eq!(me["identities"][0]["subject"], "alice");
    assert_eq!(me["memberships"], json!([]));
    let user_id = me["id"].as_str().unwrap().to_owned();

    // She creates an organization and owns it.
    let (status, member) = browser
        .api(
            Method::POST,
            "/v1/organizations",
            None,
            Some(json!({"name": "Alice Ltd", "country": "GB"})),
        )
        .await;
    assert_eq!(status, 201, "{member}");
    assert_eq!(member["role"], "owner");
    let org = member["organization_id"].as_str().unwrap().to_owned();

    // The public API, with the session and the organization header.
    let (status, calls) = browser
        .api(Method::GET, "/v1/calls", Some(&org), None)
        .await;
    assert_eq!(status, 200, "{calls}");
    let (status, organization) = browser
        .api(Method::GET, "/v1/organization", Some(&org), None)
        .await;
    assert_eq!(status, 200, "{organization}");
    assert_eq!(organization["dialing"]["allowed_countries"], json!(["GB"]));

    // Pairing from the console binds the phone to her: same user on both sides.
    let (status, code) = browser
        .api(
            Method::POST,
            "/v1/pairing_codes",
            Some(&org),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 201, "{code}");
    assert_eq!(code["agent_id"], member["agent_id"]);
    let (device, _) = pushdial_sdk::AgentClient::pair(
        &app.url,
        code["code"].as_str().unwrap(),
        "Alice's phone",
        "cli",
    )
    .await
    .unwrap();
    let agent = RunningAgent::start(device, Duration::from_millis(50)).await;
    let (status, call) = browser
        .api(
            Method::POST,
            "/v1/calls",
            Some(&org),
            Some(json!({"to": "+447400123456", "confirm": "auto"})),
        )
        .await;
    assert_eq!(status, 201, "{call}");
    assert_eq!(call["agent_id"], member["agent_id"]);
    let call_id = call["id"].as_str().unwrap().to_owned();
    eventually(Duration::from_secs(10), "the call to complete", || async {
        let (_, c) = browser
            .api(
                Method::GET,
                &format!("/v1/calls/{call_id}"),
                Some(&org),
                None,
            )
            .await;
        (c["status"] == "completed").then_some(())
    })
    .await;
    drop(agent);

    // Signing in again (another browser) finds the same user, not a new one.
    let again = Browser::new(&app);
    assert_eq!(again.sign_in("alice").await.status(), StatusCode::SEE_OTHER);
    let (_, me2) = again.api(Method::GET, "/v1/me", None, None).await;
    assert_eq!(me2["id"], user_id.as_str());
    assert_eq!(me2["memberships"][0]["organization_id"], org.as_str());
    assert_eq!(app.count("users").await, 1);

    // The audit log has the organization's acts, with who and from where.
    let (status, log) = again
        .api(Method::GET, "/v1/audit_events?limit=100", Some(&org), None)
        .await;
    assert_eq!(status, 200, "{log}");
    let actions: Vec<&str> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for expected in [
        "organization.created",
        "device.pairing_code_created",
        "user.signed_in",
    ] {
        assert!(
            actions.contains(&expected),
            "{expected} missing from {actions:?}"
        );
    }
    let signed_in = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "user.signed_in")
        .unwrap();
    assert_eq!(signed_in["actor_id"], user_id.as_str());
    assert_eq!(signed_in["ip"], "127.0.0.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_replayed_and_tampered_sign_ins_are_refused() {
    let (app, _provider) = app_with_oidc(|_| {}).await;

    // Wrong state: the callback's state is not the one this browser started with.
    let b = Browser::new(&app);
    let callback = b.through_provider("mallory", |u| u).await;
    let forged = callback.replace("state=", "state=x");
    let r = b.http.get(&forged).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(set_cookies(&r)
        .iter()
        .all(|c| !c.starts_with("pd_session=pd_")));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "sign_in_failed", "{body}");

    // A callback started in another browser (login CSRF): no state cookie here.
    let victim = Browser::new(&app);
    let r = victim.http.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(app.count("users").await, 0);

    // Replayed: the first use signs in; the same callback again (state cookie put back
    // by hand) is refused, and so is the code.
    let b = Browser::new(&app);
    let callback = b.through_provider("alice", |u| u).await;
    let state = reqwest::Url::parse(&callback)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    assert_eq!(b.http.get(&callback).send().await.unwrap().status(), 303);
    let replay = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(&callback)
        .header(COOKIE, format!("pd_signin={state}"))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 400);
    assert!(set_cookies(&replay)
        .iter()
        .all(|c| !c.starts_with("pd_session=pd_")));
    // The used code with a fresh, valid state of this browser: the provider refuses it.
    let fresh = b.through_provider("alice", |u| u).await;
    let fresh_state = reqwest::Url::parse(&fresh)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let mut old_code = reqwest::Url::parse(&callback).unwrap();
    let pairs: Vec<(String, String)> = old_code
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "state" {
                fresh_state.clone()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    old_code.query_pairs_mut().clear().extend_pairs(pairs);
    let r = b.http.get(old_code.as_str()).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("refused the code"),
        "{body}"
    );

    // Wrong nonce: the authorization request is altered on its way to the provider, so
    // the ID token carries another nonce than the one this sign-in expects.
    let b = Browser::new(&app);
    let callback = b
        .through_provider("eve", |u| {
            let url = reqwest::Url::parse(&u).unwrap();
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(k, v)| {
                    let v = if k == "nonce" {
                        "attacker-nonce".to_owned()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            let mut url = url.clone();
            url.query_pairs_mut().clear().extend_pairs(pairs);
            url.to_string()
        })
        .await;
    let r = b.http.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["detail"].as_str().unwrap().contains("ID token"),
        "{body}"
    );
    assert_eq!(app.count("users").await, 1, "only alice signed in");

    // Each refusal is in the platform's audit log, without an organization.
    let failed: i64 = sqlx::query_scalar(
        "select count(*) from audit_events where action = 'user.sign_in_failed' and org_id is null",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(failed, 5);

    // Unknown provider, and a return address on another host, are not followed.
    let r = b
        .http
        .get(format!("{}/auth/nope/login", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = b
        .http
        .get(format!(
            "{}/auth/oidc/login?return_to=//evil.example/",
            app.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let row: Option<String> =
        sqlx::query_scalar("select return_to from sign_ins order by created_at desc limit 1")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(row, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_need_an_allowed_origin_expire_and_end_everywhere() {
    let (app, _provider) = app_with_oidc(|c| c.session_idle_timeout = Duration::from_secs(2)).await;
    let (b, org, _) = owner_of_new_org(&app, "alice").await;

    // A state-changing request with the session cookie but from another site (or with no
    // Origin at all) is refused and writes nothing.
    let keys_before = app.count("api_keys").await;
    for origin in [Some("https://evil.example"), None] {
        let mut req = b
            .http
            .post(format!("{}/v1/api_keys", app.url))
            .header("Pushdial-Organization", &org)
            .json(&json!({"name": "x", "type": "secret"}));
        if let Some(o) = origin {
            req = req.header(ORIGIN, o);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 403);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], "origin_not_allowed");
    }
    assert_eq!(app.count("api_keys").await, keys_before);
    // Reading needs no Origin.
    let r = b
        .http
        .get(format!("{}/v1/calls", app.url))
        .header("Pushdial-Organization", &org)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Without the organization header, the API does not guess.
    let (status, body) = b.api(Method::GET, "/v1/calls", None, None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("organization_required"))
    );
    // `?organization=` stands in for the header only on live streams (EventSource).
    let (status, body) = b
        .api(
            Method::GET,
            &format!("/v1/calls?organization={org}"),
            None,
            None,
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("organization_required"))
    );

    // Losing Redis's copy (a restart) does not sign anyone out: Postgres has the session.
    assert_eq!(forget_redis_sessions(&app).await, 1);
    assert_eq!(b.api(Method::GET, "/v1/me", None, None).await.0, 200);

    // Idle for longer than the idle timeout: the session has ended.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (status, body) = b.api(Method::GET, "/v1/me", None, None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("session_expired"))
    );

    // Sign out everywhere: both browsers' sessions end.
    let one = Browser::new(&app);
    let two = Browser::new(&app);
    one.sign_in("alice").await;
    two.sign_in("alice").await;
    assert_eq!(two.api(Method::GET, "/v1/me", None, None).await.0, 200);
    let (status, out) = one
        .api(Method::POST, "/auth/logout?everywhere=true", None, None)
        .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["sessions_ended"], 2);
    assert_eq!(one.api(Method::GET, "/v1/me", None, None).await.0, 401);
    assert_eq!(two.api(Method::GET, "/v1/me", None, None).await.0, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_survive_redis_going_down_and_fail_clearly_when_postgres_is_gone_too() {
    let redis = PrivateRedis::start().await;
    let redis_url = redis.url.clone();
    let (app, _provider) = app_with_oidc(move |c| c.redis_url = redis_url).await;
    let (b, org, _) = owner_of_new_org(&app, "alice").await;
    drop(redis);
    // Redis is gone: the session is read from Postgres.
    let (status, body) = b.api(Method::GET, "/v1/calls", Some(&org), None).await;
    assert_eq!(status, 200, "{body}");
    // A forged cookie is still refused.
    let r = reqwest::Client::new()
        .get(format!("{}/v1/me", app.url))
        .header(COOKIE, "pd_session=pd_ses_forged")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Postgres gone too: a clear 503, not a sign-out.
    let db_name = app.database_url.rsplit('/').next().unwrap().to_owned();
    let mut admin =
        <sqlx::PgConnection as sqlx::Connection>::connect(&format!("{}/postgres", server_url()))
            .await
            .unwrap();
    sqlx::query(&format!("alter database {db_name} allow_connections false"))
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query("select pg_terminate_backend(pid) from pg_stat_activity where datname = $1")
        .bind(&db_name)
        .execute(&mut admin)
        .await
        .unwrap();
    let (status, body) = b.api(Method::GET, "/v1/me", None, None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("sessions_unavailable")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_roles_and_invitations() {
    let (app, _provider) = app_with_oidc(|_| {}).await;
    let (alice, org, alice_id) = owner_of_new_org(&app, "alice").await;

    // Alice invites Bob as an agent; without SMTP the link is shown to her.
    let (status, inv) = alice
        .api(
            Method::POST,
            "/v1/invitations",
            Some(&org),
            Some(json!({"role": "agent", "email": "bob@example.test"})),
        )
        .await;
    assert_eq!(status, 201, "{inv}");
    assert_eq!(inv["delivery"], "link");
    let url = inv["url"].as_str().unwrap();
    let token = url.split_once('#').unwrap().1.to_owned();
    assert!(token.starts_with("pd_inv_"));
    // The token is stored hashed only.
    let stored: i64 = sqlx::query_scalar("select count(*) from invitations where token_hash = $1")
        .bind(token.as_bytes())
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(stored, 0);

    let bob = Browser::new(&app);
    bob.sign_in("bob").await;
    let (status, joined) = bob
        .api(
            Method::POST,
            "/v1/invitations/accept",
            None,
            Some(json!({"token": token})),
        )
        .await;
    assert_eq!(status, 201, "{joined}");
    assert_eq!(joined["role"], "agent");
    let bob_id = joined["user_id"].as_str().unwrap().to_owned();
    // Single use.
    let carol = Browser::new(&app);
    carol.sign_in("carol").await;
    let (status, body) = carol
        .api(
            Method::POST,
            "/v1/invitations/accept",
            None,
            Some(json!({"token": token})),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("invitation_used"))
    );
    // Revoked invitations cannot be used.
    let (_, inv2) = alice
        .api(
            Method::POST,
            "/v1/invitations",
            Some(&org),
            Some(json!({"role": "admin"})),
        )
        .await;
    let inv2_id = inv2["id"].as_str().unwrap();
    assert_eq!(
        alice
            .api(
                Method::DELETE,
                &format!("/v1/invitations/{inv2_id}"),
                Some(&org),
                None
            )
            .await
            .0,
        200
    );
    let token2 = inv2["url"]
        .as_str()
        .unwrap()
        .split_once('#')
        .unwrap()
        .1
        .to_owned();
    let (status, body) = carol
        .api(
            Method::POST,
            "/v1/invitations/accept",
            None,
            Some(json!({"token": token2})),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("invitation_revoked"))
    );

    // Bob, an agent, may not do admin things, and writes nothing trying.
    let endpoints_before = app.count("webhook_endpoints").await;
    for (method, path, body) in [
        (
            Method::POST,
            "/v1/webhook_endpoints",
            Some(json!({"url": "https://example.com/hook"})),
        ),
        (
            Method::POST,
            "/v1/api_keys",
            Some(json!({"name": "mine", "type": "secret"})),
        ),
        (Method::GET, "/v1/members", None),
        (Method::GET, "/v1/audit_events", None),
        (Method::POST, "/v1/agents", Some(json!({"name": "Zed"}))),
        (
            Method::POST,
            "/v1/invitations",
            Some(json!({"role": "agent"})),
        ),
    ] {
        let (status, problem) = bob.api(method.clone(), path, Some(&org), body).await;
        assert_eq!(status, 403, "{method} {path}: {problem}");
        assert_eq!(problem["code"], "role_forbidden");
    }
    assert_eq!(app.count("webhook_endpoints").await, endpoints_before);
    // He sees only his own calls and agent.
    let (_, agents) = bob.api(Method::GET, "/v1/agents", Some(&org), None).await;
    assert_eq!(agents["data"].as_array().unwrap().len(), 1);
    assert_eq!(agents["data"][0]["id"], joined["agent_id"]);
    let alice_agent =
        alice.api(Method::GET, "/v1/me", None, None).await.1["memberships"][0]["agent_id"].clone();
    let (status, _) = bob
        .api(
            Method::GET,
            &format!("/v1/agents/{}", alice_agent.as_str().unwrap()),
            Some(&org),
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, body) = bob
        .api(
            Method::POST,
            "/v1/calls",
            Some(&org),
            Some(json!({"to": "+14155550123", "agent_id": alice_agent})),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("resource_missing")),
        "{body}"
    );

    // Alice's phone and call are invisible to Bob, the agent; so is her idempotency key.
    let (_, code) = alice
        .api(
            Method::POST,
            "/v1/pairing_codes",
            Some(&org),
            Some(json!({})),
        )
        .await;
    let (alice_phone, alice_device) = app
        .pair_device_with_code(code["code"].as_str().unwrap(), "Alice's phone")
        .await;
    let _stream = live_stream(&alice_phone).await;
    let r = alice
        .http
        .post(format!("{}/v1/calls", app.url))
        .header(ORIGIN, &app.url)
        .header("Pushdial-Organization", &org)
        .header("Idempotency-Key", "same-key")
        .json(&json!({"to": "+14155550123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let alice_call: Value = r.json().await.unwrap();
    let call_id = alice_call["id"].as_str().unwrap();
    for (method, path) in [
        (Method::GET, format!("/v1/calls/{call_id}")),
        (Method::GET, format!("/v1/calls/{call_id}/events")),
        (Method::POST, format!("/v1/calls/{call_id}/cancel")),
        (Method::GET, format!("/v1/devices/{alice_device}")),
        (Method::DELETE, format!("/v1/devices/{alice_device}")),
    ] {
        let (status, body) = bob.api(method.clone(), &path, Some(&org), None).await;
        assert_eq!(status, 404, "{method} {path}: {body}");
    }
    let (status, _) = bob
        .api(
            Method::POST,
            "/v1/pairing_codes",
            Some(&org),
            Some(json!({"agent_id": alice_agent})),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = bob.api(Method::GET, "/v1/events", Some(&org), None).await;
    assert_eq!(status, 403);
    let (_, calls) = bob.api(Method::GET, "/v1/calls", Some(&org), None).await;
    assert_eq!(calls["data"], json!([]));
    let (_, devices) = bob.api(Method::GET, "/v1/devices", Some(&org), None).await;
    assert_eq!(devices["data"], json!([]));
    let r = bob
        .http
        .post(format!("{}/v1/calls", app.url))
        .header(ORIGIN, &app.url)
        .header("Pushdial-Organization", &org)
        .header("Idempotency-Key", "same-key")
        .json(&json!({"to": "+14155550123"}))
        .send()
        .await
        .unwrap();
    let replayed: Value = r.json().await.unwrap();
    assert_ne!(replayed["id"], alice_call["id"], "{replayed}");
    assert_eq!(replayed["code"], "no_device_reachable");
    // His own phone he pairs, sees and revokes.
    let (_, code) = bob
        .api(
            Method::POST,
            "/v1/pairing_codes",
            Some(&org),
            Some(json!({})),
        )
        .await;
    let (_, bob_device) = app
        .pair_device_with_code(code["code"].as_str().unwrap(), "Bob's phone")
        .await;
    let (_, devices) = bob.api(Method::GET, "/v1/devices", Some(&org), None).await;
    assert_eq!(devices["data"][0]["id"], bob_device.as_str());
    let (status, revoked) = bob
        .api(
            Method::DELETE,
            &format!("/v1/devices/{bob_device}"),
            Some(&org),
            None,
        )
        .await;
    assert_eq!(status, 200, "{revoked}");
    // An agent cannot even tell who is a member.
    let (status, _) = bob
        .api(
            Method::DELETE,
            "/v1/members/usr_00000000000000000000000000",
            Some(&org),
            None,
        )
        .await;
    assert_eq!(status, 403);

    // A member of this organization with a session, naming another organization: 404.
    let (_, other_org, _) = owner_of_new_org(&app, "dave").await;
    let (status, body) = bob
        .api(Method::GET, "/v1/calls", Some(&other_org), None)
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, _) = alice
        .api(Method::GET, "/v1/members", Some(&other_org), None)
        .await;
    assert_eq!(status, 404);

    // The last owner cannot leave, nor be demoted.
    let (status, body) = alice
        .api(
            Method::DELETE,
            &format!("/v1/members/{alice_id}"),
            Some(&org),
            None,
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("last_owner")),
        "{body}"
    );
    let (status, body) = alice
        .api(
            Method::PATCH,
            &format!("/v1/members/{alice_id}"),
            Some(&org),
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (409, Some("last_owner")));
    // Admins manage agents but not owners.
    let (status, _) = alice
        .api(
            Method::PATCH,
            &format!("/v1/members/{bob_id}"),
            Some(&org),
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = bob
        .api(
            Method::PATCH,
            &format!("/v1/members/{alice_id}"),
            Some(&org),
            Some(json!({"role": "agent"})),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("role_forbidden"))
    );
    let (status, _) = bob
        .api(
            Method::PATCH,
            &format!("/v1/members/{bob_id}"),
            Some(&org),
            Some(json!({"role": "owner"})),
        )
        .await;
    assert_eq!(status, 403, "an admin cannot make himself owner");
    // Nor use or manage an owner's phones.
    let (status, body) = bob
        .api(
            Method::POST,
            "/v1/pairing_codes",
            Some(&org),
            Some(json!({"agent_id": alice_agent})),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("role_forbidden"))
    );
    let (status, _) = bob
        .api(
            Method::DELETE,
            &format!("/v1/devices/{alice_device}"),
            Some(&org),
            None,
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = bob
        .api(
            Method::POST,
            "/v1/calls",
            Some(&org),
            Some(json!({"to": "+14155550123", "agent_id": alice_agent})),
        )
        .await;
    assert_eq!(status, 403);
    // With a second owner, Alice may leave.
    assert_eq!(
        alice
            .api(
                Method::PATCH,
                &format!("/v1/members/{bob_id}"),
                Some(&org),
                Some(json!({"role": "owner"}))
            )
            .await
            .0,
        200
    );
    let (status, left) = alice
        .api(
            Method::DELETE,
            &format!("/v1/members/{alice_id}"),
            Some(&org),
            None,
        )
        .await;
    assert_eq!(status, 200, "{left}");
    assert_eq!(
        alice
            .api(Method::GET, "/v1/calls", Some(&org), None)
            .await
            .0,
        404
    );

    let (_, log) = bob
        .api(Method::GET, "/v1/audit_events?limit=100", Some(&org), None)
        .await;
    let actions: Vec<&str> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for expected in [
        "member.invited",
        "member.joined",
        "invitation.revoked",
        "member.role_changed",
        "member.left",
    ] {
        assert!(
            actions.contains(&expected),
            "{expected} missing from {actions:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_are_shown_once_rolled_with_overlap_and_revoked() {
    let app = TestApp::spawn().await;
    let (status, created) = app
        .api(
            Method::POST,
            "/v1/api_keys",
            Some(json!({"name": "CRM sync", "type": "secret"})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("pd_sk_"));
    assert_eq!(
        created["redacted"],
        format!("pd_sk_…{}", &secret[secret.len() - 4..])
    );
    let id = created["id"].as_str().unwrap().to_owned();
    let with = |key: &str, path: &str| {
        let (key, path, url) = (key.to_owned(), path.to_owned(), app.url.clone());
        async move {
            let r = reqwest::Client::new()
                .get(format!("{url}{path}"))
                .bearer_auth(key)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or_default())
        }
    };
    assert_eq!(with(&secret, "/v1/calls").await.0, 200);
    // Never shown again; its use is recorded.
    let (_, listed) = app
        .api(Method::GET, &format!("/v1/api_keys/{id}"), None)
        .await;
    assert_eq!(listed["secret"], Value::Null);
    eventually(
        Duration::from_secs(5),
        "last use to be recorded",
        || async {
            let (_, k) = app
                .api(Method::GET, &format!("/v1/api_keys/{id}"), None)
                .await;
            (!k["last_used_at"].is_null()).then_some(())
        },
    )
    .await;

    // Rolled with an hour of overlap: both work; the old one says when it stops.
    let (status, rolled) = app
        .api(
            Method::POST,
            &format!("/v1/api_keys/{id}/roll"),
            Some(json!({"expires_in": 3600})),
        )
        .await;
    assert_eq!(status, 201, "{rolled}");
    let new_secret = rolled["secret"].as_str().unwrap().to_owned();
    assert_eq!(rolled["name"], "CRM sync");
    assert_eq!(with(&secret, "/v1/calls").await.0, 200);
    assert_eq!(with(&new_secret, "/v1/calls").await.0, 200);
    let (_, old) = app
        .api(Method::GET, &format!("/v1/api_keys/{id}"), None)
        .await;
    assert_eq!(old["status"], "expiring");
    assert_eq!(old["rolled_to"], rolled["id"]);
    // Overlap beyond 7 days is refused, and nothing is written.
    let keys = app.count("api_keys").await;
    let (status, _) = app
        .api(
            Method::POST,
            &format!("/v1/api_keys/{}/roll", rolled["id"].as_str().unwrap()),
            Some(json!({"expires_in": 8 * 86400})),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(app.count("api_keys").await, keys);
    // Rolled with no overlap: the old key stops at once.
    let new_id = rolled["id"].as_str().unwrap().to_owned();
    let (_, third) = app
        .api(
            Method::POST,
            &format!("/v1/api_keys/{new_id}/roll"),
            Some(json!({})),
        )
        .await;
    let (status, body) = with(&new_secret, "/v1/calls").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("api_key_expired"))
    );
    // Revoked: stops at once.
    let third_secret = third["secret"].as_str().unwrap().to_owned();
    let third_id = third["id"].as_str().unwrap();
    assert_eq!(
        app.api(Method::DELETE, &format!("/v1/api_keys/{third_id}"), None)
            .await
            .0,
        200
    );
    let (status, body) = with(&third_secret, "/v1/calls").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("api_key_revoked"))
    );
    // The list shows active keys; inactive ones on request.
    let (_, active) = app.api(Method::GET, "/v1/api_keys", None).await;
    assert!(active["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|k| k["status"] == "active" || k["status"] == "expiring"));
    let (_, all) = app
        .api(
            Method::GET,
            "/v1/api_keys?include_inactive=true&limit=100",
            None,
        )
        .await;
    assert_eq!(
        all["data"].as_array().unwrap().len() as i64,
        app.count("api_keys").await
    );
    // Publishable keys are for the widget only.
    let (_, pk) = app
        .api(
            Method::POST,
            "/v1/api_keys",
            Some(json!({"name": "widget", "type": "publishable"})),
        )
        .await;
    assert!(pk["secret"].as_str().unwrap().starts_with("pd_pk_"));
    assert_eq!(
        with(pk["secret"].as_str().unwrap(), "/v1/calls").await.0,
        403
    );
    // Bad input writes nothing.
    let keys = app.count("api_keys").await;
    for body in [
        json!({"name": "", "type": "secret"}),
        json!({"name": "x", "type": "root"}),
        json!({"name": "x"}),
    ] {
        assert_eq!(
            app.api(Method::POST, "/v1/api_keys", Some(body)).await.0,
            400
        );
    }
    assert_eq!(app.count("api_keys").await, keys);

    let (_, log) = app
        .api(Method::GET, "/v1/audit_events?limit=100", None)
        .await;
    let actions: Vec<&str> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions.iter().filter(|a| **a == "api_key.rolled").count(),
        2
    );
    assert!(actions.contains(&"api_key.revoked") && actions.contains(&"api_key.created"));
    let entry = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "api_key.revoked")
        .unwrap();
    assert_eq!(entry["actor_type"], "api_key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitations_are_emailed_when_smtp_is_configured() {
    let (smtp, inbox) = fake_smtp().await;
    let (app, _provider) = app_with_oidc(move |c| c.smtp_url = Some(smtp)).await;
    let (alice, org, _) = owner_of_new_org(&app, "alice").await;
    let (status, inv) = alice
        .api(
            Method::POST,
            "/v1/invitations",
            Some(&org),
            Some(json!({"role": "admin", "email": "bob@example.test"})),
        )
        .await;
    assert_eq!(status, 201, "{inv}");
    assert_eq!(inv["delivery"], "email");
    assert_eq!(inv["url"], Value::Null, "the link went by e-mail only");
    // Long lines may be folded (quoted-printable soft breaks): unfold before reading.
    let mail = inbox
        .lock()
        .await
        .pop()
        .expect("an e-mail was sent")
        .replace("=\n", "");
    assert!(mail.contains("bob@example.test"), "{mail}");
    let start = mail.find("pd_inv_").expect("the link is in the e-mail");
    let token: String = mail[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    let bob = Browser::new(&app);
    bob.sign_in("bob").await;
    let (status, joined) = bob
        .api(
            Method::POST,
            "/v1/invitations/accept",
            None,
            Some(json!({"token": token})),
        )
        .await;
    assert_eq!(status, 201, "{joined}");
    assert_eq!(joined["role"], "admin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_sign_in_and_linking_a_second_identity() {
    let github = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let gh = github.clone();
    let (app, provider) = app_with_oidc(move |c| {
        let redirect = format!("http://{}/auth/github/callback", c.listen);
        let base = fake_github(redirect);
        c.github_client_id = Some("gh-client".into());
        c.github_client_secret = Some("gh-secret".into());
        c.github_url = base.clone();
        c.github_api_url = format!("{base}/api");
        *gh.lock().unwrap() = base;
    })
    .await;
    let github = github.lock().unwrap().clone();
    let (_, providers) = app.api(Method::GET, "/auth/providers", None).await;
    let ids: Vec<&str> = providers["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["oidc", "github"]);

    let b = Browser::new(&app);
    let callback = b.through("/auth/github/login", "", |u| u).await;
    let r = b.http.get(&callback).send().await.unwrap();
    // Asked for no page: the browser lands in the console.
    assert_eq!(
        r.headers().get(LOCATION).map(|v| v.to_str().unwrap()),
        Some("/console/")
    );
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{:?}", r.text().await);
    let (_, me) = b.api(Method::GET, "/v1/me", None, None).await;
    assert_eq!(me["name"], "The Octocat");
    assert_eq!(
        me["email"], "octo@example.test",
        "the primary verified address"
    );
    assert_eq!(me["identities"][0]["provider"], "github");
    assert_eq!(me["identities"][0]["issuer"], github.as_str());
    assert_eq!(me["identities"][0]["subject"], "4242");

    // The same person links their company sign-in; either one then opens the account.
    let callback = b.through("/auth/oidc/login?link=true", "octo", |u| u).await;
    assert_eq!(
        b.http.get(&callback).send().await.unwrap().status(),
        StatusCode::SEE_OTHER
    );
    let (_, me2) = b.api(Method::GET, "/v1/me", None, None).await;
    assert_eq!(me2["id"], me["id"]);
    assert_eq!(me2["identities"].as_array().unwrap().len(), 2);
    assert_eq!(me2["identities"][1]["issuer"], provider.issuer.as_str());
    let other = Browser::new(&app);
    other.sign_in("octo").await;
    assert_eq!(
        other.api(Method::GET, "/v1/me", None, None).await.1["id"],
        me["id"]
    );
    // An identity that belongs to someone else cannot be linked.
    let mallory = Browser::new(&app);
    mallory.sign_in("mallory").await;
    // (prompt=login: the provider would otherwise reuse mallory's own sign-in there)
    let callback = mallory
        .through("/auth/oidc/login?link=true", "octo", |u| {
            format!("{u}&prompt=login")
        })
        .await;
    let r = mallory.http.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), 409);
    // Linking needs a session.
    let r = Browser::new(&app)
        .http
        .get(format!("{}/auth/oidc/login?link=true", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Linking is for fresh sign-ins only.
    sqlx::query("update sessions set created_at = now() - interval '1 hour'")
        .execute(&app.db)
        .await
        .unwrap();
    forget_redis_sessions(&app).await;
    let r = b
        .http
        .get(format!("{}/auth/oidc/login?link=true", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "reauthentication_required");
    // Unlinking: allowed while another way in remains.
    let github_identity = me2["identities"][0]["id"].as_str().unwrap();
    let (status, _) = b
        .api(
            Method::DELETE,
            &format!("/v1/me/identities/{github_identity}"),
            None,
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (_, me3) = b.api(Method::GET, "/v1/me", None, None).await;
    assert_eq!(me3["identities"].as_array().unwrap().len(), 1);
    let last = me3["identities"][0]["id"].as_str().unwrap();
    let (status, body) = b
        .api(
            Method::DELETE,
            &format!("/v1/me/identities/{last}"),
            None,
            None,
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("last_identity"))
    );
    assert_eq!(app.count("users").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_active_session_still_ends_at_its_absolute_limit() {
    let (app, _provider) = app_with_oidc(|c| c.session_lifetime = Duration::from_secs(3)).await;
    let b = Browser::new(&app);
    let r = b.sign_in("alice").await;
    let cookie = set_cookies(&r)
        .into_iter()
        .find(|c| c.starts_with("pd_session="))
        .unwrap();
    assert!(cookie.contains("Max-Age=3"), "{cookie}");
    let started = std::time::Instant::now();
    // Busy the whole time: the idle timeout never applies, the absolute limit does.
    loop {
        let (status, _) = b.api(Method::GET, "/v1/me", None, None).await;
        if status == 401 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the session never ended"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        started.elapsed() >= Duration::from_millis(2500),
        "ended early: {:?}",
        started.elapsed()
    );
    // Ended sessions are purged a day later (by the worker's periodic purge).
    assert_eq!(app.count("sessions").await, 1);
    sqlx::query("update sessions set expires_at = now() - interval '2 days'")
        .execute(&app.db)
        .await
        .unwrap();
    let mut conn = app.db.acquire().await.unwrap();
    pushdial_core::queue::purge(&mut conn).await.unwrap();
    assert_eq!(app.count("sessions").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invitation_that_cannot_be_emailed_is_withdrawn() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let (app, _provider) =
        app_with_oidc(move |c| c.smtp_url = Some(format!("smtp://127.0.0.1:{port}"))).await;
    let (alice, org, _) = owner_of_new_org(&app, "alice").await;
    let (status, body) = alice
        .api(
            Method::POST,
            "/v1/invitations",
            Some(&org),
            Some(json!({"role": "agent", "email": "bob@example.test"})),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("email_unavailable")),
        "{body}"
    );
    let (_, list) = alice
        .api(Method::GET, "/v1/invitations", Some(&org), None)
        .await;
    assert_eq!(list["data"][0]["status"], "revoked", "{list}");
    // Without an address the link is shown, SMTP or not.
    let (status, inv) = alice
        .api(
            Method::POST,
            "/v1/invitations",
            Some(&org),
            Some(json!({"role": "agent"})),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(inv["delivery"], "link");
}

/// Each api process keeps what secret keys resolve to in memory; a change made anywhere
/// (another replica, `pushdial admin`, SQL by hand) reaches every process through the
/// database's notifications, so a revoked key stops everywhere and a new plan limit applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_changes_reach_every_api_process() {
    let app = TestApp::spawn().await;
    let (replica, _replica_stop) = app.spawn_api_replica().await;
    let new_key = |name: &'static str| {
        let app = &app;
        async move {
            let (status, created) = app
                .api(
                    Method::POST,
                    "/v1/api_keys",
                    Some(json!({"name": name, "type": "secret"})),
                )
                .await;
            assert_eq!(status, 201, "{created}");
            (
                created["id"].as_str().unwrap().to_owned(),
                created["secret"].as_str().unwrap().to_owned(),
            )
        }
    };
    let on_replica = |key: String| {
        let url = format!("{replica}/v1/agents");
        async move {
            let r = reqwest::Client::new()
                .get(url)
                .bearer_auth(key)
                .send()
                .await
                .unwrap();
            let policy = r
                .headers()
                .get("ratelimit-policy")
                .map(|v| v.to_str().unwrap().to_owned());
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or_default();
            (status, body["code"].as_str().map(str::to_owned), policy)
        }
    };
    // The cache is in play: once the replica listens for changes (soon after it starts),
    // a revocation that notifies nobody goes unnoticed there.
    let quiet_revoke = |id: String| {
        let db = app.db.clone();
        async move {
            let mut tx = db.begin().await.unwrap();
            sqlx::query("alter table api_keys disable trigger api_keys_changed")
                .execute(&mut *tx)
                .await
                .unwrap();
            sqlx::query("update api_keys set revoked_at = now() where id = $1")
                .bind(&id)
                .execute(&mut *tx)
                .await
                .unwrap();
            sqlx::query("alter table api_keys enable trigger api_keys_changed")
                .execute(&mut *tx)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
    };
    eventually(
        Duration::from_secs(10),
        "the replica to answer a key from memory",
        || async {
            let (quiet_id, quiet_secret) = new_key("quiet").await;
            assert_eq!(on_replica(quiet_secret.clone()).await.0, 200);
            quiet_revoke(quiet_id).await;
            (on_replica(quiet_secret).await.0 == 200).then_some(())
        },
    )
    .await;

    let (id, secret) = new_key("replica").await;
    assert_eq!(on_replica(secret.clone()).await.0, 200);
    // Revoked through the first process: the replica refuses it.
    let (status, _) = app
        .api(Method::DELETE, &format!("/v1/api_keys/{id}"), None)
        .await;
    assert_eq!(status, 200);
    eventually(
        Duration::from_secs(2),
        "the replica to refuse the key",
        || {
            let secret = secret.clone();
            async move {
                let (status, code, _) = on_replica(secret).await;
                (status == 401 && code.as_deref() == Some("api_key_revoked")).then_some(())
            }
        },
    )
    .await;

    // A plan limit changed by hand reaches the replica's rate-limit policy.
    let (_, other_secret) = new_key("limits").await;
    assert_eq!(on_replica(other_secret.clone()).await.0, 200);
    sqlx::query("update organizations set limit_api_per_second = 7 where id = $1")
        .bind(&app.org.org_id)
        .execute(&app.db)
        .await
        .unwrap();
    eventually(
        Duration::from_secs(2),
        "the new limit on the replica",
        || {
            let secret = other_secret.clone();
            async move {
                let (_, _, policy) = on_replica(secret).await;
                (policy.as_deref() == Some("\"org\";q=7;w=1")).then_some(())
            }
        },
    )
    .await;
}
