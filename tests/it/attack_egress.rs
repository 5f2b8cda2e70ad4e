//! Attacks of issue 17 (egress), each kept as a test written as the attack.
//!
//! A device names its Web Push endpoint and the worker POSTs to it; a tenant names its
//! webhook URLs. Pointed at the deployment's own network, either made the server a port
//! and status scanner (`GET /v1/calls/{id}/events` reported `http_405`, `network`…). A
//! loopback listener that counts connections stands in for the internal service.

use std::sync::atomic::Ordering;
use std::time::Duration;

use base64::Engine;
use pushdial_sdk::{AgentClient, Client, CreateCall};
use serde_json::{json, Value};

use crate::fakes::internal_service::internal_service;
use crate::harness::*;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A browser's subscription for `endpoint` (valid keys, so only the endpoint is judged).
fn subscription(endpoint: &str) -> Value {
    let (keys, auth) = ece::generate_keypair_and_auth_secret().unwrap();
    json!({
        "endpoint": endpoint,
        "keys": {"p256dh": B64.encode(keys.pub_as_raw().unwrap()), "auth": B64.encode(auth)},
    })
}

/// `PUT /agent/v1/device` with a Web Push subscription: (status, body).
async fn register_webpush(app: &TestApp, device: &AgentClient, endpoint: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .put(format!("{}/agent/v1/device", app.url))
        .bearer_auth(device.token())
        .json(&json!({"push": {"provider": "webpush", "token": subscription(endpoint)}}))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or_default())
}

/// What the device row holds as its push channel.
async fn stored_push(app: &TestApp, device_id: &str) -> (Option<String>, Option<String>) {
    sqlx::query_as("select push_channel, push_token from devices where id = $1")
        .bind(device_id)
        .fetch_one(&app.db)
        .await
        .unwrap()
}

