//! `Idempotency-Key` on call creation: replay, different body, concurrent use.

use std::time::Duration;

use pushdial_sdk::CreateCall;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_key_replays_refuses_other_bodies_and_concurrent_use() {
    let app = TestApp::spawn_tuned(|c| c.presence_window = Duration::from_secs(60)).await;
    let client = app.client();
    let (agent_id, device, _) = app.agent_with_device(&client, "Ann").await;
    let _stream = live_stream(&device).await;
    let request = CreateCall::for_agent("+14155550123", &agent_id);

    let first = client
        .create_call(&request, Some("order-42"))
        .await
        .unwrap();
    let replay = client
        .create_call(&request, Some("order-42"))
        .await
        .unwrap();
    assert_eq!(
        replay.id, first.id,
        "the same key and body return the first call"
    );
    assert_eq!(replay.created_at, first.created_at);
    assert_eq!(app.count("calls").await, 1);

    settle(&app).await;
    let before = app.counts().await;
    let other = CreateCall::for_agent("+14155550199", &agent_id);
    let err = client
        .create_call(&other, Some("order-42"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(422));
    assert_eq!(err.code(), Some("idempotency_key_reused"));
    assert_eq!(app.counts().await, before);

    // Another request holding the key (as a request in flight does) makes this one wait
    // its turn: 409, nothing written.
    let org_id = app.org.org_id.clone();
    let mut tx = app.db.begin().await.unwrap();
    assert!(
        pushdial_core::store::idempotency::try_lock(&mut tx, &org_id, "order-43")
            .await
            .unwrap()
    );
    let err = client
        .create_call(&request, Some("order-43"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(409));
    assert_eq!(err.code(), Some("idempotency_key_in_use"));
    assert_eq!(app.counts().await, before);
    tx.rollback().await.unwrap();
    // Once the other request is done, the key works.
    let created = client
        .create_call(&request, Some("order-43"))
        .await
        .unwrap();
    assert_ne!(created.id, first.id);
    // Without a key, every request creates a call.
    let a = client.create_call(&request, None).await.unwrap();
    let b = client.create_call(&request, None).await.unwrap();
    assert_ne!(a.id, b.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_creation_is_idempotent_too_and_keys_are_per_route() {
    let app = TestApp::spawn().await;
    let http = reqwest::Client::new();
    let post = |path: &str, key: &str, body: serde_json::Value| {
        http.post(format!("{}{path}", app.url))
            .bearer_auth(&app.org.secret_key)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
    };
    let first = post("/v1/agents", "agent-1", serde_json::json!({"name": "Ann"}))
        .await
        .unwrap();
    assert_eq!(first.status(), 201);
    let first: serde_json::Value = first.json().await.unwrap();
    let again: serde_json::Value =
        post("/v1/agents", "agent-1", serde_json::json!({"name": "Ann"}))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(again["id"], first["id"]);
    assert_eq!(app.count("agents").await, 1);
    // The same key on another route is another request.
    let other = post(
        "/v1/calls",
        "agent-1",
        serde_json::json!({"to": "+14155550123", "agent_id": first["id"]}),
    )
    .await
    .unwrap();
    assert_eq!(other.status(), 422);
    let bad_key = post("/v1/agents", "has space", serde_json::json!({"name": "Bo"}))
        .await
        .unwrap();
    assert_eq!(bad_key.status(), 400);
    assert_eq!(app.count("agents").await, 1);
}

/// A retry that finds its key held by the request still in flight is refused (409) before
/// it takes any quota: the organization's one call a minute is still there afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_refused_while_its_key_is_in_use_spends_no_quota() {
    let app = TestApp::spawn_tuned(|c| {
        c.presence_window = Duration::from_secs(60);
        c.limit_calls_per_minute = 1;
    })
    .await;
    let client = app.client();
    let (agent_id, device, _) = app.agent_with_device(&client, "Ann").await;
    let _stream = live_stream(&device).await;
    let request = CreateCall::for_agent("+14155550123", &agent_id);

    let mut tx = app.db.begin().await.unwrap();
    assert!(
        pushdial_core::store::idempotency::try_lock(&mut tx, &app.org.org_id, "order-7")
            .await
            .unwrap()
    );
    let err = client
        .create_call(&request, Some("order-7"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("idempotency_key_in_use"));
    tx.rollback().await.unwrap();

    let call = client
        .create_call(&request, Some("order-8"))
        .await
        .expect("the minute's one call is still there");
    assert_eq!(call.agent_id, agent_id);
    // And it is the only one: the quota holds.
    let err = client
        .create_call(&request, Some("order-9"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(429));
}
