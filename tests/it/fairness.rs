//! Tenant fairness (issue 18): one organization's load never delays another's calls. The
//! attack: an organization points its webhook endpoints at a receiver that never answers
//! and keeps events coming, so that every delivery holds a worker slot until the timeout;
//! another organization's phones, woken by push, must still be offered their calls at
//! once, and its own webhooks must still arrive.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pushdial_sdk::CreateCall;

use crate::fakes::recorder::recorder;
use crate::fakes::tarpit::tarpit;
use crate::harness::*;

/// Call lane and bulk lane slots of the worker under attack: few, so that a few tarpit
/// deliveries would fill them all.
const SLOTS: usize = 4;

/// Webhook endpoints of the noisy organization (its plan allows them; the default is 20).
const ENDPOINTS: usize = 50;

/// Calls of the quiet organization, each to a phone woken by push.
const CALLS: usize = 8;

/// The noisy organization's deliveries due and waiting for a slot.
async fn backlog(app: &TestApp, org_id: &str) -> i64 {
    sqlx::query_scalar(
        "select count(*) from jobs j
         join webhook_messages m on m.id = (j.payload ->> 'message_id')::bigint
         where j.kind = 'webhook.deliver' and m.org_id = $1
           and j.lease_owner is null and j.dead_at is null and j.run_at <= now()",
    )
    .bind(org_id)
    .fetch_one(&app.db)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_tarpit_webhooks_never_delay_another_tenants_push_offers_or_webhooks() {
    let (push_url, pushed) = recorder(200).await;
    let app = TestApp::spawn_tuned(|c| {
        c.loopback_push_url = Some(push_url);
        c.webhook_allow_subnets = "127.0.0.0/8".into();
        c.worker_concurrency = SLOTS;
        c.webhook_concurrency = SLOTS;
        // Every delivery to the tarpit holds its slot this long.
        c.webhook_timeout = Duration::from_secs(5);
        c.job_lease = Duration::from_secs(10);
        // A push-woken phone that has not acked yet stays offered (no failover here).
        c.offer_timeout = Duration::from_secs(120);
        c.limit_push_per_device_per_minute = 1000;
        // A reaches its limit of test sends within the test.
        c.limit_webhook_sends_per_minute = 10;
    })
    .await;

    // A, the noisy organization: 50 endpoints (its plan allows them) on a tarpit,
    // subscribed to everything, and an agent whose calls add events to all of them.
    let noisy = app.client();
    sqlx::query("update organizations set limit_webhook_endpoints = $2 where id = $1")
        .bind(&app.org.org_id)
        .bind(ENDPOINTS as i32)
        .execute(&app.db)
        .await
        .unwrap();
    let tarpit_url = tarpit().await;
    let mut endpoints = Vec::new();
    for _ in 0..ENDPOINTS {
        let (status, body) = app
            .api(
                reqwest::Method::POST,
                "/v1/webhook_endpoints",
                Some(serde_json::json!({ "url": tarpit_url })),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        endpoints.push(body["id"].as_str().unwrap().to_owned());
    }
    let (noisy_agent, noisy_phone, _) = app.agent_with_device(&noisy, "Noisy").await;
    use_loopback_push(&noisy_phone, "noisy-phone").await;

    // A's flood: test events round its endpoints as fast as it is let, and calls.
    let flooding = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let answers: Arc<Mutex<HashMap<u16, u32>>> = Arc::default();
    let flood = {
        let (url, key) = (app.url.clone(), app.org.secret_key.clone());
        let (flooding, answers, endpoints) = (flooding.clone(), answers.clone(), endpoints.clone());
        let noisy = app.client();
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut i = 0usize;
            while flooding.load(std::sync::atomic::Ordering::Relaxed) {
                let endpoint = &endpoints[i % endpoints.len()];
                let r = http
                    .post(format!("{url}/v1/webhook_endpoints/{endpoint}/test"))
                    .bearer_auth(&key)
                    .send()
                    .await
                    .unwrap();
                *answers
                    .lock()
                    .unwrap()
                    .entry(r.status().as_u16())
                    .or_default() += 1;
                if i.is_multiple_of(10) {
                    let to = format!("+1415555{:04}", 1000 + i / 10);
                    let _ = noisy
                        .create_call(&CreateCall::for_agent(to, &noisy_agent), None)
                        .await;
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    // Until A's deliveries wait in line: more due than the worker has slots.
    eventually(
        Duration::from_secs(20),
        "A's backlog of deliveries",
        || async { (backlog(&app, &app.org.org_id).await > 2 * SLOTS as i64).then_some(()) },
    )
    .await;

    // B, the quiet organization: a phone woken by push, and a webhook receiver.
    let quiet_org = app.other_org().await;
    let quiet = app.client_for(&quiet_org);
    let (hook_url, hooks) = recorder(200).await;
    let (status, body) = reqwest::Client::new()
        .post(format!("{}/v1/webhook_endpoints", app.url))
        .bearer_auth(&quiet_org.secret_key)
        .json(&serde_json::json!({ "url": hook_url, "event_types": ["call.offered"] }))
        .send()
        .await
        .map(|r| (r.status().as_u16(), r))
        .unwrap();
    assert_eq!(status, 201, "{:?}", body.text().await);
    let (agent, phone, _) = app.agent_with_device(&quiet, "Quiet").await;
    use_loopback_push(&phone, "quiet-phone").await;
    let mut calls = Vec::new();
    for i in 0..CALLS {
        let mut create = CreateCall::for_agent(format!("+1212555{:04}", 1000 + i), &agent);
        create.expires_in = Some(10);
        let call = quiet.create_call(&create, None).await.unwrap();
        assert_eq!(
            call.status, "queued",
            "no socket: the worker wakes the phone"
        );
        calls.push(call);
    }

    // Every call of B is offered — its phone woken by push — and B's webhook of each offer
    // arrives, while A's deliveries still wait for their turn.
    let offered = eventually(Duration::from_secs(30), "B's calls offered", || async {
        let mut offered = Vec::new();
        for call in &calls {
            let c = quiet.get_call(&call.id).await.ok()?;
            if c.status != "offered" {
                return None;
            }
            offered.push(c);
        }
        Some(offered)
    })
    .await;
    let hooked = eventually(Duration::from_secs(30), "B's webhooks", || async {
        let got = hooks.lock().unwrap().clone();
        (got.len() >= CALLS).then_some(got)
    })
    .await;
    let still_waiting = backlog(&app, &app.org.org_id).await;
    // B can be served before A has spent its sends (10 a minute here): A floods on until
    // they are refused, or the assertion below says they never were.
    let refused = || {
        let answers = answers.clone();
        async move { (answers.lock().unwrap().get(&429).copied().unwrap_or(0) > 0).then_some(()) }
    };
    let _ = tokio::time::timeout(Duration::from_secs(20), async {
        while refused().await.is_none() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    flooding.store(false, std::sync::atomic::Ordering::Relaxed);
    flood.await.unwrap();

    assert!(
        still_waiting > 0,
        "A's backlog was still waiting when B was served (else the flood was too small)"
    );
    let answers = answers.lock().unwrap().clone();
    assert!(
        answers.get(&429).copied().unwrap_or(0) > 0,
        "A's test sends are limited per organization: {answers:?}"
    );
    let woken: Vec<String> = pushed
        .lock()
        .unwrap()
        .iter()
        .filter(|p| p["token"] == "quiet-phone")
        .filter_map(|p| p["payload"]["call_id"].as_str().map(str::to_owned))
        .collect();
    for (call, now) in calls.iter().zip(&offered) {
        assert!(woken.contains(&call.id), "B's phone woken for {}", call.id);
        let events = quiet.call_events(&call.id).await.unwrap().data;
        let trail: Vec<&str> = events
            .iter()
            .filter(|e| e.kind == "status")
            .map(|e| e.status.as_str())
            .collect();
        assert_eq!(trail, ["queued", "offered"], "{}", call.id);
        let offer = events.iter().find(|e| e.status == "offered").unwrap();
        assert!(
            offer.created_at < now.expires_at,
            "offered before the call's expiry"
        );
        assert!(
            hooked
                .iter()
                .any(|h| h["type"] == "call.offered" && h["data"]["id"] == call.id.as_str()),
            "B's call.offered webhook of {}",
            call.id
        );
    }
}
