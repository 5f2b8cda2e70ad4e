//! Tenant rate limits: shared by every api process through Redis, reported in
//! `RateLimit-Policy` / `RateLimit` headers, refused with 429, `Retry-After` and a problem;
//! unauthenticated requests consume nothing.

use std::time::{Duration, Instant};

use pushdial_sdk::CreateCall;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_api_processes_enforce_one_organization_limit_once() {
    let app = TestApp::spawn_tuned(|c| c.limit_api_per_second = 5).await;
    let (replica, _replica_stop) = app.spawn_api_replica().await;
    let http = reqwest::Client::new();

    // Failed authentication consumes nothing.
    for _ in 0..10 {
        let r = http
            .get(format!("{}/v1/agents", app.url))
            .bearer_auth("pd_sk_wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let first = http
        .get(format!("{}/v1/agents", app.url))
        .bearer_auth(&app.org.secret_key)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["ratelimit-policy"], "\"org\";q=5;w=1");
    assert_eq!(
        first.headers()["ratelimit"]
            .to_str()
            .unwrap()
            .split(';')
            .nth(1),
        Some("r=4"),
        "the 401s took nothing"
    );

    // Requests spread over both processes: together they get the organization's limit once.
    let started = Instant::now();
    let (mut ok, mut limited) = (0, 0);
    for i in 0..30 {
        let base = if i % 2 == 0 { &app.url } else { &replica };
        let r = http
            .get(format!("{base}/v1/agents"))
            .bearer_auth(&app.org.secret_key)
            .send()
            .await
            .unwrap();
        match r.status().as_u16() {
            200 => ok += 1,
            429 => {
                limited += 1;
                let retry: u64 = r.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!(retry >= 1);
                assert_eq!(r.headers()["content-type"], "application/problem+json");
                let problem: serde_json::Value = r.json().await.unwrap();
                assert_eq!(problem["code"], "rate_limited");
                assert_eq!(problem["status"], 429);
            }
            other => panic!("unexpected status {other}"),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    // At most the 4 left in the burst plus what refilled at 5/s meanwhile (+1 for rounding);
    // two independent per-process limits would have allowed about twice that.
    let bound = 4 + (elapsed * 5.0).ceil() as i32 + 1;
    assert!(ok <= bound, "{ok} allowed in {elapsed:.2}s (bound {bound})");
    assert!(limited > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_to_one_number_are_limited_per_hour() {
    let app = TestApp::spawn_tuned(|c| {
        c.limit_calls_per_number_per_hour = 2;
        c.limit_calls_per_minute = 3;
        c.presence_window = Duration::from_secs(60);
        c.offer_timeout = Duration::from_secs(60);
    })
    .await;
    let client = app.client();
    let (agent_id, device, _) = app.agent_with_device(&client, "Ann").await;
    let _stream = live_stream(&device).await;
    for _ in 0..2 {
        client
            .create_call(&CreateCall::for_agent("+12125551234", &agent_id), None)
            .await
            .unwrap();
    }
    settle(&app).await;
    let before = app.counts().await;
    let err = client
        .create_call(&CreateCall::for_agent("+12125551234", &agent_id), None)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(429));
    assert_eq!(err.code(), Some("rate_limited"));
    assert_eq!(app.counts().await, before, "a refused call writes nothing");
    // Another number is not affected, and the refusal spent none of the organization's
    // calls per minute (both quotas are taken together, all or nothing): the third call
    // of the minute is placed, the fourth is refused by that limit.
    client
        .create_call(&CreateCall::for_agent("+12125551235", &agent_id), None)
        .await
        .unwrap();
    let err = client
        .create_call(&CreateCall::for_agent("+12125551236", &agent_id), None)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(429));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flood_limit_refuses_with_retry_after_and_refused_calls_take_no_quota() {
    let app = TestApp::spawn_tuned(|c| {
        c.limit_ip_per_second = 3;
        c.limit_calls_per_number_per_hour = 1;
    })
    .await;
    let http = reqwest::Client::new();
    let mut refused = None;
    for _ in 0..10 {
        let r = http
            .get(format!("{}/v1/nothing-{}", app.url, rand::random::<u32>()))
            .send()
            .await
            .unwrap();
        if r.status() == 429 {
            refused = Some(r);
            break;
        }
    }
    let refused = refused.expect("the flood limit refuses");
    assert!(refused.headers().contains_key("retry-after"));
    let problem: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(problem["code"], "rate_limited");

    // Metric labels stay the API's routes: random paths are `other`.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let text = app.metrics().await;
    assert!(text.contains("route=\"other\""));
    assert!(!text.contains("nothing-"), "no label per random path");

    // A call refused because no phone is connected takes no quota of its number.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let client = app.client();
    let (agent_id, device, _) = app.agent_with_device(&client, "Ann").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let err = client
        .create_call(&CreateCall::for_agent("+12125551234", &agent_id), None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("no_device_reachable"));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let _stream = live_stream(&device).await;
    client
        .create_call(&CreateCall::for_agent("+12125551234", &agent_id), None)
        .await
        .expect("the number's one call an hour is still there");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairing_attempts_are_limited_per_client_behind_a_trusted_proxy() {
    let app = TestApp::spawn_tuned(|c| {
        c.trusted_proxies = "127.0.0.0/8".into();
        c.limit_pairing_per_ip_per_minute = 2;
    })
    .await;
    let http = reqwest::Client::new();
    let attempt = |client: &'static str| {
        http.post(format!("{}/agent/v1/pair", app.url))
            .header("x-forwarded-for", format!("203.0.113.50, {client}"))
            .json(&serde_json::json!({ "code": "2345-6789", "name": "x", "platform": "cli" }))
            .send()
    };
    // Wrong codes from one client: two tries a minute, then 429.
    for _ in 0..2 {
        assert_eq!(attempt("198.51.100.1").await.unwrap().status(), 404);
    }
    let refused = attempt("198.51.100.1").await.unwrap();
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    // Another client behind the same proxy has its own budget.
    assert_eq!(attempt("198.51.100.2").await.unwrap().status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_limit_below_the_organization_limit_applies_per_key() {
    let app = TestApp::spawn_tuned(|c| {
        c.limit_api_per_second = 50;
        c.limit_key_per_second = Some(2);
    })
    .await;
    let http = reqwest::Client::new();
    let statuses: Vec<u16> = futures::future::join_all((0..4).map(|_| {
        http.get(format!("{}/v1/agents", app.url))
            .bearer_auth(&app.org.secret_key)
            .send()
    }))
    .await
    .into_iter()
    .map(|r| r.unwrap().status().as_u16())
    .collect();
    assert!(
        statuses.contains(&429),
        "the key's own limit refused: {statuses:?}"
    );
    assert!(
        statuses.iter().filter(|s| **s == 200).count() <= 3,
        "{statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_its_limit_of_requests_in_progress_an_instance_answers_503_at_once() {
    let app = TestApp::spawn_tuned(|c| c.max_in_flight = Some(1)).await;
    let http = reqwest::Client::new();
    let get = |path: &str| {
        http.get(format!("{}{path}", app.url))
            .bearer_auth(&app.org.secret_key)
            .send()
    };
    // The one place is taken by a listing that waits on a lock this test holds.
    let mut lock = app.db.begin().await.unwrap();
    sqlx::query("lock table agents in access exclusive mode")
        .execute(&mut *lock)
        .await
        .unwrap();
    let held = tokio::spawn(get("/v1/agents"));
    eventually(Duration::from_secs(10), "the listing to wait", || async {
        let waiting: i64 = sqlx::query_scalar(
            "select count(*) from pg_stat_activity
             where wait_event_type = 'Lock' and datname = current_database()",
        )
        .fetch_one(&app.db)
        .await
        .ok()?;
        (waiting > 0).then_some(())
    })
    .await;

    let refused = get("/v1/calls").await.unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    let problem: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(problem["code"], "overloaded");
    // A website's widget can read the refusal and when to come back (CORS), and its
    // preflight is answered, not refused, so that the page sees that answer at all.
    let site = "https://shop.example";
    let preflight = http
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/widget/v1/callbacks", app.url),
        )
        .header("origin", site)
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 204);
    let from_site = http
        .post(format!("{}/widget/v1/callbacks", app.url))
        .header("origin", site)
        // Refused before the key is even looked at.
        .bearer_auth("pd_pk_not_looked_at")
        .json(&serde_json::json!({ "phone": "+14155550123", "consent": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(from_site.status(), 503);
    assert_eq!(from_site.headers()["access-control-allow-origin"], site);
    let exposed = from_site.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap();
    assert!(exposed.contains("retry-after"), "{exposed}");
    // Health checks are not counted: a busy instance still says it is alive.
    let health = http.get(format!("{}/healthz", app.url)).send().await;
    assert_eq!(health.unwrap().status(), 200);
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("pushdial_requests_shed_total{route=\"/v1/calls\"} 1"),
        "{metrics}"
    );

    lock.rollback().await.unwrap();
    assert_eq!(held.await.unwrap().unwrap().status(), 200);
    // The finished request gave its place back.
    assert_eq!(get("/v1/calls").await.unwrap().status(), 200);
}
