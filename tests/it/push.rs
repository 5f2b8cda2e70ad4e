//! Waking phones that hold no live socket, through real HTTP against faithful fakes on
//! loopback: Google's OAuth token endpoint and FCM HTTP v1 (which check the service
//! account's signed assertion, the bearer token and the message's shape), and a Web Push
//! service (which checks the VAPID signature and decrypts the body with the browser's
//! keys). Each provider answer has its effect on the device, the credential and the call.

use std::sync::atomic::Ordering;
use std::time::Duration;

use pushdial_sdk::{AgentClient, Client, CreateCall};
use serde_json::{json, Value};

use crate::fakes::fcm::{fcm_error, service_account, Google};
use crate::fakes::web_push::PushService;
use crate::harness::*;

/// Registers the device's push channel with the documented `push` object.
async fn register_push(app: &TestApp, device: &AgentClient, provider: &str, token: Value) {
    let resp = reqwest::Client::new()
        .put(format!("{}/agent/v1/device", app.url))
        .bearer_auth(device.token())
        .json(&json!({"push": {"provider": provider, "token": token}}))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    assert_eq!(status, 200, "{}", resp.text().await.unwrap_or_default());
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

/// Waits for the call's push entries to be exactly `expected` (each is recorded once the
/// provider has answered, a moment after the call shows `offered`).
async fn push_trail_becomes(client: &Client, call_id: &str, expected: &[(String, String, String)]) {
    let mut last = Vec::new();
    for _ in 0..100 {
        last = push_trail(client, call_id).await;
        if last == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(last, expected, "push entries of {call_id}");
}

async fn call_in(client: &Client, call_id: &str, status: &str) -> pushdial_sdk::Call {
    eventually(
        Duration::from_secs(10),
        &format!("{call_id} {status}"),
        || async {
            client
                .get_call(call_id)
                .await
                .ok()
                .filter(|c| c.status == status)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fcm_wakes_phones_with_one_token_and_acts_on_each_answer() {
    let google = Google::start().await;
    let sa_path = std::env::temp_dir().join(format!("pd-sa-{}.json", rand::random::<u64>()));
    std::fs::write(
        &sa_path,
        service_account(&google, "pd-platform").to_string(),
    )
    .unwrap();
    let (path, base) = (sa_path.clone(), google.url.clone());
    let app = TestApp::spawn_tuned(move |c| {
        c.fcm_credentials = Some(path);
        c.fcm_base_url = base;
        c.offer_timeout = Duration::from_secs(30);
    })
    .await;
    let client = app.client();

    // Many wake-ups, one access token; no number passes through Google.
    let (ann, phone, phone_id) = app.agent_with_device(&client, "Ann").await;
    register_push(&app, &phone, "fcm", json!("tok-good")).await;
    let mut calls = Vec::new();
    for i in 0..5 {
        let to = format!("+1415555012{i}");
        calls.push(
            client
                .create_call(&CreateCall::for_agent(&to, &ann), None)
                .await
                .unwrap(),
        );
    }
    eventually(Duration::from_secs(10), "five wake-ups", || async {
        (google.sends_to("tok-good").len() == 5).then_some(())
    })
    .await;
    assert_eq!(
        google.token_fetches.load(Ordering::SeqCst),
        1,
        "one token for many sends"
    );
    assert!(
        google
            .sends_to("tok-good")
            .iter()
            .all(|s| !s.body.contains("415555")),
        "no phone number in any push"
    );
    let first = call_in(&client, &calls[0].id, "offered").await;
    push_trail_becomes(
        &client,
        &first.id,
        &[(phone_id.clone(), "accepted".into(), String::new())],
    )
    .await;
    // `offered` is the provider's acceptance; `delivered` comes only from the app's ack.
    assert_eq!(phone.ack(&first.id).await.unwrap().to, "+14155550120");
    assert_eq!(
        client.get_call(&first.id).await.unwrap().status,
        "delivered"
    );

    // A dead token: the device stops counting as reachable by push, and the call moves on
    // to the next device at once (long before the 30 s ack timeout).
    let (bob, spare, spare_id) = app.agent_with_device(&client, "Bob").await;
    register_push(&app, &spare, "fcm", json!("tok-spare")).await;
    let (gone, gone_id) = app.pair_device(&client, &bob, "old phone").await;
    register_push(&app, &gone, "fcm", json!("tok-gone")).await;
    gone.heartbeat().await.unwrap(); // seen last: tried first
    google.script(
        "tok-gone",
        vec![(404, fcm_error(404, "NOT_FOUND", "UNREGISTERED"), None)],
    );
    let call = client
        .create_call(&CreateCall::for_agent("+14155550130", &bob), None)
        .await
        .unwrap();
    eventually(Duration::from_secs(5), "the spare phone woken", || async {
        (!google.sends_to("tok-spare").is_empty()).then_some(())
    })
    .await; // within 5 s: the 30 s ack timeout plays no part
    let call = call_in(&client, &call.id, "offered").await;
    assert_eq!(call.device_id.as_deref(), Some(spare_id.as_str()));
    push_trail_becomes(
        &client,
        &call.id,
        &[
            (gone_id.clone(), "rejected".into(), "unregistered".into()),
            (spare_id.clone(), "accepted".into(), String::new()),
        ],
    )
    .await;
    assert_eq!(
        client.get_device(&gone_id).await.unwrap().presence,
        "offline"
    );

    // Unavailable with Retry-After: retried no sooner than asked, then accepted.
    let (cy, flaky, flaky_id) = app.agent_with_device(&client, "Cy").await;
    register_push(&app, &flaky, "fcm", json!("tok-flaky")).await;
    google.script(
        "tok-flaky",
        vec![(503, fcm_error(503, "UNAVAILABLE", "UNAVAILABLE"), Some(1))],
    );
    let call = client
        .create_call(&CreateCall::for_agent("+14155550140", &cy), None)
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "the retry", || async {
        (google.sends_to("tok-flaky").len() == 2).then_some(())
    })
    .await;
    let sends = google.sends_to("tok-flaky");
    assert!(
        sends[1].at - sends[0].at >= Duration::from_millis(950),
        "Retry-After honoured: {:?}",
        sends[1].at - sends[0].at
    );
    eventually(
        Duration::from_secs(5),
        "both answers in the timeline",
        || async {
            let trail = push_trail(&client, &call.id).await;
            (trail
                == [
                    (flaky_id.clone(), "failed".into(), "unavailable".into()),
                    (flaky_id.clone(), "accepted".into(), String::new()),
                ])
            .then_some(())
        },
    )
    .await;
    assert_eq!(flaky.ack(&call.id).await.unwrap().to, "+14155550140");
    google.assert_clean();
    let _ = std::fs::remove_file(sa_path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organizations_own_fcm_credential_sends_and_is_marked_failing_when_refused() {
    let google = Google::start().await;
    let base = google.url.clone();
    let token_uri = format!("{}/token", google.url);
    let app = TestApp::spawn_tuned(move |c| {
        c.fcm_base_url = base;
        c.fcm_token_uri = token_uri;
        c.offer_timeout = Duration::from_secs(30);
    })
    .await;
    let client = app.client();
    let (ann, phone, phone_id) = app.agent_with_device(&client, "Ann").await;
    register_push(&app, &phone, "fcm", json!("tok-own")).await;

    // Without any credential (none configured, none uploaded) the phone cannot be woken.
    let call = client
        .create_call(&CreateCall::for_agent("+14155550150", &ann), None)
        .await
        .unwrap();
    let failed = call_in(&client, &call.id, "failed").await;
    assert_eq!(failed.reason.as_deref(), Some("no_device_reachable"));
    push_trail_becomes(
        &client,
        &call.id,
        &[(phone_id.clone(), "unsupported".into(), String::new())],
    )
    .await;

    // Bad credentials are refused and nothing is stored.
    let (status, problem) = app
        .api(
            reqwest::Method::PUT,
            "/v1/push_credentials/fcm",
            Some(json!({"service_account": {"type": "service_account"}})),
        )
        .await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "service_account");
    let mut broken = service_account(&google, "org-proj");
    broken["private_key"] = json!("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n");
    let (status, _) = app
        .api(
            reqwest::Method::PUT,
            "/v1/push_credentials/fcm",
            Some(json!({"service_account": broken})),
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = app
        .api(
            reqwest::Method::PUT,
            "/v1/push_credentials/fcm",
            Some(json!({"service_account": service_account(&google, "org-proj"), "key_id": "X"})),
        )
        .await;
    assert_eq!(status, 400, "another provider's field");
    let (status, _) = app
        .api(
            reqwest::Method::PUT,
            "/v1/push_credentials/sms",
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 404);
    let (_, list) = app
        .api(reqwest::Method::GET, "/v1/push_credentials", None)
        .await;
    assert_eq!(list["data"], json!([]));

    // The organization's own service account: stored sealed, shown without its key. Its
    // `token_uri` names another host; tokens still come from the deployment's endpoint.
    let mut own = service_account(&google, "org-proj");
    own["token_uri"] = json!("http://127.0.0.1:9/steal-the-assertion");
    let (status, cred) = app
        .api(
            reqwest::Method::PUT,
            "/v1/push_credentials/fcm",
            Some(json!({"service_account": own})),
        )
        .await;
    assert_eq!(status, 200, "{cred}");
    assert!(cred["id"].as_str().unwrap().starts_with("pcr_"));
    assert_eq!(cred["metadata"]["project_id"], "org-proj");
    assert!(!cred.to_string().contains("PRIVATE KEY"));
    let stored: Vec<u8> = sqlx::query_scalar("select secret from push_credentials")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&stored).contains("PRIVATE KEY"),
        "sealed at rest"
    );

    let call = client
        .create_call(&CreateCall::for_agent("+14155550151", &ann), None)
        .await
        .unwrap();
    call_in(&client, &call.id, "offered").await;
    eventually(
        Duration::from_secs(5),
        "the wake-up through org-proj",
        || async {
            let sent = google.sends_to("tok-own");
            (sent.last().map(|s| s.project.as_str()) == Some("org-proj")).then_some(())
        },
    )
    .await;

    // Google refuses the organization's credential: it shows as failing, the call moves on.
    google.project_answer.lock().unwrap().insert(
        "org-proj".into(),
        (
            401,
            fcm_error(401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR"),
            None,
        ),
    );
    let call = client
        .create_call(&CreateCall::for_agent("+14155550152", &ann), None)
        .await
        .unwrap();
    let failed = call_in(&client, &call.id, "failed").await;
    assert_eq!(failed.reason.as_deref(), Some("push_credential_failed"));
    push_trail_becomes(
        &client,
        &call.id,
        &[(
            phone_id.clone(),
            "credential_failed".into(),
            "third_party_auth_error".into(),
        )],
    )
    .await;
    let (_, cred) = app
        .api(reqwest::Method::GET, "/v1/push_credentials/fcm", None)
        .await;
    assert_eq!(cred["last_error"], "third_party_auth_error");
    assert!(cred["failing_since"].is_string());
    assert_eq!(
        client.get_device(&phone_id).await.unwrap().presence,
        "push",
        "the device is not at fault"
    );

    // Deleting it returns the organization to the deployment's (none here).
    let (status, _) = app
        .api(reqwest::Method::DELETE, "/v1/push_credentials/fcm", None)
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .api(reqwest::Method::GET, "/v1/push_credentials/fcm", None)
        .await;
    assert_eq!(status, 404);
    google.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_push_is_encrypted_for_the_browser_and_signed_with_vapid() {
    let service = PushService::start().await;
    let (private, public) = pushdial_core::push::webpush::VapidKey::generate();
    let app = TestApp::spawn_tuned(move |c| {
        c.vapid_private_key = Some(private);
        c.vapid_subject = Some("mailto:ops@example.com".into());
        c.webhook_allow_subnets = "127.0.0.0/8".into();
    })
    .await;
    let client = app.client();
    let (ann, browser, browser_id) = app.agent_with_device(&client, "Ann").await;

    // The agent learns which key to subscribe with.
    let config: Value = reqwest::Client::new()
        .get(format!("{}/agent/v1/push_config", app.url))
        .bearer_auth(browser.token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(config["webpush_public_key"], public.as_str());

    // A subscription that is not one is refused at registration.
    let resp = reqwest::Client::new()
        .put(format!("{}/agent/v1/device", app.url))
        .bearer_auth(browser.token())
        .json(
            &json!({"push": {"provider": "webpush", "token": {"endpoint": "https://x.example/1"}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    register_push(&app, &browser, "webpush", service.subscribe("s1")).await;
    let call = client
        .create_call(&CreateCall::for_agent("+14155550160", &ann), None)
        .await
        .unwrap();
    call_in(&client, &call.id, "offered").await;
    eventually(
        Duration::from_secs(5),
        "the push service to receive it",
        || async { (!service.received.lock().unwrap().is_empty()).then_some(()) },
    )
    .await;
    let received = service.received.lock().unwrap().clone();
    assert_eq!(
        received.len(),
        1,
        "{:?}",
        service.violations.lock().unwrap()
    );
    let (id, payload, signer) = &received[0];
    assert_eq!(id, "s1");
    assert_eq!(signer, &public, "signed with the deployment's VAPID key");
    assert_eq!(payload["type"], "call.offer");
    assert_eq!(payload["call_id"], call.id.as_str());
    assert_eq!(
        payload.as_object().unwrap().len(),
        3,
        "nothing but type, call and expiry"
    );
    assert_eq!(browser.ack(&call.id).await.unwrap().to, "+14155550160");

    // An expired subscription (410): the channel is invalidated and the call fails over.
    service.gone.lock().unwrap().push("s1".into());
    let call = client
        .create_call(&CreateCall::for_device("+14155550161", &browser_id), None)
        .await
        .unwrap();
    let failed = call_in(&client, &call.id, "failed").await;
    assert_eq!(failed.reason.as_deref(), Some("push_rejected"));
    push_trail_becomes(
        &client,
        &call.id,
        &[(
            browser_id.clone(),
            "rejected".into(),
            "subscription_gone".into(),
        )],
    )
    .await;
    assert_eq!(
        client.get_device(&browser_id).await.unwrap().presence,
        "offline"
    );
    assert_eq!(*service.violations.lock().unwrap(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_agent_without_a_socket_is_woken_by_web_push_and_places_the_call() {
    let (private, _) = pushdial_core::push::webpush::VapidKey::generate();
    let app = TestApp::spawn_tuned(move |c| {
        c.vapid_private_key = Some(private);
        c.webhook_allow_subnets = "127.0.0.0/8".into();
    })
    .await;
    let client = app.client();
    let (ann, phone, phone_id) = app.agent_with_device(&client, "Ann").await;

    let receiver =
        pushdial_sdk::webpush::WebPushReceiver::bind("127.0.0.1:0".parse().unwrap(), None)
            .await
            .unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let opts = pushdial_sdk::agent::RunOptions {
        auto: true,
        ..Default::default()
    };
    let agent = tokio::spawn(pushdial_sdk::agent::run_push_woken(
        phone,
        opts,
        receiver,
        async move {
            let _ = stop_rx.await;
        },
    ));
    eventually(
        Duration::from_secs(5),
        "the phone reachable by push",
        || async {
            client
                .get_device(&phone_id)
                .await
                .ok()
                .filter(|d| d.presence == "push" && d.push_channel.as_deref() == Some("webpush"))
        },
    )
    .await;

    let call = client
        .create_call(&CreateCall::for_agent("+14155550170", &ann), None)
        .await
        .unwrap();
    let done = call_in(&client, &call.id, "completed").await;
    assert_eq!(done.device_id.as_deref(), Some(phone_id.as_str()));
    // The whole loop, through push alone: offered once the push service accepted it,
    // delivered by the agent's ack, then its reports.
    assert_eq!(
        event_trail(&client, &call.id).await,
        [
            "queued",
            "offered",
            "delivered",
            "accepted",
            "dialing",
            "~connected",
            "completed"
        ]
    );
    push_trail_becomes(
        &client,
        &call.id,
        &[(phone_id.clone(), "accepted".into(), String::new())],
    )
    .await;
    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(10), agent)
        .await
        .expect("the agent stops")
        .unwrap()
        .unwrap();
}