/// The hostile endpoint forms for an internal service on `port`, each of which the
/// policy refuses even with the development allowlist `127.0.0.0/8`.
fn hostile(port: u16) -> Vec<String> {
    [
        "http://[::1]:{p}/",
        "http://0.0.0.0:{p}/",
        "http://0:{p}/",
        "http://[::]:{p}/",
        "http://localhost:{p}/",
        "http://LOCALHOST.:{p}/",
        "http://[::ffff:0.0.0.0]:{p}/",
        "http://[0:0:0:0:0:0:0:1]:{p}/",
        "https://[::1]:{p}/",
        "http://169.254.169.254:{p}/latest/meta-data/",
        "http://10.0.0.1:{p}/",
        "http://[fd00:ec2::254]:{p}/",
    ]
    .iter()
    .map(|f| f.replace("{p}", &port.to_string()))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_cannot_register_a_web_push_endpoint_on_the_internal_network() {
    let (port, connections) = internal_service().await;
    let (private, _) = pushdial_core::push::webpush::VapidKey::generate();
    let app = TestApp::spawn_tuned(move |c| c.vapid_private_key = Some(private)).await;
    let client = app.client();
    let (agent_id, device, device_id) = app.agent_with_device(&client, "Ann").await;

    // Without the development allowlist, loopback is refused in every notation too.
    let mut forms = hostile(port);
    for f in [
        "http://127.0.0.1:{p}/",
        "http://2130706433:{p}/",
        "http://0177.0.0.1:{p}/",
        "http://0x7f.1:{p}/",
        "http://127.1:{p}/",
        "http://[::ffff:127.0.0.1]:{p}/",
        // A push service is on the internet and speaks TLS.
        "http://push.example.com/wp/1",
    ] {
        forms.push(f.replace("{p}", &port.to_string()));
    }
    let before = app.counts().await;
    for endpoint in &forms {
        let (status, problem) = register_webpush(&app, &device, endpoint).await;
        assert_eq!(status, 422, "{endpoint}: {problem}");
        assert_eq!(problem["code"], "push_endpoint_refused", "{endpoint}");
    }
    assert_eq!(stored_push(&app, &device_id).await, (None, None));
    assert_eq!(app.counts().await, before, "nothing written");

    // Nothing to wake the phone with: the call is refused, and nothing was reached.
    let err = client
        .create_call(&CreateCall::for_agent("+14155550180", &agent_id), None)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(409));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(connections.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_development_allowlist_opens_loopback_ipv4_literals_to_web_push_and_nothing_else() {
    let (port, connections) = internal_service().await;
    let (private, _) = pushdial_core::push::webpush::VapidKey::generate();
    let app = TestApp::spawn_tuned(move |c| {
        c.vapid_private_key = Some(private);
        c.webhook_allow_subnets = "127.0.0.0/8".into();
    })
    .await;
    let client = app.client();
    let (_, device, device_id) = app.agent_with_device(&client, "Ann").await;

    for endpoint in hostile(port) {
        let (status, problem) = register_webpush(&app, &device, &endpoint).await;
        assert_eq!(status, 422, "{endpoint}: {problem}");
        assert_eq!(problem["code"], "push_endpoint_refused", "{endpoint}");
    }
    assert_eq!(stored_push(&app, &device_id).await, (None, None));
    // The development gateway (`pushdial-agent --push-listen 127.0.0.1:…`) still registers.
    let dev = format!("http://127.0.0.1:{port}/push");
    let (status, body) = register_webpush(&app, &device, &dev).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(connections.load(Ordering::SeqCst), 0);
}

/// The push entries of a call's timeline: (device, result, reason).
async fn push_trail(client: &Client, call_id: &str) -> Vec<(String, String, String)> {
    client
        .call_events(call_id)
        .await
        .unwrap()
        .data
        .into_iter()
        .filter(|e| e.kind == "push")
        .map(|e| {
            (
                e.device_id.unwrap_or_default(),
                e.status,
                e.reason.unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_hostile_web_push_endpoint_is_refused_before_each_send() {
    let (port, connections) = internal_service().await;
    let (private, _) = pushdial_core::push::webpush::VapidKey::generate();
    let app = TestApp::spawn_tuned(move |c| {
        c.vapid_private_key = Some(private);
        c.webhook_allow_subnets = "127.0.0.0/8".into();
    })
    .await;
    let client = app.client();
    let agent = client.create_agent("Ann", None).await.unwrap();
    // Rows registered before the policy applied to push (or under a wider allowlist):
    // each device gets a valid registration, then its stored endpoint turns hostile.
    let cases = [
        (format!("http://[::1]:{port}/"), "forbidden_address"),
        (format!("http://0.0.0.0:{port}/"), "forbidden_address"),
        (format!("http://localhost:{port}/"), "forbidden_host"),
        (format!("http://[::]:{port}/"), "forbidden_address"),
    ];
    for (i, (endpoint, why)) in cases.iter().enumerate() {
        let (device, device_id) = app
            .pair_device(&client, &agent.id, &format!("phone {i}"))
            .await;
        let (status, body) =
            register_webpush(&app, &device, &format!("http://127.0.0.1:{port}/ok")).await;
        assert_eq!(status, 200, "{body}");
        sqlx::query("update devices set push_token = $2 where id = $1")
            .bind(&device_id)
            .bind(subscription(endpoint).to_string())
            .execute(&app.db)
            .await
            .unwrap();

        let call = client
            .create_call(
                &CreateCall::for_device(format!("+1415555019{i}"), &device_id),
                None,
            )
            .await
            .unwrap();
        let failed = wait_for_status(&client, &call.id, "failed", Duration::from_secs(10)).await;
        assert_eq!(
            failed.reason.as_deref(),
            Some("push_rejected"),
            "{endpoint}"
        );
        let expected = vec![(
            device_id.clone(),
            "egress_refused".to_owned(),
            why.to_string(),
        )];
        let trail = eventually(Duration::from_secs(5), "the push entry", || async {
            let trail = push_trail(&client, &call.id).await;
            (!trail.is_empty()).then_some(trail)
        })
        .await;
        assert_eq!(trail, expected, "{endpoint}");
        // The endpoint is never tried again: the device must register a new one.
        assert_eq!(
            client.get_device(&device_id).await.unwrap().presence,
            "offline",
            "{endpoint}"
        );
    }
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "the internal service was never reached"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_endpoints_on_ip_literals_are_refused_at_registration() {
    let (port, connections) = internal_service().await;
    let app = TestApp::spawn().await;
    let before = app.counts().await;
    for url in [
        format!("http://[::1]:{port}/"),
        format!("http://0.0.0.0:{port}/"),
        format!("http://[::]:{port}/"),
        format!("http://2130706433:{port}/"),
        format!("http://0x7f.1:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        format!("http://localhost:{port}/"),
    ] {
        let (status, problem) = app
            .api(
                reqwest::Method::POST,
                "/v1/webhook_endpoints",
                Some(json!({"url": url})),
            )
            .await;
        assert_eq!(status, 422, "{url}: {problem}");
        assert_eq!(problem["code"], "webhook_url_forbidden", "{url}");
    }
    assert_eq!(app.counts().await, before, "nothing written");
    assert_eq!(connections.load(Ordering::SeqCst), 0);
}

/// The attack, once a URL is stored: an endpoint whose URL names the deployment's own
/// network (a row written before the policy, or by hand) is refused before each delivery,
/// and its attempts say `egress_refused`, never a status the target gave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_webhook_url_on_the_internal_network_is_refused_before_each_delivery() {
    let (port, connections) = internal_service().await;
    let app = TestApp::spawn().await;
    let (status, endpoint) = app
        .api(
            reqwest::Method::POST,
            "/v1/webhook_endpoints",
            Some(json!({"url": "https://hooks.example.com/pushdial"})),
        )
        .await;
    assert_eq!(status, 201, "{endpoint}");
    let id = endpoint["id"].as_str().unwrap().to_owned();
    for url in [
        format!("http://[::1]:{port}/"),
        format!("http://2130706433:{port}/"),
    ] {
        sqlx::query("update webhook_endpoints set url = $2 where id = $1")
            .bind(&id)
            .bind(&url)
            .execute(&app.db)
            .await
            .unwrap();
        let (status, sent) = app
            .api(
                reqwest::Method::POST,
                &format!("/v1/webhook_endpoints/{id}/test"),
                None,
            )
            .await;
        assert!(status < 300, "{status}: {sent}");
    }
    let attempts = eventually(Duration::from_secs(20), "both attempts recorded", || {
        let app = &app;
        let id = id.clone();
        async move {
            let (_, attempts) = app
                .api(
                    reqwest::Method::GET,
                    &format!("/v1/webhook_endpoints/{id}/attempts"),
                    None,
                )
                .await;
            let data = attempts["data"].as_array().cloned().unwrap_or_default();
            (data.len() >= 2).then_some(data)
        }
    })
    .await;
    for attempt in &attempts {
        assert!(attempt["status_code"].is_null(), "{attempt}");
        let error = attempt["error"].as_str().unwrap_or_default();
        assert!(
            error.starts_with("egress_refused (forbidden_address)"),
            "{attempt}"
        );
    }
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "the internal service was never reached"
    );
}
