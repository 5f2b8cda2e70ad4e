//! When Redis is down, presence falls back to the heartbeats recorded in PostgreSQL: a
//! connected phone is still reachable and calls are still accepted; readiness says Redis
//! is unavailable; requests stay fast.

use std::time::Duration;

use pushdial_sdk::CreateCall;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_falls_back_to_postgres_while_redis_is_down() {
    let redis = PrivateRedis::start().await;
    let url = redis.url.clone();
    let app = TestApp::spawn_tuned(move |c| {
        c.redis_url = url;
        c.presence_window = Duration::from_secs(60);
    })
    .await;
    let client = app.client();
    let (agent_id, device, _) = app.agent_with_device(&client, "Ann").await;
    let _stream = live_stream(&device).await;
    eventually(Duration::from_secs(5), "the agent to be online", || async {
        client
            .get_agent(&agent_id)
            .await
            .ok()
            .filter(|a| a.presence == "online")
    })
    .await;

    drop(redis);
    let ready = reqwest::get(format!("{}/readyz", app.url)).await.unwrap();
    assert_eq!(ready.status(), 503);
    let problem: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(problem["code"], "not_ready");
    assert!(problem["detail"]
        .as_str()
        .unwrap()
        .contains("redis: unavailable"));

    let agent = client.get_agent(&agent_id).await.unwrap();
    assert!(
        agent.reachable,
        "the socket's heartbeat in PostgreSQL keeps the agent reachable"
    );
    assert_eq!(agent.presence, "online");
    let call = client
        .create_call(&CreateCall::for_agent("+14155550123", &agent_id), None)
        .await
        .unwrap();
    assert_eq!(call.status, "offered");
    // The phone here is a bare stream that never acknowledges (the api hands it the offer
    // from PostgreSQL while Redis is down): after the ack timeout the call fails honestly
    // as not delivered (no 5xx, no hang).
    let failed = wait_for_status(&client, &call.id, "failed", Duration::from_secs(10)).await;
    assert_eq!(failed.reason.as_deref(), Some("not_delivered"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_keep_a_phone_reachable_through_postgres_until_it_disconnects() {
    let redis = PrivateRedis::start().await;
    let url = redis.url.clone();
    let window = Duration::from_secs(6);
    let app = TestApp::spawn_tuned(move |c| {
        c.redis_url = url;
        c.presence_window = window;
    })
    .await;
    let client = app.client();
    let (agent_id, device, _) = app.agent_with_device(&client, "Ann").await;
    // The reference agent heartbeats every third of a window, as the server's hello says.
    let phone = RunningAgent::start(device, Duration::from_millis(100)).await;
    drop(redis);

    // Past a whole window since the connection's own write, only the heartbeats (written
    // together, once a second) can keep the phone reachable.
    tokio::time::sleep(window + Duration::from_secs(2)).await;
    let agent = client.get_agent(&agent_id).await.unwrap();
    assert!(agent.reachable, "heartbeats reached PostgreSQL");
    assert_eq!(agent.presence, "online");

    // Disconnecting clears the heartbeat at once, not when the window runs out.
    phone.stop().await;
    eventually(
        Duration::from_secs(2),
        "the phone to be offline",
        || async {
            let agent = client.get_agent(&agent_id).await.ok()?;
            (!agent.reachable).then_some(())
        },
    )
    .await;
}
