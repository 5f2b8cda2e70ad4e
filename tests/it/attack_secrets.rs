//! Attacks of issue 17 (secrets), each kept as a test written as the attack.
//!
//! Hole 5: secrets sealed with a key printed in the source. A deployment reachable from
//! elsewhere must bring its own key; sealed values are bound to their row, so one copied
//! to another row does not open there; the key can be rotated.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use pushdial_core::crypto::{Bound, SecretBox};
use pushdial_core::shutdown::{self, Trigger};
use pushdial_core::Config;
use rand::RngCore;
use reqwest::Method;
use serde_json::{json, Value};

use crate::fakes::webhook::{verify, Receiver};
use crate::harness::*;

const BIN: &str = env!("CARGO_BIN_EXE_pushdial");

fn random_key() -> String {
    let mut k = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut k);
    base64::engine::general_purpose::STANDARD.encode(k)
}

/// Creates a webhook endpoint with `secret_key`'s organization: (id, secret).
async fn create_endpoint(base: &str, secret_key: &str, url: &str) -> (String, String) {
    let resp = reqwest::Client::new()
        .post(format!("{base}/v1/webhook_endpoints"))
        .bearer_auth(secret_key)
        .json(&json!({ "url": url }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let e: Value = resp.json().await.unwrap();
    (
        e["id"].as_str().unwrap().to_owned(),
        e["secret"].as_str().unwrap().to_owned(),
    )
}

async fn send_test(base: &str, secret_key: &str, endpoint: &str) {
    let resp = reqwest::Client::new()
        .post(format!("{base}/v1/webhook_endpoints/{endpoint}/test"))
        .bearer_auth(secret_key)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
}

/// The endpoint's latest attempt that failed before an answer, once one is recorded.
async fn failed_attempt(base: &str, secret_key: &str, endpoint: &str) -> Value {
    let http = reqwest::Client::new();
    eventually(
        Duration::from_secs(15),
        "a failed delivery attempt",
        || async {
            let list: Value = http
                .get(format!("{base}/v1/webhook_endpoints/{endpoint}/attempts"))
                .bearer_auth(secret_key)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            list["data"]
                .as_array()?
                .iter()
                .find(|a| a["error"].is_string())
                .cloned()
        },
    )
    .await
}

async fn sealed_secret(app: &TestApp, endpoint: &str) -> Vec<u8> {
    sqlx::query_scalar("select secret_sealed from webhook_endpoints where id = $1")
        .bind(endpoint)
        .fetch_one(&app.db)
        .await
        .unwrap()
}

async fn set_sealed_secret(app: &TestApp, endpoint: &str, sealed: &[u8]) {
    sqlx::query("update webhook_endpoints set secret_sealed = $2 where id = $1")
        .bind(endpoint)
        .bind(sealed)
        .execute(&app.db)
        .await
        .unwrap();
}

/// api and worker on `config`'s database (another process of the same deployment, say
/// after a restart with other keys); stops when the trigger is dropped.
async fn serve(mut config: Config) -> (String, Trigger) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    config.listen = listener.local_addr().unwrap();
    let url = format!("http://{}", config.listen);
    let (trigger, stop) = shutdown::channel();
    tokio::spawn(pushdial::run(
        config,
        Some(listener),
        pushdial::Roles {
            api: true,
            worker: true,
        },
        stop,
    ));
    let http = reqwest::Client::new();
    eventually(
        Duration::from_secs(10),
        "the server to be ready",
        || async {
            let r = http.get(format!("{url}/readyz")).send().await.ok()?;
            (r.status() == 200).then_some(())
        },
    )
    .await;
    (url, trigger)
}

/// Runs `pushdial` with only `env` set besides PATH, for at most 20 s: (success, stdout,
/// stderr, time taken).
fn pushdial(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String, Duration) {
    let started = Instant::now();
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A server that does start never exits by itself: stop it, and say so.
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
        started.elapsed(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_reachable_from_elsewhere_refuses_to_start_without_an_encryption_key() {
    // The attack: run the stock binary (or image) on a public host without a key; every
    // webhook secret and push credential is then sealed with the key printed in the source.
    let database_url = fresh_database().await;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let listen = format!("127.0.0.1:{port}");
    let everywhere = format!("0.0.0.0:{port}");
    let cases: [(&str, Vec<(&str, &str)>); 4] = [
        (
            "serve",
            vec![("PUSHDIAL_PUBLIC_URL", "https://pushdial.example.com")],
        ),
        (
            "api",
            vec![("PUSHDIAL_PUBLIC_URL", "https://pushdial.example.com/")],
        ),
        (
            "worker",
            vec![
                ("PUSHDIAL_PUBLIC_URL", "https://pushdial.example.com"),
                // An empty value is no key either.
                ("PUSHDIAL_ENCRYPTION_KEY", ""),
            ],
        ),
        // No public URL: it follows the listen address, here every interface (as the
        // container image listens).
        ("serve", vec![("PUSHDIAL_LISTEN", everywhere.as_str())]),
    ];
    for (command, extra) in cases {
        let mut env = vec![
            ("DATABASE_URL", database_url.as_str()),
            ("PUSHDIAL_LISTEN", listen.as_str()),
        ];
        env.extend(extra);
        let (ok, stdout, stderr, _) = pushdial(&[command], &env);
        assert!(!ok, "`pushdial {command}` {env:?} started");
        assert_eq!(stdout, "");
        assert_eq!(
            stderr.lines().count(),
            1,
            "one line on stderr, got:\n{stderr}"
        );
        assert!(
            stderr.starts_with("pushdial: PUSHDIAL_ENCRYPTION_KEY is not set")
                && stderr.contains("is not loopback"),
            "{stderr}"
        );
    }
    // Loopback keeps the development key (with its warning); a key opens the way anywhere.
    let mut config = test_config(&database_url, "x:");
    config.public_url = Some("http://localhost:8080".into());
    assert!(pushdial_core::crypto::check_config(&config).is_ok());
    config.public_url = Some("http://[::1]:8080".into());
    assert!(pushdial_core::crypto::check_config(&config).is_ok());
    config.public_url = Some("https://pushdial.example.com".into());
    assert!(pushdial_core::crypto::check_config(&config).is_err());
    config.encryption_key = Some(random_key());
    assert!(pushdial_core::crypto::check_config(&config).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_webhook_secret_copied_to_another_row_does_not_sign_there() {
    // The attack: with write access to the table (an injection, a restored dump, a
    // careless migration), move sealed secrets between endpoints so that deliveries to
    // one endpoint are signed with another's secret, inside one organization or across two.
    let app = TestApp::spawn_tuned(|c| {
        c.encryption_key = Some(random_key());
        c.webhook_allow_subnets = "127.0.0.0/8".into();
        c.webhook_retry_schedule = "0s".into();
    })
    .await;
    let other = app.other_org().await;
    let sk = app.org.secret_key.clone();
    let (r1, url1) = Receiver::start(vec![]).await;
    let (r2, url2) = Receiver::start(vec![]).await;
    let (r3, url3) = Receiver::start(vec![]).await;
    let (e1, s1) = create_endpoint(&app.url, &sk, &url1).await;
    let (e2, _) = create_endpoint(&app.url, &sk, &url2).await;
    let (e3, _) = create_endpoint(&app.url, &other.secret_key, &url3).await;

    // Unswapped, each endpoint's delivery is signed with its own secret.
    send_test(&app.url, &sk, &e1).await;
    let got = eventually(Duration::from_secs(15), "a delivery", || async {
        let got = r1.got();
        (!got.is_empty()).then_some(got)
    })
    .await;
    assert!(verify(&s1, &got[0]));
    settle(&app).await;
    r1.got.lock().unwrap().clear();

    // e1 takes e2's sealed secret (same organization), e2 takes e3's (another
    // organization's), e3 takes e1's.
    let (v1, v2, v3) = (
        sealed_secret(&app, &e1).await,
        sealed_secret(&app, &e2).await,
        sealed_secret(&app, &e3).await,
    );
    set_sealed_secret(&app, &e1, &v2).await;
    set_sealed_secret(&app, &e2, &v3).await;
    set_sealed_secret(&app, &e3, &v1).await;

    send_test(&app.url, &sk, &e1).await;
    send_test(&app.url, &sk, &e2).await;
    send_test(&app.url, &other.secret_key, &e3).await;
    for (endpoint, key) in [(&e1, &sk), (&e2, &sk), (&e3, &other.secret_key)] {
        let attempt = failed_attempt(&app.url, key, endpoint).await;
        assert_eq!(attempt["status_code"], Value::Null, "{attempt}");
        let error = attempt["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("signing secret unreadable") && error.contains("belongs to another row"),
            "{attempt}"
        );
    }
    // Nothing was sent, so nothing signed with another row's secret.
    settle(&app).await;
    for (r, n) in [(&r1, 1), (&r2, 2), (&r3, 3)] {
        assert!(r.got().is_empty(), "receiver {n} got a delivery");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_encryption_key_can_be_rotated_without_losing_a_secret() {
    let (key_a, key_b) = (random_key(), random_key());
    // Phase 1, key A: an api only, so that no worker holding A alone takes deliveries later.
    let a = key_a.clone();
    let app = TestApp::spawn_with(
        move |c| {
            c.encryption_key = Some(a);
            c.webhook_allow_subnets = "127.0.0.0/8".into();
            c.webhook_retry_schedule = "0s".into();
        },
        pushdial::Roles {
            api: true,
            worker: false,
        },
    )
    .await;
    let sk = app.org.secret_key.clone();
    let (r1, url1) = Receiver::start(vec![]).await;
    let (r2, url2) = Receiver::start(vec![]).await;
    let (e1, s1) = create_endpoint(&app.url, &sk, &url1).await;
    let (e2, _) = create_endpoint(&app.url, &sk, &url2).await;
    let (vapid_private, _) = pushdial_core::push::webpush::VapidKey::generate();
    let (status, credential) = app
        .api(
            Method::PUT,
            "/v1/push_credentials/webpush",
            Some(json!({ "private_key": vapid_private, "subject": "mailto:ops@example.com" })),
        )
        .await;
    assert_eq!(status, 200, "{credential}");
    let e2_under_a = sealed_secret(&app, &e2).await;

    // Rotation: B current, A previous, while phase 1 still runs.
    let rotate = |current: &str, previous: Option<&str>| {
        let mut env = vec![
            ("DATABASE_URL", app.database_url.as_str()),
            ("PUSHDIAL_ENCRYPTION_KEY", current),
        ];
        if let Some(p) = previous {
            env.push(("PUSHDIAL_ENCRYPTION_KEYS_PREVIOUS", p));
        }
        let (ok, stdout, stderr, _) =
            pushdial(&["admin", "rotate-encryption-key", "--batch", "1"], &env);
        let counts: Value = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
        (ok, counts, stderr)
    };
    let (ok, counts, stderr) = rotate(&key_b, Some(&key_a));
    assert!(ok, "{stderr}");
    let counts_of = |v: &Value, kind: &str| -> HashMap<String, u64> {
        serde_json::from_value(v[kind].clone()).unwrap()
    };
    let expect = |resealed: u64, current: u64, unreadable: u64| {
        HashMap::from([
            ("resealed".to_owned(), resealed),
            ("current".to_owned(), current),
            ("unreadable".to_owned(), unreadable),
        ])
    };
    assert_eq!(counts_of(&counts, "webhook_secrets"), expect(2, 0, 0));
    assert_eq!(counts_of(&counts, "push_credentials"), expect(1, 0, 0));
    // Again: nothing left to do.
    let (ok, counts, stderr) = rotate(&key_b, Some(&key_a));
    assert!(ok, "{stderr}");
    assert_eq!(counts_of(&counts, "webhook_secrets"), expect(0, 2, 0));
    assert_eq!(counts_of(&counts, "push_credentials"), expect(0, 1, 0));

    // A value still sealed under A alone (say, written by a process that had not been
    // given B yet).
    set_sealed_secret(&app, &e2, &e2_under_a).await;

    // Phase 2, key B alone.
    let mut config = app.config.clone();
    config.encryption_key = Some(key_b.clone());
    config.encryption_keys_previous = None;
    let (url_b, _stop_b) = serve(config).await;

    // The endpoint's secret, shown once at creation, still verifies its deliveries.
    send_test(&url_b, &sk, &e1).await;
    let got = eventually(Duration::from_secs(15), "a delivery", || async {
        let got = r1.got();
        (!got.is_empty()).then_some(got)
    })
    .await;
    assert!(
        verify(&s1, &got[0]),
        "signed with the secret shown at creation"
    );

    // The push credential opens with B alone, bound to its row, and no longer with A.
    let (org_id, provider, id, stored): (String, String, String, Vec<u8>) =
        sqlx::query_as("select org_id, provider, id, secret from push_credentials")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(id, credential["id"].as_str().unwrap());
    let bound = Bound::PushCredential {
        org_id: &org_id,
        provider: &provider,
        id: &id,
    };
    let only_b = SecretBox::from_keys(Some(&key_b), None).unwrap();
    assert_eq!(
        only_b.open(bound, &stored).unwrap(),
        vapid_private.as_bytes()
    );
    let only_a = SecretBox::from_keys(Some(&key_a), None).unwrap();
    assert!(only_a.open(bound, &stored).is_err());

    // The value under A alone fails with an error that says what to do, and the server
    // goes on serving.
    send_test(&url_b, &sk, &e2).await;
    let attempt = failed_attempt(&url_b, &sk, &e2).await;
    let error = attempt["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("which is not configured")
            && error.contains("PUSHDIAL_ENCRYPTION_KEYS_PREVIOUS"),
        "{attempt}"
    );
    assert!(r2.got().is_empty());
    let ready = reqwest::get(format!("{url_b}/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);

    // Rotating with B alone cannot open it either: it says so and fails, leaving it as it was.
    let (ok, counts, stderr) = rotate(&key_b, None);
    assert!(!ok);
    assert_eq!(counts_of(&counts, "webhook_secrets"), expect(0, 1, 1));
    assert!(
        stderr.contains("PUSHDIAL_ENCRYPTION_KEYS_PREVIOUS"),
        "{stderr}"
    );
    assert_eq!(sealed_secret(&app, &e2).await, e2_under_a);
}
