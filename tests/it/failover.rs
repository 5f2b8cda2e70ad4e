//! Offers that are not acknowledged move on to the agent's next reachable device; when none
//! is left the call fails `not_delivered`. Push channels wake devices without a socket.

use std::time::Duration;

use pushdial_sdk::{CreateCall, ServerMessage, UpdateDevice};

use crate::call_loop::next_offer;
use crate::fakes::recorder::recorder;
use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_offer_fails_over_to_the_next_device() {
    let app = TestApp::spawn().await;
    let client = app.client();
    let agent = client.create_agent("Ann", None).await.unwrap();
    let (desk_phone, desk_id) = app.pair_device(&client, &agent.id, "desk phone").await;
    let (mobile, mobile_id) = app.pair_device(&client, &agent.id, "mobile").await;

    // The desk phone runs the reference agent; the mobile holds a socket but never answers.
    // The mobile connected last, so it is the most recently active and is offered first.
    let desk = RunningAgent::start(desk_phone, Duration::ZERO).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut silent = mobile.connect_stream().await.unwrap();
    // The server says hello once it has recorded the socket (its activity time included).
    let hello = next_message(&mut silent, Duration::from_secs(5), |m| {
        matches!(m, ServerMessage::Hello { .. }).then_some(())
    })
    .await;
    assert_eq!(hello, Next::Got(()));

    let call = client
        .create_call(&CreateCall::for_agent("+14155550123", &agent.id), None)
        .await
        .unwrap();
    assert_eq!(
        next_offer(&mut silent).await,
        call.id,
        "the most recent device is offered first"
    );
    let done = wait_for_status(&client, &call.id, "completed", Duration::from_secs(15)).await;
    assert_eq!(
        done.device_id.as_deref(),
        Some(desk_id.as_str()),
        "the second device took it"
    );

    let events = client.call_events(&call.id).await.unwrap().data;
    let offered: Vec<_> = events.iter().filter(|e| e.status == "offered").collect();
    assert_eq!(offered.len(), 1, "one offered transition");
    assert_eq!(offered[0].device_id.as_deref(), Some(mobile_id.as_str()));
    let delivered = events.iter().find(|e| e.status == "delivered").unwrap();
    assert_eq!(delivered.device_id.as_deref(), Some(desk_id.as_str()));
    // The silent device cannot take the call any more.
    let err = mobile.ack(&call.id).await.unwrap_err();
    assert_eq!(err.code(), Some("call_taken"));
    desk.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_fails_not_delivered_when_no_device_acknowledges() {
    let app = TestApp::spawn().await;
    let client = app.client();
    let (agent_id, device, _) = app.agent_with_device(&client, "Ann").await;
    let mut silent = live_stream(&device).await;
    let call = client
        .create_call(&CreateCall::for_agent("+14155550123", &agent_id), None)
        .await
        .unwrap();
    assert_eq!(next_offer(&mut silent).await, call.id);
    let failed = wait_for_status(&client, &call.id, "failed", Duration::from_secs(10)).await;
    assert_eq!(failed.reason.as_deref(), Some("not_delivered"));
    assert_eq!(
        event_trail(&client, &call.id).await,
        ["queued", "offered", "failed"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sleeping_phone_is_woken_by_push_without_the_number() {
    let (push_url, pushed) = recorder(200).await;
    let app = TestApp::spawn_tuned(|c| c.loopback_push_url = Some(push_url)).await;
    let client = app.client();
    let (agent_id, device, device_id) = app.agent_with_device(&client, "Ann").await;
    let updated = use_loopback_push(&device, "tok-123").await;
    assert_eq!(updated.presence, "push");
    assert!(
        client.get_agent(&agent_id).await.unwrap().reachable,
        "a fresh push channel is reachable"
    );

    let call = client
        .create_call(&CreateCall::for_agent("+14155550123", &agent_id), None)
        .await
        .unwrap();
    wait_for_status(&client, &call.id, "offered", Duration::from_secs(10)).await;
    // The offer is recorded (`offered`) before the wake-up leaves: wait for it to arrive.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while pushed.lock().unwrap().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sent = pushed.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["token"], "tok-123");
    assert_eq!(sent[0]["device_id"], device_id.as_str());
    assert_eq!(sent[0]["payload"]["type"], "call.offer");
    assert_eq!(sent[0]["payload"]["call_id"], call.id.as_str());
    assert!(
        !sent[0].to_string().contains("4155550123"),
        "no phone number through a push service"
    );

    // The woken phone acks over HTTP and gets the number there.
    assert_eq!(device.ack(&call.id).await.unwrap().to, "+14155550123");

    // `push_channel: null` removes the channel: the phone is no longer reachable.
    let cleared = device
        .update_device(&UpdateDevice {
            push_channel: Some(None),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(cleared.push_channel, None);
    assert_eq!(cleared.presence, "offline");
    assert!(!client.get_agent(&agent_id).await.unwrap().reachable);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_push_token_fails_the_call_and_stops_counting_the_device() {
    let (push_url, _pushed) = recorder(410).await;
    let app = TestApp::spawn_tuned(|c| c.loopback_push_url = Some(push_url)).await;
    let client = app.client();
    let (agent_id, device, _) = app.agent_with_device(&client, "Ann").await;
    use_loopback_push(&device, "dead-token").await;
    let call = client
        .create_call(&CreateCall::for_agent("+14155550123", &agent_id), None)
        .await
        .unwrap();
    let failed = wait_for_status(&client, &call.id, "failed", Duration::from_secs(10)).await;
    assert_eq!(failed.reason.as_deref(), Some("push_rejected"));
    assert!(!client.get_agent(&agent_id).await.unwrap().reachable);
    let err = client
        .create_call(&CreateCall::for_agent("+14155550123", &agent_id), None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("no_device_reachable"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_wake_ups_per_device_are_limited() {
    let (push_url, pushed) = recorder(200).await;
    let app = TestApp::spawn_tuned(|c| {
        c.loopback_push_url = Some(push_url);
        c.limit_push_per_device_per_minute = 1;
    })
    .await;
    let client = app.client();
    let (agent_id, device, _) = app.agent_with_device(&client, "Ann").await;
    use_loopback_push(&device, "tok").await;
    let first = client
        .create_call(&CreateCall::for_agent("+14155550123", &agent_id), None)
        .await
        .unwrap();
    let second = client
        .create_call(&CreateCall::for_agent("+14155550124", &agent_id), None)
        .await
        .unwrap();
    // The second wake-up would exceed the device's limit: it is held back, and the call
    // fails honestly at its ack timeout instead of buzzing the phone again.
    wait_for_status(&client, &first.id, "offered", Duration::from_secs(10)).await;
    let failed = wait_for_status(&client, &second.id, "failed", Duration::from_secs(10)).await;
    assert_eq!(failed.reason.as_deref(), Some("not_delivered"));
    assert_eq!(
        pushed.lock().unwrap().len(),
        1,
        "one push sent, the other held back"
    );
}
