//! The web surfaces in a real browser: Debian's Chromium driven by `playwright-core`
//! (`web/e2e/*.mjs`). Each test starts pushdial serving the built `web/dist`, and the
//! peers the scenario needs (reference agents, the OpenID Connect provider, a loopback
//! Web Push service, tenants' pages on other origins); the scenario asks for server-side
//! acts through `REQ`/`RES` lines. Screenshots are kept in `target/screenshots/<scenario>/`.

use std::future::Future;
use std::pin::Pin;
use std::process::Stdio;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::harness::*;

fn root() -> &'static str {
    env!("CARGO_MANIFEST_DIR")
}

/// The built web surfaces; a clear failure when the ones `needed` are not built.
pub fn web_dist(needed: &[&str]) -> std::path::PathBuf {
    let dist = std::path::Path::new(root()).join("web/dist");
    for needed in needed {
        assert!(
            dist.join(needed).is_file(),
            "web/dist/{needed} is missing: build the web surfaces first (./scripts/test does)"
        );
    }
    dist
}

type Handler<'a> =
    Box<dyn FnMut(Value) -> Pin<Box<dyn Future<Output = Value> + Send + 'a>> + Send + 'a>;

/// Runs `web/e2e/{name}.mjs` with `env`, answering its requests with `handle`; fails the
/// test when the scenario fails.
pub async fn run_scenario(name: &str, env: &[(&str, String)], handle: Handler<'_>) {
    run_script(name, &format!("web/e2e/{name}.mjs"), env, handle).await
}

/// Runs the node script `script` (relative to the repository) as scenario `name`.
pub async fn run_script(name: &str, script: &str, env: &[(&str, String)], mut handle: Handler<'_>) {
    let shots = std::path::Path::new(root())
        .join("target/screenshots")
        .join(name);
    let _ = std::fs::remove_dir_all(&shots);
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(format!("{}/{script}", root()))
        .env("SHOTS", &shots)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .expect("node and web/e2e's packages are installed (./scripts/test installs them)");
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let run = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            match line.strip_prefix("REQ ") {
                Some(req) => {
                    let answer = handle(serde_json::from_str(req).unwrap()).await;
                    stdin
                        .write_all(format!("RES {answer}\n").as_bytes())
                        .await
                        .unwrap();
                }
                None => eprintln!("[{name}] {line}"),
            }
        }
        child.wait().await.unwrap()
    };
    let status = tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .unwrap_or_else(|_| panic!("scenario {name} did not finish in 3 minutes"));
    assert!(
        status.success(),
        "browser scenario {name} failed (see its output above)"
    );
    assert!(shots.is_dir(), "scenario {name} took no screenshots");
}

