//! The widget API over real HTTP: widget settings, CORS limited to the widget's origins,
//! availability, visitor callbacks with their live status, the visitor limits, and the
//! console's live call stream.

use std::time::Duration;

use futures::StreamExt;
use reqwest::header::ORIGIN;
use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::*;

const SHOP: &str = "https://shop.example";

/// Server-sent events of a response, until the stream ends (or `within` passes).
async fn sse(resp: reqwest::Response, within: Duration) -> Vec<(String, Value)> {
    let mut out = vec![];
    let mut buf = String::new();
    let mut body = resp.bytes_stream();
    let deadline = tokio::time::Instant::now() + within;
    let mut event = String::from("message");
    while let Ok(Some(chunk)) = tokio::time::timeout_at(deadline, body.next()).await {
        buf.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        while let Some(end) = buf.find('\n') {
            let line = buf[..end].trim_end_matches('\r').to_owned();
            buf.drain(..=end);
            if let Some(e) = line.strip_prefix("event: ") {
                event = e.to_owned();
            } else if let Some(d) = line.strip_prefix("data: ") {
                out.push((
                    event.clone(),
                    serde_json::from_str(d).unwrap_or(Value::Null),
                ));
                event = "message".into();
            }
        }
    }
    out
}

async fn widget(app: &TestApp, extra: Value) -> Value {
    let mut body = json!({"name": "Shop", "allowed_origins": [SHOP]});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let (status, w) = app.api(Method::POST, "/v1/widgets", Some(body)).await;
    assert_eq!(status, 201, "{w}");
    w
}

