//! Attacks of issue 17 (keys), each kept as a test written as the attack.
//!
//! Hole 4: a key was stronger than its creator. An admin, refused an owner's phones in the
//! console, made a secret key (which acted as an admin of its own, for ever) and with it
//! paired their phone to the owner's agent — receiving the owner's calls and numbers — and
//! the key kept working after the admin was removed. A key now acts with its creator's
//! role as it is now, and is revoked when they leave (unless an owner took it over).

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::accounts::{owner_of_new_org, Browser};
use crate::fakes::oidc::app_with_oidc;
use crate::harness::*;

/// A JSON request with a secret key: (status, body).
async fn with_key(
    app: &TestApp,
    key: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .request(method, format!("{}{path}", app.url))
        .bearer_auth(key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or_default())
}

/// An organization of Alice (owner, with a phone paired to her agent) and Bob (admin).
struct Org {
    alice: Browser,
    bob: Browser,
    org: String,
    bob_id: String,
    alice_agent: String,
    bob_agent: String,
    alice_device: String,
    /// Alice's phone, connected: a call through it would be offered.
    _alice_stream: pushdial_sdk::Stream,
}

async fn org_with_owner_and_admin(app: &TestApp) -> Org {
    let (alice, org, _) = owner_of_new_org(app, "alice").await;
    let (status, inv) = alice
        .api(
            Method::POST,
            "/v1/invitations",
            Some(&org),
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_eq!(status, 201, "{inv}");
    let token = inv["url"].as_str().unwrap().split_once('#').unwrap().1;
    let bob = Browser::new(app);
    assert_eq!(bob.sign_in("bob").await.status(), StatusCode::SEE_OTHER);
    let (status, joined) = bob
        .api(
            Method::POST,
            "/v1/invitations/accept",
            None,
            Some(json!({"token": token})),
        )
        .await;
    assert_eq!(status, 201, "{joined}");
    let (_, me) = alice.api(Method::GET, "/v1/me", None, None).await;
    let alice_agent = me["memberships"][0]["agent_id"]
        .as_str()
        .unwrap()
        .to_owned();
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
    let alice_stream = live_stream(&alice_phone).await;
    Org {
        alice,
        bob,
        org,
        bob_id: joined["user_id"].as_str().unwrap().to_owned(),
        alice_agent,
        bob_agent: joined["agent_id"].as_str().unwrap().to_owned(),
        alice_device,
        _alice_stream: alice_stream,
    }
}

/// A secret key made by a signed-in member: (id, secret).
async fn key_of(member: &Browser, org: &str, name: &str) -> (String, String) {
    let (status, key) = member
        .api(
            Method::POST,
            "/v1/api_keys",
            Some(org),
            Some(json!({"name": name, "type": "secret"})),
        )
        .await;
    assert_eq!(status, 201, "{key}");
    (
        key["id"].as_str().unwrap().to_owned(),
        key["secret"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admins_key_cannot_pair_a_phone_to_an_owners_agent() {
    let (app, _provider) = app_with_oidc(|_| {}).await;
    let o = org_with_owner_and_admin(&app).await;
    let (key_id, bob_key) = key_of(&o.bob, &o.org, "bob's integration").await;
    let (_, listed) = o
        .alice
        .api(
            Method::GET,
            &format!("/v1/api_keys/{key_id}"),
            Some(&o.org),
            None,
        )
        .await;
    assert_eq!(listed["created_by"], o.bob_id.as_str());
    assert_eq!(
        (listed["creator_role"].as_str(), listed["role"].as_str()),
        (Some("admin"), Some("admin"))
    );

    // The attack: Bob's key pairs his phone to Alice's agent (201 before), and the rest of
    // what an admin may not do to an owner.
    let before = app.counts().await;
    let (status, body) = with_key(
        &app,
        &bob_key,
        Method::POST,
        "/v1/pairing_codes",
        Some(json!({"agent_id": o.alice_agent})),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("role_forbidden")),
        "{body}"
    );
    for (method, path, body) in [
        (
            Method::DELETE,
            format!("/v1/devices/{}", o.alice_device),
            None,
        ),
        (
            Method::POST,
            "/v1/calls".to_owned(),
            Some(json!({"to": "+14155550123", "agent_id": o.alice_agent})),
        ),
        (
            Method::POST,
            "/v1/invitations".to_owned(),
            Some(json!({"role": "owner"})),
        ),
        (
            Method::PATCH,
            format!("/v1/members/{}", o.bob_id),
            Some(json!({"role": "owner"})),
        ),
    ] {
        let (status, problem) = with_key(&app, &bob_key, method.clone(), &path, body).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (403, Some("role_forbidden")),
            "{method} {path}: {problem}"
        );
    }
    // A key made through Bob's key is Bob's too, not the organization's.
    let (status, minted) = with_key(
        &app,
        &bob_key,
        Method::POST,
        "/v1/api_keys",
        Some(json!({"name": "minted", "type": "secret"})),
    )
    .await;
    assert_eq!(status, 201, "{minted}");
    assert_eq!(minted["created_by"], o.bob_id.as_str());
    assert_eq!(minted["role"], "admin");
    let minted_secret = minted["secret"].as_str().unwrap();
    let after_mint = app.counts().await;
    let (status, body) = with_key(
        &app,
        minted_secret,
        Method::POST,
        "/v1/pairing_codes",
        Some(json!({"agent_id": o.alice_agent})),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("role_forbidden")),
        "{body}"
    );
    assert_eq!(app.counts().await, after_mint, "nothing written");
    let mut expected = before.clone();
    for (t, n) in &mut expected {
        // The minted key, and its audit entry.
        if t == "api_keys" || t == "audit_events" {
            *n += 1;
        }
    }
    assert_eq!(after_mint, expected, "only the minted key was written");
    // Nor may the admin roll the owner's key (its replacement would be his).
    let (alice_key, _) = key_of(&o.alice, &o.org, "alice's integration").await;
    let (status, body) = o
        .bob
        .api(
            Method::POST,
            &format!("/v1/api_keys/{alice_key}/roll"),
            Some(&o.org),
            Some(json!({})),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("role_forbidden"))
    );

    // Bob's key still does what Bob may: pair a phone to his own agent.
    let (status, code) = with_key(
        &app,
        &bob_key,
        Method::POST,
        "/v1/pairing_codes",
        Some(json!({"agent_id": o.bob_agent})),
    )
    .await;
    assert_eq!(status, 201, "{code}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_is_demoted_with_its_creator() {
    let (app, _provider) = app_with_oidc(|_| {}).await;
    let o = org_with_owner_and_admin(&app).await;
    let (_, bob_key) = key_of(&o.bob, &o.org, "bob's integration").await;
    // Another api process, which keeps what keys resolve to in memory.
    let (replica, _replica_stop) = app.spawn_api_replica().await;
    let on_replica = |method: Method, body: Option<Value>| {
        let (url, key) = (format!("{replica}/v1/webhook_endpoints"), bob_key.clone());
        async move {
            let mut req = reqwest::Client::new().request(method, url).bearer_auth(key);
            if let Some(b) = body {
                req = req.json(&b);
            }
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or_default())
        }
    };
    // A role changed without notifying (the trigger off) goes unnoticed there once the
    // replica answers from memory: the cache is in play.
    // `quiet`: with the trigger off, so that no api process hears of it.
    let make = |role: &'static str, quiet: bool| {
        let (db, org, user) = (app.db.clone(), o.org.clone(), o.bob_id.clone());
        async move {
            let mut tx = db.begin().await.unwrap();
            if quiet {
                sqlx::query("alter table memberships disable trigger memberships_changed")
                    .execute(&mut *tx)
                    .await
                    .unwrap();
            }
            sqlx::query("update memberships set role = $3 where org_id = $1 and user_id = $2")
                .bind(&org)
                .bind(&user)
                .bind(role)
                .execute(&mut *tx)
                .await
                .unwrap();
            if quiet {
                sqlx::query("alter table memberships enable trigger memberships_changed")
                    .execute(&mut *tx)
                    .await
                    .unwrap();
            }
            tx.commit().await.unwrap();
        }
    };
    eventually(
        std::time::Duration::from_secs(10),
        "the replica to answer the key from memory",
        || async {
            let admin_now = on_replica(Method::GET, None).await.0 == 200;
            let cached = if admin_now {
                make("agent", true).await;
                on_replica(Method::GET, None).await.0 == 200
            } else {
                false
            };
            // Back to admin, heard by everyone (a stale entry cannot linger).
            make("admin", false).await;
            cached.then_some(())
        },
    )
    .await;

    // Alice demotes Bob: his key is an agent's at once, on every api process.
    let (status, _) = o
        .alice
        .api(
            Method::PATCH,
            &format!("/v1/members/{}", o.bob_id),
            Some(&o.org),
            Some(json!({"role": "agent"})),
        )
        .await;
    assert_eq!(status, 200);
    eventually(
        std::time::Duration::from_secs(2),
        "the replica to refuse the demoted key",
        || async {
            let (status, body) = on_replica(
                Method::POST,
                Some(json!({"url": "https://example.com/hook"})),
            )
            .await;
            assert_ne!(status, 201, "{body}");
            (status == 403 && body["code"] == "role_forbidden").then_some(())
        },
    )
    .await;
    let before = app.counts().await;
    let (status, body) = with_key(
        &app,
        &bob_key,
        Method::POST,
        "/v1/webhook_endpoints",
        Some(json!({"url": "https://example.com/hook"})),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("role_forbidden")),
        "{body}"
    );
    // As an agent it sees only its creator's agent.
    let (status, agents) = with_key(&app, &bob_key, Method::GET, "/v1/agents", None).await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = agents["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [o.bob_agent.as_str()]);
    assert_eq!(app.counts().await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_member_revokes_the_keys_they_made() {
    let (app, _provider) = app_with_oidc(|_| {}).await;
    let o = org_with_owner_and_admin(&app).await;
    let (key_id, bob_key) = key_of(&o.bob, &o.org, "bob's integration").await;
    let (status, pk) = o
        .bob
        .api(
            Method::POST,
            "/v1/api_keys",
            Some(&o.org),
            Some(json!({"name": "bob's widget key", "type": "publishable"})),
        )
        .await;
    assert_eq!(status, 201, "{pk}");
    // Used (and cached) while Bob is a member.
    assert_eq!(
        with_key(&app, &bob_key, Method::GET, "/v1/calls", None)
            .await
            .0,
        200
    );

    let (status, removed) = o
        .alice
        .api(
            Method::DELETE,
            &format!("/v1/members/{}", o.bob_id),
            Some(&o.org),
            None,
        )
        .await;
    assert_eq!(status, 200, "{removed}");
    assert_eq!(removed["revoked_api_keys"], json!([key_id]));

    // The attack: the removed admin's key, used after the removal (200 before).
    let before = app.counts().await;
    let (status, body) = with_key(
        &app,
        &bob_key,
        Method::POST,
        "/v1/pairing_codes",
        Some(json!({"agent_id": o.alice_agent})),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("api_key_revoked")),
        "{body}"
    );
    let (status, _) = with_key(&app, &bob_key, Method::GET, "/v1/calls", None).await;
    assert_eq!(status, 401);
    assert_eq!(app.counts().await, before, "nothing written");

    // The audit log says so; the publishable key stays with its widget use.
    let (_, log) = o
        .alice
        .api(
            Method::GET,
            "/v1/audit_events?action=api_key.revoked",
            Some(&o.org),
            None,
        )
        .await;
    let entry = &log["data"][0];
    assert_eq!(entry["target_id"], key_id.as_str(), "{log}");
    assert_eq!(entry["data"]["reason"], "creator_removed");
    let (_, log) = o
        .alice
        .api(
            Method::GET,
            "/v1/audit_events?action=member.removed",
            Some(&o.org),
            None,
        )
        .await;
    assert_eq!(log["data"][0]["data"]["revoked_api_keys"], json!([key_id]));
    let (_, pk_now) = o
        .alice
        .api(
            Method::GET,
            &format!("/v1/api_keys/{}", pk["id"].as_str().unwrap()),
            Some(&o.org),
            None,
        )
        .await;
    assert_eq!(pk_now["status"], "active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_who_took_over_a_key_keeps_it_after_its_creator_leaves() {
    let (app, _provider) = app_with_oidc(|_| {}).await;
    let o = org_with_owner_and_admin(&app).await;
    let (key_id, bob_key) = key_of(&o.bob, &o.org, "shared integration").await;
    // Only owners take keys over.
    let before = app.counts().await;
    let (status, body) = o
        .bob
        .api(
            Method::POST,
            &format!("/v1/api_keys/{key_id}/transfer"),
            Some(&o.org),
            None,
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("role_forbidden"))
    );
    assert_eq!(app.counts().await, before);

    let (status, moved) = o
        .alice
        .api(
            Method::POST,
            &format!("/v1/api_keys/{key_id}/transfer"),
            Some(&o.org),
            None,
        )
        .await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["role"], "owner");
    let (_, log) = o
        .alice
        .api(
            Method::GET,
            "/v1/audit_events?action=api_key.transferred",
            Some(&o.org),
            None,
        )
        .await;
    assert_eq!(log["data"][0]["data"]["from"], o.bob_id.as_str(), "{log}");

    let (status, removed) = o
        .alice
        .api(
            Method::DELETE,
            &format!("/v1/members/{}", o.bob_id),
            Some(&o.org),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(removed["revoked_api_keys"], json!([]));
    // It works, now with the owner's rights: the owner's agent is open to it.
    let (status, code) = with_key(
        &app,
        &bob_key,
        Method::POST,
        "/v1/pairing_codes",
        Some(json!({"agent_id": o.alice_agent})),
    )
    .await;
    assert_eq!(status, 201, "{code}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_organizations_own_key_acts_as_an_owner() {
    let (app, _provider) = app_with_oidc(|_| {}).await;
    // `pushdial admin create-org`'s key (the harness makes the organization that way).
    let (_, keys) = app.api(Method::GET, "/v1/api_keys", None).await;
    let own = keys["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["type"] == "secret")
        .unwrap();
    assert_eq!(
        (own["created_by"].clone(), own["role"].as_str()),
        (Value::Null, Some("owner"))
    );
    // Owner things: inviting an owner, taking a key over.
    let (status, inv) = app
        .api(
            Method::POST,
            "/v1/invitations",
            Some(json!({"role": "owner"})),
        )
        .await;
    assert_eq!(status, 201, "{inv}");
    let (status, moved) = app
        .api(
            Method::POST,
            &format!("/v1/api_keys/{}/transfer", own["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["role"], "owner");
    // And the owner's agent is open to it: a member joining as owner through the
    // invitation gets a phone paired by this key (an admin's key is refused that).
    let carol = Browser::new(&app);
    carol.sign_in("carol").await;
    let token = inv["url"].as_str().unwrap().split_once('#').unwrap().1;
    let (status, joined) = carol
        .api(
            Method::POST,
            "/v1/invitations/accept",
            None,
            Some(json!({"token": token})),
        )
        .await;
    assert_eq!(status, 201, "{joined}");
    assert_eq!(joined["role"], "owner");
    let (status, code) = app
        .api(
            Method::POST,
            "/v1/pairing_codes",
            Some(json!({"agent_id": joined["agent_id"]})),
        )
        .await;
    assert_eq!(status, 201, "{code}");
}

/// A widget made through an admin's key is that admin's, not the organization's: its
/// publishable key acts as the admin's, and revoking it is refused for what it is (a
/// widget's key, retired with its widget), never as an owner's key the admin may not touch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_widget_made_through_an_admins_key_belongs_to_that_admin() {
    let (app, _provider) = app_with_oidc(|_| {}).await;
    let o = org_with_owner_and_admin(&app).await;
    let (_, bob_secret) = key_of(&o.bob, &o.org, "bob's").await;
    let (status, widget) = with_key(
        &app,
        &bob_secret,
        Method::POST,
        "/v1/widgets",
        Some(json!({"name": "Shop", "allowed_origins": ["https://shop.example"]})),
    )
    .await;
    assert_eq!(status, 201, "{widget}");
    let publishable = widget["publishable_key"].as_str().unwrap();
    let (_, keys) = with_key(&app, &bob_secret, Method::GET, "/v1/api_keys", None).await;
    let key = keys["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| {
            k["type"] == "publishable"
                && k["redacted"]
                    .as_str()
                    .and_then(|r| r.rsplit('…').next())
                    .is_some_and(|last4| publishable.ends_with(last4))
                && k["name"].as_str().unwrap_or("").starts_with("Widget:")
        })
        .cloned()
        .expect("the widget's key is listed");
    assert_eq!(key["created_by"], o.bob_id.as_str(), "{key}");
    assert_eq!(key["role"], "admin", "{key}");
    let before = app.counts().await;
    let (status, refused) = with_key(
        &app,
        &bob_secret,
        Method::DELETE,
        &format!("/v1/api_keys/{}", key["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (409, Some("key_in_use_by_widget")),
        "{refused}"
    );
    assert_eq!(app.counts().await, before, "nothing written");
}
