//! Attacks of issue 17 (widgets), each kept as a test written as the attack.
//!
//! The widget's Origin check binds browsers only, and its publishable key is in every
//! page: a script sets `Origin: https://shop.example`, reads `pd_pk_…` from the page and
//! asks for callbacks. These tests are that script.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pushdial_sdk::agent::RunOptions;
use pushdial_sdk::UpdateDevice;
use reqwest::header::ORIGIN;
use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::*;

const SHOP: &str = "https://shop.example";

/// The answer to a forged-origin script's `POST /widget/v1/callbacks`: (status, body,
/// Retry-After, Access-Control-Allow-Origin).
struct Answer {
    status: u16,
    body: Value,
    retry_after: Option<String>,
    acao: Option<String>,
}

async fn ask(app: &TestApp, key: &str, phone: &str) -> Answer {
    let resp = reqwest::Client::new()
        .post(format!("{}/widget/v1/callbacks", app.url))
        .bearer_auth(key)
        // Not a browser: it writes whatever Origin the widget allows.
        .header(ORIGIN, SHOP)
        .json(&json!({"phone": phone, "consent": true}))
        .send()
        .await
        .unwrap();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let (retry_after, acao) = (header("retry-after"), header("access-control-allow-origin"));
    Answer {
        status: resp.status().as_u16(),
        retry_after,
        acao,
        body: resp.json().await.unwrap_or_default(),
    }
}

async fn widget(app: &TestApp, extra: Value) -> (String, String) {
    let mut body = json!({"name": "Shop", "allowed_origins": [SHOP]});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let (status, w) = app.api(Method::POST, "/v1/widgets", Some(body)).await;
    assert_eq!(status, 201, "{w}");
    (
        w["id"].as_str().unwrap().to_owned(),
        w["publishable_key"].as_str().unwrap().to_owned(),
    )
}