/// A request to the widget API as a page of `origin` would send it.
async fn visit(
    app: &TestApp,
    key: &str,
    origin: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Option<String>, Value) {
    let mut req = reqwest::Client::new()
        .request(method, format!("{}{path}", app.url))
        .bearer_auth(key);
    if let Some(o) = origin {
        req = req.header(ORIGIN, o);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let acao = resp
        .headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, acao, resp.json().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visitor_is_called_back_by_an_available_agent_and_watches_it_live() {
    let app = TestApp::spawn().await;
    let client = app.client();
    let (agent_id, device, _) = app.agent_with_device(&client, "Ann").await;
    let w = widget(
        &app,
        json!({"theme": {"color": "#112233", "position": "bottom-left"}}),
    )
    .await;
    let key = w["publishable_key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("pd_pk_"));
    assert_eq!(
        w["embed_snippet"],
        format!(
            "<script src=\"{}/widget.js\" data-key=\"{key}\" async></script>",
            app.url
        )
    );

    // Nobody reachable yet: the widget offers a callback for later.
    let (status, acao, config) = visit(
        &app,
        &key,
        Some(SHOP),
        Method::GET,
        "/widget/v1/config",
        None,
    )
    .await;
    assert_eq!(status, 200, "{config}");
    assert_eq!(acao.as_deref(), Some(SHOP));
    assert_eq!(
        (config["available"].as_bool(), config["mode"].as_str()),
        (Some(false), Some("callback"))
    );
    assert_eq!(config["theme"]["color"], "#112233");
    assert_eq!(config["country"], "US");

    let agent = RunningAgent::start(device, Duration::from_millis(300)).await;
    // Availability is remembered for two seconds per widget (busy sites), then seen.
    eventually(
        Duration::from_secs(5),
        "the widget to offer a call now",
        || async {
            let (_, _, config) = visit(
                &app,
                &key,
                Some(SHOP),
                Method::GET,
                "/widget/v1/config",
                None,
            )
            .await;
            (config["available"] == true && config["mode"] == "call_now").then_some(())
        },
    )
    .await;

    // The visitor asks (national digits with the country picker); Ann's phone calls them.
    let (status, acao, created) = visit(
        &app,
        &key,
        Some(SHOP),
        Method::POST,
        "/widget/v1/callbacks",
        Some(json!({"phone": "(415) 555-0123", "country": "US", "name": "Vera", "consent": true, "locale": "en"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(acao.as_deref(), Some(SHOP));
    assert_eq!(created["status"], "calling");
    let stream_url = created["stream_url"].as_str().unwrap();
    // EventSource sends no Authorization: the token in the URL authorises the stream.
    let resp = reqwest::Client::new()
        .get(format!("{}{stream_url}", app.url))
        .header(ORIGIN, SHOP)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["access-control-allow-origin"], SHOP);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let statuses: Vec<String> = sse(resp, Duration::from_secs(20))
        .await
        .into_iter()
        .filter(|(e, _)| e == "status")
        .map(|(_, d)| d["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        statuses.first().map(String::as_str),
        Some("calling"),
        "{statuses:?}"
    );
    assert_eq!(
        statuses.last().map(String::as_str),
        Some("completed"),
        "{statuses:?}"
    );

    // The call is Ann's, to the visitor's number, and says where it came from.
    let (_, calls) = app.api(Method::GET, "/v1/calls", None).await;
    let call = &calls["data"][0];
    assert_eq!(call["to"], "+14155550123");
    assert_eq!(call["agent_id"], agent_id.as_str());
    assert_eq!(call["metadata"]["source"], "widget");
    assert_eq!(call["metadata"]["visitor_name"], "Vera");
    let (_, callbacks) = app.api(Method::GET, "/v1/callbacks", None).await;
    assert_eq!(callbacks["data"][0]["status"], "completed");
    assert_eq!(callbacks["data"][0]["call_id"], call["id"]);
    // A wrong token opens nothing.
    let forged = stream_url.replace("token=", "token=x");
    let r = reqwest::Client::new()
        .get(format!("{}{forged}", app.url))
        .header(ORIGIN, SHOP)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_origins_blocked_numbers_and_floods_are_refused_without_writing() {
    let app = TestApp::spawn_tuned(|c| c.limit_widget_per_ip_per_minute = 6).await;
    let w = widget(&app, json!({})).await;
    let key = w["publishable_key"].as_str().unwrap().to_owned();
    let (status, _) = app
        .api(
            Method::POST,
            "/v1/blocked_numbers",
            Some(json!({"prefix": "+1415555"})),
        )
        .await;
    assert_eq!(status, 201);
    let before = app.counts().await;
    let cb_before = app.count("callbacks").await;

    // Another site may not use the key: no CORS grant, nothing written.
    for (method, path) in [
        (Method::GET, "/widget/v1/config"),
        (Method::POST, "/widget/v1/callbacks"),
    ] {
        let (status, acao, body) = visit(
            &app,
            &key,
            Some("https://evil.example"),
            method,
            path,
            Some(json!({"phone": "+14155550123", "consent": true})),
        )
        .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (403, Some("origin_not_allowed"))
        );
        assert_eq!(acao, None);
    }
    // A preflight is answered for any origin (it carries nothing); the request is judged.
    let pre = reqwest::Client::new()
        .request(Method::OPTIONS, format!("{}/widget/v1/callbacks", app.url))
        .header(ORIGIN, SHOP)
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(pre.status(), 204);
    assert_eq!(pre.headers()["access-control-allow-origin"], SHOP);
    assert_eq!(pre.headers()["vary"], "Origin");

    // A blocked number gets the same answer as an invalid one: the blocklist stays secret.
    for phone in ["+14155550123", "+1415", "12345", "*#06#", "+19005550123"] {
        let (status, acao, body) = visit(
            &app,
            &key,
            Some(SHOP),
            Method::POST,
            "/widget/v1/callbacks",
            Some(json!({"phone": phone, "consent": true})),
        )
        .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (422, Some("number_not_callable")),
            "{phone}: {body}"
        );
        assert_eq!(acao.as_deref(), Some(SHOP), "the page may read the refusal");
        assert!(
            !body["detail"].as_str().unwrap().contains("block"),
            "{body}"
        );
    }
    // The same number written with its national prefix after the country code is the
    // same (blocked) number.
    let (status, _, body) = visit(
        &app,
        &key,
        Some(SHOP),
        Method::POST,
        "/widget/v1/callbacks",
        Some(json!({"phone": "+1 1 415 555 0123", "consent": true})),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("number_not_callable"))
    );
    // Past the visitor's limit (6 a minute here) the address waits, whatever it sends.
    let resp = reqwest::Client::new()
        .post(format!("{}/widget/v1/callbacks", app.url))
        .bearer_auth(&key)
        .header(ORIGIN, SHOP)
        .json(&json!({"phone": "+14155550199", "consent": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().get("retry-after").is_some());
    // Consent is required, and a secret key is not a widget key.
    let (status, _, body) = visit(
        &app,
        &app.org.secret_key,
        Some(SHOP),
        Method::GET,
        "/widget/v1/config",
        None,
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("invalid_api_key"))
    );
    assert_eq!(app.counts().await, before);
    assert_eq!(app.count("callbacks").await, cb_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_or_unstaffed_widgets_take_requests_for_later_or_hide() {
    let app = TestApp::spawn().await;
    let client = app.client();
    let (_, device, _) = app.agent_with_device(&client, "Ann").await;
    let _agent = RunningAgent::start(device, Duration::from_millis(100)).await;
    // Open only on a day that never comes (an empty schedule): reachable agents or not,
    // the widget is closed.
    let closed = widget(
        &app,
        json!({"business_hours": {"timezone": "Europe/London", "days": {}}}),
    )
    .await;
    let key = closed["publishable_key"].as_str().unwrap();
    let (_, _, config) = visit(
        &app,
        key,
        Some(SHOP),
        Method::GET,
        "/widget/v1/config",
        None,
    )
    .await;
    assert_eq!(
        (config["open_now"].as_bool(), config["mode"].as_str()),
        (Some(false), Some("callback"))
    );
    let (status, _, cb) = visit(
        &app,
        key,
        Some(SHOP),
        Method::POST,
        "/widget/v1/callbacks",
        Some(json!({"phone": "+14155550123", "consent": true})),
    )
    .await;
    assert_eq!(
        (status, cb["status"].as_str()),
        (201, Some("scheduled")),
        "{cb}"
    );
    assert_eq!(
        app.count("calls").await,
        0,
        "nobody is called outside hours"
    );
    // Its stream says so once and ends.
    let resp = reqwest::Client::new()
        .get(format!("{}{}", app.url, cb["stream_url"].as_str().unwrap()))
        .header(ORIGIN, SHOP)
        .send()
        .await
        .unwrap();
    let events = sse(resp, Duration::from_secs(10)).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].1["status"], "scheduled");
    let (_, list) = app.api(Method::GET, "/v1/callbacks", None).await;
    assert_eq!(list["data"][0]["status"], "scheduled");
    assert_eq!(list["data"][0]["phone"], "+14155550123");

    // Its key is retired with the widget, not through the API keys.
    let (_, keys) = app.api(Method::GET, "/v1/api_keys?limit=100", None).await;
    let widget_key = keys["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["redacted"] == format!("pd_pk_…{}", &key[key.len() - 4..]))
        .expect("the widget's key is listed")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (method, path) in [
        (Method::POST, format!("/v1/api_keys/{widget_key}/roll")),
        (Method::DELETE, format!("/v1/api_keys/{widget_key}")),
    ] {
        let (status, body) = app.api(method, &path, Some(json!({}))).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (409, Some("key_in_use_by_widget")),
            "{path}"
        );
    }

    // A hidden one shows nothing then, and takes nothing.
    let id = closed["id"].as_str().unwrap();
    let (status, _) = app
        .api(
            Method::PATCH,
            &format!("/v1/widgets/{id}"),
            Some(json!({"when_unavailable": "hidden"})),
        )
        .await;
    assert_eq!(status, 200);
    let (_, _, config) = visit(
        &app,
        key,
        Some(SHOP),
        Method::GET,
        "/widget/v1/config",
        None,
    )
    .await;
    assert_eq!(config["mode"], "hidden");
    let (status, _, body) = visit(
        &app,
        key,
        Some(SHOP),
        Method::POST,
        "/widget/v1/callbacks",
        Some(json!({"phone": "+14155550124", "consent": true})),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (409, Some("unavailable")));
    // The same answer for a blocked number: a hidden widget tells nothing about numbers.
    let (status, _) = app
        .api(
            Method::POST,
            "/v1/blocked_numbers",
            Some(json!({"prefix": "+1415555"})),
        )
        .await;
    assert_eq!(status, 201);
    let callbacks = app.count("callbacks").await;
    let (status, _, body) = visit(
        &app,
        key,
        Some(SHOP),
        Method::POST,
        "/widget/v1/callbacks",
        Some(json!({"phone": "+14155550125", "consent": true})),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (409, Some("unavailable")));
    assert_eq!(app.count("callbacks").await, callbacks);

    // Settings are checked; a deleted widget's key stops working.
    let widgets_before = app.count("widgets").await;
    for bad in [
        json!({"name": "x", "allowed_origins": ["shop.example"]}),
        json!({"name": "x", "allowed_origins": []}),
        json!({"name": "x", "allowed_origins": [SHOP], "business_hours": {"timezone": "Nowhere/City", "days": {}}}),
        json!({"name": "x", "allowed_origins": [SHOP], "theme": {"color": "red"}}),
        json!({"name": "x", "allowed_origins": [SHOP], "theme": {"color": "#fff;}"}}),
        json!({"name": "x", "allowed_origins": [SHOP], "texts": {"fr": {"title": "Bonjour"}}}),
        json!({"name": "x", "allowed_origins": [SHOP], "agent_ids": ["agt_00000000000000000000000000"]}),
    ] {
        let (status, body) = app
            .api(Method::POST, "/v1/widgets", Some(bad.clone()))
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    assert_eq!(app.count("widgets").await, widgets_before);
    assert_eq!(
        app.api(Method::DELETE, &format!("/v1/widgets/{id}"), None)
            .await
            .0,
        200
    );
    let (status, _, _) = visit(
        &app,
        key,
        Some(SHOP),
        Method::GET,
        "/widget/v1/config",
        None,
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_can_be_followed_live_until_it_ends() {
    let app = TestApp::spawn().await;
    let client = app.client();
    let (agent_id, device, _) = app.agent_with_device(&client, "Ann").await;
    let agent = RunningAgent::start(device, Duration::from_millis(300)).await;
    let (status, call) = app
        .api(
            Method::POST,
            "/v1/calls",
            Some(json!({"to": "+14155550123", "agent_id": agent_id, "confirm": "auto"})),
        )
        .await;
    assert_eq!(status, 201, "{call}");
    let id = call["id"].as_str().unwrap();
    let resp = reqwest::Client::new()
        .get(format!("{}/v1/calls/{id}/stream", app.url))
        .bearer_auth(&app.org.secret_key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let events = sse(resp, Duration::from_secs(20)).await;
    assert_eq!(events[0].0, "call", "the call comes first");
    let timeline: Vec<&str> = events
        .iter()
        .filter(|(e, d)| e == "call_event" && d["kind"] != "push")
        .map(|(_, d)| d["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        timeline,
        [
            "queued",
            "offered",
            "delivered",
            "accepted",
            "dialing",
            "connected",
            "completed"
        ],
        "{events:?}"
    );
    let last_call = events.iter().rev().find(|(e, _)| e == "call").unwrap();
    assert_eq!(last_call.1["status"], "completed");
    // Another organization's key cannot follow it.
    let other = app.other_org().await;
    let r = reqwest::Client::new()
        .get(format!("{}/v1/calls/{id}/stream", app.url))
        .bearer_auth(&other.secret_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    agent.stop().await;
}

/// Round robin takes turns even when visitors ask at the same moment: each request claims
/// its turn (compare and set), so four callbacks at once reach two agents twice each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_takes_turns_when_visitors_ask_together() {
    let app = TestApp::spawn_tuned(|c| c.presence_window = Duration::from_secs(60)).await;
    let client = app.client();
    let (ann, ann_phone, _) = app.agent_with_device(&client, "Ann").await;
    let (bob, bob_phone, _) = app.agent_with_device(&client, "Bob").await;
    let _ann = live_stream(&ann_phone).await;
    let _bob = live_stream(&bob_phone).await;
    let w = widget(&app, json!({"routing": "round_robin"})).await;
    let key = w["publishable_key"].as_str().unwrap().to_owned();

    let asks = (0..4).map(|i| {
        let (app, key) = (&app, key.clone());
        async move {
            visit(
                app,
                &key,
                Some(SHOP),
                Method::POST,
                "/widget/v1/callbacks",
                Some(json!({"phone": format!("+1415555012{i}"), "consent": true})),
            )
            .await
        }
    });
    for (status, _, body) in futures::future::join_all(asks).await {
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["status"], "calling", "{body}");
    }
    let (status, calls) = app.api(Method::GET, "/v1/calls", None).await;
    assert_eq!(status, 200, "{calls}");
    let to = |agent: &str| {
        calls["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["agent_id"] == agent)
            .count()
    };
    assert_eq!((to(&ann), to(&bob)), (2, 2), "{calls}");

    // A request refused for its number takes no turn.
    let last = || async {
        sqlx::query_scalar::<_, Option<String>>("select last_agent_id from widgets")
            .fetch_one(&app.db)
            .await
            .unwrap()
    };
    let before = last().await;
    let (status, _, body) = visit(
        &app,
        &key,
        Some(SHOP),
        Method::POST,
        "/widget/v1/callbacks",
        Some(json!({"phone": "not a number", "consent": true})),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(last().await, before);
}
