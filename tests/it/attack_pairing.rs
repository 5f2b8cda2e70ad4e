//! Attacks of issue 17 (pairing), each kept as a test written as the attack.
//!
//! A typed pairing code is ~39 bits. Limited per /64 and per code, an attacker with a /48
//! had ~650,000 guesses a minute, and a hit is a device on a victim's agent; the limits
//! failed open while Redis was down. The server trusts `X-Forwarded-For` from loopback in
//! these tests, so that one test client can speak from many addresses.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::*;

/// A server that takes the client's address from `X-Forwarded-For` (as behind a proxy).
async fn app_behind_proxy() -> TestApp {
    TestApp::spawn_tuned(|c| c.trusted_proxies = "127.0.0.1".into()).await
}

/// `POST /agent/v1/pair` from `from`: (status, Retry-After, body).
async fn pair_from(app: &TestApp, from: &str, body: Value) -> (u16, Option<String>, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/agent/v1/pair", app.url))
        .header("x-forwarded-for", from)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, retry_after, resp.json().await.unwrap_or_default())
}

fn typed(code: &str) -> Value {
    json!({"code": code, "name": "attacker", "platform": "android"})
}

/// A wrong code: well-formed, and not the real one.
fn wrong_code(real: &str, i: usize) -> String {
    let alphabet = b"23456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mut code: Vec<u8> = real.bytes().collect();
    code[0] = alphabet[i % alphabet.len()];
    code[1] = alphabet[(i / alphabet.len()) % alphabet.len()];
    code[2] = if code[2] == b'2' { b'3' } else { b'2' };
    String::from_utf8(code).unwrap()
}

/// A pairing code for a new agent: (code, pairing token, pair URI).
async fn new_code(app: &TestApp) -> (String, String, String) {
    let client = app.client();
    let agent = client.create_agent("Victim", None).await.unwrap();
    let (status, body) = app
        .api(
            reqwest::Method::POST,
            "/v1/pairing_codes",
            Some(json!({"agent_id": agent.id})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    (
        body["code"].as_str().unwrap().to_owned(),
        body["pairing_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        body["pair_uri"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_codes_from_many_addresses_of_one_48_is_cut_off() {
    let app = app_behind_proxy().await;
    let (code, _, _) = new_code(&app).await;
    let budget = app.config.limit_pairing_per_ip_per_minute as usize;
    // Each guess from another /64 of the same /48 (2001:db8:77::/48).
    for i in 0..budget {
        let from = format!("2001:db8:77:{i:x}::1");
        let (status, _, body) = pair_from(&app, &from, typed(&wrong_code(&code, i))).await;
        assert_eq!(status, 404, "guess {i} from {from}: {body}");
    }
    let before = app.counts().await;
    // Past the /48's budget even the right code is refused, from any /64 of it.
    let (status, retry_after, body) = pair_from(&app, "2001:db8:77:ffff::9", typed(&code)).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["code"], "rate_limited");
    assert!(retry_after.is_some());
    assert_eq!(app.counts().await, before, "nothing written");
    // Another network is not affected: the code still pairs from there.
    let (status, _, body) = pair_from(&app, "2001:db8:78::1", typed(&code)).await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_failed_typed_codes_locks_typed_pairing_but_not_the_qr_token() {
    let app = app_behind_proxy().await;
    let (code, token, _) = new_code(&app).await;
    let (other_code, _, _) = new_code(&app).await;
    // Every guess from another address: the per-address limits never apply. Guessing goes
    // on until typed codes are locked, which is not before the budget is spent.
    let budget = pushdial_core::limits::PAIRING_FAILURES_PER_MINUTE as usize;
    let mut refused = None;
    for i in 0..budget + 20 {
        let from = format!("198.51.{}.{}", i / 200, i % 200 + 1);
        let (status, _, body) = pair_from(&app, &from, typed(&wrong_code(&code, i))).await;
        match status {
            404 => {}
            429 => {
                assert_eq!(body["code"], "rate_limited");
                refused = Some(i);
                break;
            }
            other => panic!("guess {i}: {other} {body}"),
        }
    }
    let refused = refused.expect("typed pairing locked");
    assert!(refused >= budget, "locked after {refused} failures");
    let before = app.counts().await;
    // Typed codes are locked for a while: even the right one is refused.
    let (status, retry_after, body) = pair_from(&app, "203.0.113.50", typed(&code)).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["code"], "rate_limited");
    let wait: u64 = retry_after.unwrap().parse().unwrap();
    assert!(wait > 30, "locked for a while, not {wait} s");
    let (status, _, _) = pair_from(&app, "203.0.113.51", typed(&other_code)).await;
    assert_eq!(status, 429);
    assert_eq!(app.counts().await, before, "nothing written");
    // The QR code's token still pairs (it cannot be guessed).
    let (status, _, body) = pair_from(
        &app,
        "203.0.113.52",
        json!({"token": token, "name": "Victim's phone", "platform": "android"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_qr_code_carries_a_one_time_token_of_at_least_128_bits() {
    let app = app_behind_proxy().await;
    let (code, token, pair_uri) = new_code(&app).await;
    let secret = token.strip_prefix("pd_pair_").expect("pd_pair_ token");
    assert!(
        secret.len() * 4 >= 128 && secret.chars().all(|c| c.is_ascii_hexdigit()),
        "{token}"
    );
    assert!(pair_uri.contains(&format!("token={token}")), "{pair_uri}");
    assert!(
        !pair_uri.contains(&code),
        "the QR code does not carry the short code: {pair_uri}"
    );

    let body = json!({"token": token, "name": "phone", "platform": "android"});
    let (status, _, paired) = pair_from(&app, "192.0.2.10", body.clone()).await;
    assert_eq!(status, 201, "{paired}");
    assert!(paired["token"].as_str().unwrap().starts_with("pd_dev_"));
    let before = app.counts().await;
    // Single use: the token again, or the code it came with, pairs nothing more.
    let (status, _, _) = pair_from(&app, "192.0.2.11", body).await;
    assert_eq!(status, 404);
    let (status, _, _) = pair_from(&app, "192.0.2.12", typed(&code)).await;
    assert_eq!(status, 404);
    // A token of the wrong shape is not looked up.
    let (status, _, problem) = pair_from(
        &app,
        "192.0.2.13",
        json!({"token": "pd_pair_1234", "name": "phone", "platform": "android"}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(problem["code"], "invalid_pairing_code");
    assert_eq!(app.counts().await, before, "nothing written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairing_fails_closed_while_redis_is_down() {
    let redis = PrivateRedis::start().await;
    let url = redis.url.clone();
    let app = TestApp::spawn_tuned(move |c| c.redis_url = url).await;
    let (code, token, _) = new_code(&app).await;

    drop(redis);
    let before = app.counts().await;
    for body in [
        typed(&code),
        json!({"token": token, "name": "phone", "platform": "android"}),
    ] {
        let resp = reqwest::Client::new()
            .post(format!("{}/agent/v1/pair", app.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 503);
        assert!(resp.headers().get("retry-after").is_some());
        let problem: Value = resp.json().await.unwrap();
        assert_eq!(problem["code"], "limits_unavailable");
    }
    assert_eq!(app.counts().await, before, "nothing written");
    let unused: i64 =
        sqlx::query_scalar("select count(*) from pairing_codes where used_at is null")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(unused, 1, "the code is still unused");
    tokio::time::sleep(Duration::from_millis(10)).await;
}