/// `pushdial_widget_callbacks_refused_total{reason}` as the api's `/metrics` says it.
async fn refused_metric(app: &TestApp, reason: &str) -> f64 {
    let text = app.metrics().await;
    let series = format!("pushdial_widget_callbacks_refused_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

/// The widget's audit events of `action`, through the API.
async fn audited(app: &TestApp, action: &str) -> Vec<Value> {
    let (status, list) = app
        .api(
            Method::GET,
            &format!("/v1/audit_events?action={action}&limit=100"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{list}");
    list["data"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_with_a_forged_origin_cannot_create_callbacks_past_the_widgets_hourly_cap() {
    // One address may ask often here, so that only the widget's cap stands in the way (a
    // script rotates addresses anyway).
    let app = TestApp::spawn_tuned(|c| {
        c.limit_widget_per_ip_per_minute = 1000;
        c.presence_window = Duration::from_secs(60);
    })
    .await;
    let client = app.client();
    let (_, phone, _) = app.agent_with_device(&client, "Ann").await;
    let _socket = live_stream(&phone).await;
    // The cap is the organization's to set, within bounds.
    for bad in [0, 1001] {
        let (status, body) = app
            .api(
                Method::POST,
                "/v1/widgets",
                Some(
                    json!({"name": "x", "allowed_origins": [SHOP], "max_callbacks_per_hour": bad}),
                ),
            )
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (widget_id, key) = widget(&app, json!({"max_callbacks_per_hour": 3})).await;
    let refused_before = refused_metric(&app, "callbacks_cap").await;

    // Each to a new number, so that the per-number limit never applies.
    for i in 0..3 {
        let a = ask(&app, &key, &format!("+1415555010{i}")).await;
        assert_eq!(
            (a.status, a.body["status"].as_str()),
            (201, Some("calling")),
            "{}",
            a.body
        );
    }
    for i in 3..8 {
        let a = ask(&app, &key, &format!("+1415555010{i}")).await;
        assert_eq!(
            (a.status, a.body["code"].as_str()),
            (429, Some("rate_limited")),
            "{}",
            a.body
        );
        let wait: u64 = a.retry_after.expect("Retry-After").parse().unwrap();
        assert!((1..=3600).contains(&wait), "{wait}");
        assert_eq!(
            a.acao.as_deref(),
            Some(SHOP),
            "the page may read the refusal"
        );
    }
    // Nothing past the cap: no callback, and no call (the worker goes on with the three
    // accepted calls meanwhile, so their events and jobs are not counted here).
    assert_eq!(app.count("callbacks").await, 3);
    assert_eq!(app.count("calls").await, 3);
    let past_cap: i64 = sqlx::query_scalar(
        "select (select count(*) from calls where to_number >= '+14155550103')
              + (select count(*) from callbacks where phone >= '+14155550103')",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(past_cap, 0);

    // The abuse shows: five refusals counted, and one audit event for the hour (not five,
    // so that the flood does not flood the audit log).
    assert_eq!(
        refused_metric(&app, "callbacks_cap").await - refused_before,
        5.0
    );
    let events = audited(&app, "widget.callback_cap_reached").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["target_id"], widget_id.as_str());
    assert_eq!(events[0]["data"]["cap"], "max_callbacks_per_hour");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_callbacks_past_the_widgets_hourly_cap_are_refused() {
    // Nobody is reachable: every request is kept for later, which places no call and so
    // takes none of the organization's call quotas.
    let app = TestApp::spawn_tuned(|c| c.limit_widget_per_ip_per_minute = 1000).await;
    let (_, key) = widget(&app, json!({"max_scheduled_callbacks_per_hour": 2})).await;
    for i in 0..2 {
        let a = ask(&app, &key, &format!("+1415555020{i}")).await;
        assert_eq!(
            (a.status, a.body["status"].as_str()),
            (201, Some("scheduled")),
            "{}",
            a.body
        );
    }
    let a = ask(&app, &key, "+14155550202").await;
    assert_eq!(
        (a.status, a.body["code"].as_str()),
        (429, Some("rate_limited")),
        "{}",
        a.body
    );
    assert!(a.retry_after.is_some());
    assert_eq!(app.count("callbacks").await, 2, "nothing kept past the cap");
    assert_eq!(refused_metric(&app, "scheduled_cap").await, 1.0);
    let events = audited(&app, "widget.callback_cap_reached").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["data"]["cap"], "max_scheduled_callbacks_per_hour");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_widgets_call_to_an_auto_dial_phone_is_asked_not_dialled() {
    let app = TestApp::spawn().await;
    let client = app.client();
    let (_, phone, _) = app.agent_with_device(&client, "Ann").await;
    // The phone is set to dial by itself, and its app runs in auto mode (`--auto`)…
    phone
        .update_device(&UpdateDevice {
            auto_dial: Some(true),
            ..Default::default()
        })
        .await
        .unwrap();
    // …and its person, asked, says no (or is not there to say yes).
    let asked = Arc::new(Mutex::new(Vec::<String>::new()));
    let hook_asked = asked.clone();
    let agent = RunningAgent::start_with(
        phone,
        RunOptions {
            auto: true,
            confirm: Some(Arc::new(move |number: &str| {
                hook_asked.lock().unwrap().push(number.to_owned());
                false
            })),
            ..Default::default()
        },
    )
    .await;
    let (_, key) = widget(&app, json!({})).await;

    // A script asks the widget to have Ann's phone call a number of its choosing.
    let a = ask(&app, &key, "+14155550123").await;
    assert_eq!(
        (a.status, a.body["status"].as_str()),
        (201, Some("calling")),
        "{}",
        a.body
    );
    let (_, calls) = app.api(Method::GET, "/v1/calls", None).await;
    let call_id = calls["data"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(calls["data"][0]["confirm"], "required");

    // The phone asked instead of dialling, and nothing was dialled.
    let declined = wait_for_status(&client, &call_id, "declined", Duration::from_secs(10)).await;
    assert_eq!(declined.status, "declined");
    assert_eq!(*asked.lock().unwrap(), ["+14155550123"]);
    let trail = event_trail(&client, &call_id).await;
    assert!(
        !trail.iter().any(|s| s == "accepted" || s == "dialing"),
        "{trail:?}"
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn widget_callbacks_are_refused_while_redis_is_down() {
    let redis = PrivateRedis::start().await;
    let url = redis.url.clone();
    let app = TestApp::spawn_tuned(move |c| {
        c.redis_url = url;
        c.presence_window = Duration::from_secs(60);
    })
    .await;
    let client = app.client();
    let (_, phone, _) = app.agent_with_device(&client, "Ann").await;
    let _socket = live_stream(&phone).await;
    let (_, key) = widget(&app, json!({})).await;
    // A widget that is closed takes requests for later: the other cap.
    let (_, closed) = widget(
        &app,
        json!({"business_hours": {"timezone": "Europe/London", "days": {}}}),
    )
    .await;
    let before = app.counts().await;

    // Without Redis the caps cannot be counted: no callback rather than callbacks without
    // bound (the per-address and per-number limits fail open meanwhile).
    drop(redis);
    for (key, phone) in [(&key, "+14155550123"), (&closed, "+14155550124")] {
        let a = ask(&app, key, phone).await;
        assert_eq!(
            (a.status, a.body["code"].as_str()),
            (503, Some("limits_unavailable")),
            "{}",
            a.body
        );
        assert!(
            a.retry_after.is_some(),
            "the page is told when to come back"
        );
        assert_eq!(a.acao.as_deref(), Some(SHOP));
    }
    assert_eq!(app.counts().await, before);
    assert_eq!(app.count("callbacks").await, 0);
    assert_eq!(refused_metric(&app, "limits_unavailable").await, 2.0);
}