/// A tenant's website on its own loopback origin: `/` in English and `/zh` in Chinese,
/// each with the widget's tag (and CSS that would wreck an unprotected widget).
async fn tenant_site(app_url: &str, key: &str) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let page = |lang: &str| {
        format!(
            "<!doctype html><html lang=\"{lang}\"><head><meta charset=\"utf-8\"><title>Shop</title>\
             <style>button {{ all: unset; color: rgb(255, 0, 0) !important; }} \
             * {{ font-family: serif; }}</style></head>\
             <body><h1>Shop</h1><script src=\"{app_url}/widget.js\" data-key=\"{key}\" async></script></body></html>"
        )
    };
    let (en, zh) = (page("en"), page("zh-CN"));
    let app = poem::Route::new()
        .at(
            "/",
            poem::endpoint::make_sync(move |_| poem::web::Html(en.clone())),
        )
        .at(
            "/zh",
            poem::endpoint::make_sync(move |_| poem::web::Html(zh.clone())),
        );
    let acceptor = poem::listener::TcpAcceptor::from_tokio(
        tokio::net::TcpListener::from_std(listener).unwrap(),
    )
    .unwrap();
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(app));
    origin
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn widget_on_a_tenants_page_calls_the_visitor_back_and_refuses_other_origins() {
    let dist = web_dist(&["widget.js"]);
    let app = TestApp::spawn_tuned(move |c| c.web_dir = dist).await;
    let client = app.client();
    let (_, device, _) = app.agent_with_device(&client, "Ann").await;
    let agent = RunningAgent::start(device, Duration::from_millis(500)).await;
    // The widget's key goes into the sites' pages, and the allowed site's origin into the
    // widget: create it, serve the sites, then allow the one.
    let (status, w) = app
        .api(
            Method::POST,
            "/v1/widgets",
            Some(json!({"name": "Shop", "allowed_origins": ["http://127.0.0.1:1"]})),
        )
        .await;
    assert_eq!(status, 201, "{w}");
    let key = w["publishable_key"].as_str().unwrap().to_owned();
    let ok = tenant_site(&app.url, &key).await;
    let bad = tenant_site(&app.url, &key).await;
    let id = w["id"].as_str().unwrap();
    let (status, _) = app
        .api(
            Method::PATCH,
            &format!("/v1/widgets/{id}"),
            Some(json!({"allowed_origins": [ok]})),
        )
        .await;
    assert_eq!(status, 200);

    let app_ref = &app;
    run_scenario(
        "widget",
        &[
            ("SHOP_OK", format!("{ok}/")),
            ("SHOP_BAD", format!("{bad}/")),
        ],
        Box::new(move |req| {
            Box::pin(async move {
                match req["op"].as_str() {
                    Some("calls") => {
                        let (_, calls) = app_ref.api(Method::GET, "/v1/calls", None).await;
                        let data = calls["data"].as_array().cloned().unwrap_or_default();
                        json!({"count": data.len(), "to": data.first().map(|c| c["to"].clone())})
                    }
                    other => panic!("unknown request {other:?}"),
                }
            })
        }),
    )
    .await;
    assert_eq!(
        app.count("callbacks").await,
        1,
        "the foreign page wrote nothing"
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_agent_pairs_registers_for_push_and_takes_an_offer() {
    let dist = web_dist(&["agent/index.html", "agent/sw.js"]);
    let (vapid, _) = pushdial_core::push::webpush::VapidKey::generate();
    let app = TestApp::spawn_tuned(move |c| {
        c.web_dir = dist;
        c.vapid_private_key = Some(vapid);
        // The loopback push service is on 127.0.0.1.
        c.webhook_allow_subnets = "127.0.0.0/8".into();
    })
    .await;
    let client = app.client();
    let ann = client.create_agent("Ann", None).await.unwrap();
    let code = client.create_pairing_code(&ann.id).await.unwrap();
    let receiver = tokio::sync::Mutex::new(
        pushdial_sdk::webpush::WebPushReceiver::bind("127.0.0.1:0".parse().unwrap(), None)
            .await
            .unwrap(),
    );
    let subscription = receiver.lock().await.subscription().clone();

    let (app_ref, client_ref, ann_ref, receiver_ref) = (&app, &client, &ann, &receiver);
    run_scenario(
        "agent",
        &[
            ("APP", app.url.clone()),
            ("CODE", code.code.clone()),
            ("SUBSCRIPTION", subscription.to_string()),
        ],
        Box::new(move |req| {
            Box::pin(async move {
                match req["op"].as_str() {
                    Some("device") => {
                        let devices = client_ref.list_devices(Some(&ann_ref.id)).await.unwrap();
                        let d = devices.data.first().expect("a paired device");
                        json!({"push_channel": d.push_channel, "presence": d.presence})
                    }
                    Some("call_and_receive_push") => {
                        let (status, call) = app_ref
                            .api(
                                Method::POST,
                                "/v1/calls",
                                Some(json!({"to": "+14155550123", "agent_id": ann_ref.id})),
                            )
                            .await;
                        assert_eq!(status, 201, "{call}");
                        let offer = tokio::time::timeout(
                            Duration::from_secs(15),
                            receiver_ref.lock().await.next(),
                        )
                        .await
                        .expect("the offer was pushed")
                        .expect("the push service is running");
                        json!({
                            "call_id": call["id"],
                            "payload": {"type": "call.offer", "call_id": offer.call_id, "expires_at": offer.expires_at},
                        })
                    }
                    Some("status") => {
                        let id = req["call_id"].as_str().unwrap().to_owned();
                        let wanted = req["at_least"].as_str().unwrap().to_owned();
                        let order = ["queued", "offered", "delivered", "accepted", "dialing", "connected", "completed"];
                        let rank = |s: &str| order.iter().position(|o| *o == s);
                        let mut last = Value::Null;
                        for _ in 0..100 {
                            let (_, call) = app_ref.api(Method::GET, &format!("/v1/calls/{id}"), None).await;
                            let reached = rank(call["status"].as_str().unwrap_or(""))
                                .zip(rank(&wanted))
                                .is_some_and(|(now, want)| now >= want);
                            last = call;
                            if reached {
                                return json!({"ok": true, "status": last["status"]});
                            }
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        json!({"ok": false, "status": last["status"]})
                    }
                    other => panic!("unknown request {other:?}"),
                }
            })
        }),
    )
    .await;
    let (_, events) = app.api(Method::GET, "/v1/calls?limit=1", None).await;
    let call_id = events["data"][0]["id"].as_str().unwrap().to_owned();
    let (_, timeline) = app
        .api(Method::GET, &format!("/v1/calls/{call_id}/events"), None)
        .await;
    let statuses: Vec<&str> = timeline["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "status")
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["queued", "offered", "delivered", "accepted", "dialing"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_signs_in_pairs_the_reference_agent_and_follows_a_call_to_completed() {
    let dist = web_dist(&["console/index.html"]);
    let (app, provider) = crate::fakes::oidc::app_with_oidc(move |c| {
        c.web_dir = dist;
        c.presence_window = Duration::from_secs(30);
    })
    .await;
    let agent = tokio::sync::Mutex::new(None);
    let (app_ref, agent_ref) = (&app, &agent);
    run_scenario(
        "console",
        &[
            ("APP", app.url.clone()),
            ("ISSUER", provider.issuer.clone()),
        ],
        Box::new(move |req| {
            Box::pin(async move {
                match req["op"].as_str() {
                    Some("pair") => {
                        let code = req["code"].as_str().unwrap();
                        let (device, _) =
                            app_ref.pair_device_with_code(code, "Alice's phone").await;
                        let running = RunningAgent::start(device, Duration::from_millis(500)).await;
                        *agent_ref.lock().await = Some(running);
                        json!({"ok": true})
                    }
                    Some("last_call") => {
                        let row: (String, String) = sqlx::query_as(
                            "select status, to_number from calls order by created_at desc limit 1",
                        )
                        .fetch_one(&app_ref.db)
                        .await
                        .unwrap();
                        json!({"status": row.0, "to": row.1})
                    }
                    other => panic!("unknown request {other:?}"),
                }
            })
        }),
    )
    .await;
    let running = agent.lock().await.take();
    if let Some(a) = running {
        a.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_smoke_through_every_page() {
    let dist = web_dist(&["console/index.html", "widget.js"]);
    // The smoke script plays the phone itself, woken through the loopback push channel.
    let phone_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (app, _provider) = crate::fakes::oidc::app_with_oidc(move |c| {
        c.web_dir = dist;
        c.loopback_push_url = Some(format!("http://127.0.0.1:{phone_port}/push"));
    })
    .await;
    run_script(
        "console-smoke",
        "web/console/e2e/smoke.mjs",
        &[
            ("CONSOLE_URL", app.url.clone()),
            ("PHONE_PORT", phone_port.to_string()),
        ],
        Box::new(|req| Box::pin(async move { panic!("unexpected request {req}") })),
    )
    .await;
}
