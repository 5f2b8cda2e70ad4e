//! The whole loop of the invention (S11–S20) with the reference agent as the phone, and the
//! lifecycle rules a phone's reports go through.

use std::time::Duration;

use pushdial_sdk::{CreateCall, Report, ServerMessage};

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_agent_places_a_call_from_the_api_end_to_end() {
    let app = TestApp::spawn().await;
    let client = app.client();
    let (agent_id, device, device_id) = app.agent_with_device(&client, "Ann").await;

    // S11: the phone connects; S13: the server sees it.
    assert!(
        !client.get_agent(&agent_id).await.unwrap().reachable,
        "not reachable before connecting"
    );
    let phone = RunningAgent::start(device, Duration::from_millis(1200)).await;
    let agent = client.get_agent(&agent_id).await.unwrap();
    assert!(agent.reachable);
    assert_eq!(agent.presence, "online");

    // S15–S18: a call placed through the API is dialed by the phone.
    let mut request = CreateCall::for_agent("+14155550123", &agent_id);
    request.confirm = Some("prompt".into());
    request.metadata = Some([("ticket".to_owned(), "T-42".to_owned())].into());
    let call = client.create_call(&request, None).await.unwrap();
    // The phone holds a live socket: the api offers the call to it in the same transaction.
    assert_eq!(call.status, "offered");
    assert_eq!(call.to, "+14155550123");

    let dialing = wait_for_status(&client, &call.id, "dialing", Duration::from_secs(10)).await;
    assert_eq!(dialing.device_id.as_deref(), Some(device_id.as_str()));
    let done = wait_for_status(&client, &call.id, "completed", Duration::from_secs(10)).await;
    assert!(
        done.duration_s.is_some_and(|d| d >= 1),
        "duration reported: {:?}",
        done.duration_s
    );
    assert_eq!(
        done.metadata.get("ticket").map(String::as_str),
        Some("T-42")
    );

    // Every transition, in order; the phone cannot observe the callee answering.
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
    let listed = client.list_calls(&Default::default()).await.unwrap();
    assert_eq!(listed.data.len(), 1);
    assert_eq!(listed.data[0].status, "completed");
    phone.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_to_agent_without_reachable_device_is_refused_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let client = app.client();
    // One agent with no device, one with a paired phone that is not connected.
    let lonely = client.create_agent("Lonely", None).await.unwrap();
    let (asleep, _device, asleep_device) = app.agent_with_device(&client, "Asleep").await;
    let before = app.counts().await;

    for request in [
        CreateCall::for_agent("+14155550123", &lonely.id),
        CreateCall::for_agent("+14155550123", &asleep),
        CreateCall::for_device("+14155550123", &asleep_device),
    ] {
        let err = client.create_call(&request, None).await.unwrap_err();
        assert_eq!(err.status(), Some(409));
        assert_eq!(err.code(), Some("no_device_reachable"));
    }
    assert_eq!(app.counts().await, before, "a refused call writes nothing");
    let agent = client.get_agent(&asleep).await.unwrap();
    assert!(!agent.reachable);
    assert_eq!(agent.presence, "offline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_reports_follow_the_lifecycle_rules() {
    let app = TestApp::spawn().await;
    let client = app.client();
    let (agent_id, device, _) = app.agent_with_device(&client, "Ann").await;
    // A hand-driven phone: holds the socket, acks and reports by itself.
    let mut stream = live_stream(&device).await;
    let call = client
        .create_call(&CreateCall::for_agent("+12125551234", &agent_id), None)
        .await
        .unwrap();
    let offer = next_offer(&mut stream).await;
    assert_eq!(offer, call.id);
    // The offer was handed over: its outbox job (which would send it again after its
    // lease) is swept away, while the call's expiry and offer timeout still wait.
    eventually(Duration::from_secs(2), "the outbox job to go", || async {
        let jobs = pending_jobs(&app, &call.id).await;
        (jobs == ["call.expire", "call.offer_timeout"]).then_some(())
    })
    .await;

    let ack = device.ack(&call.id).await.unwrap();
    assert_eq!(ack.to, "+12125551234");
    assert_eq!(ack.confirm, "prompt");
    // Acking again is harmless and answers the same.
    assert_eq!(device.ack(&call.id).await.unwrap().to, ack.to);
    assert_eq!(
        client.get_call(&call.id).await.unwrap().status,
        "delivered",
        "the ack infers nothing beyond delivered"
    );
    // Not dialing yet: the call can still expire, and its offer's timeout still waits.
    assert_eq!(
        pending_jobs(&app, &call.id).await,
        ["call.expire", "call.offer_timeout"]
    );

    // Jumping to completed records the skipped states as inferred.
    let mut completed = Report::new("completed");
    completed.duration_s = Some(42);
    let done = device.report(&call.id, &completed).await.unwrap();
    assert_eq!(done.status, "completed");
    assert_eq!(done.duration_s, Some(42));
    // Ended: its timers could change nothing, so they are gone with the transition
    // instead of waiting in the queue for a worker to find that out.
    assert!(pending_jobs(&app, &call.id).await.is_empty());
    // Repeating the final state is idempotent: same answer, no new event.
    let again = device.report(&call.id, &completed).await.unwrap();
    assert_eq!(again.status, "completed");
    assert_eq!(
        event_trail(&client, &call.id).await,
        [
            "queued",
            "offered",
            "delivered",
            "~accepted",
            "~dialing",
            "~connected",
            "completed"
        ]
    );
    // Anything else after the end is refused.
    let err = device
        .report(&call.id, &Report::new("dialing"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(409));
    assert_eq!(err.code(), Some("invalid_transition"));
    let err = device
        .report(&call.id, &Report::new("failed"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("invalid_transition"));
    assert_eq!(
        event_trail(&client, &call.id).await.len(),
        7,
        "refused reports write no event"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_that_declines_ends_the_call_and_cancel_reaches_the_phone() {
    let app = TestApp::spawn().await;
    let client = app.client();
    let (agent_id, device, _) = app.agent_with_device(&client, "Ann").await;
    let mut stream = live_stream(&device).await;

    let first = client
        .create_call(&CreateCall::for_agent("+14155550123", &agent_id), None)
        .await
        .unwrap();
    assert_eq!(next_offer(&mut stream).await, first.id);
    device.ack(&first.id).await.unwrap();
    let declined = device
        .report(&first.id, &Report::new("declined"))
        .await
        .unwrap();
    assert_eq!(declined.status, "declined");

    // A call canceled before dialing is withdrawn from the phone.
    let second = client
        .create_call(&CreateCall::for_agent("+14155550124", &agent_id), None)
        .await
        .unwrap();
    assert_eq!(next_offer(&mut stream).await, second.id);
    let canceled = client.cancel_call(&second.id).await.unwrap();
    assert_eq!(canceled.status, "canceled");
    let withdrawn = next_message(&mut stream, Duration::from_secs(5), |m| match m {
        ServerMessage::CallCanceled { call_id, .. } => Some(call_id),
        _ => None,
    })
    .await;
    assert_eq!(withdrawn, Next::Got(second.id.clone()), "cancel forwarded");
    let err = device.ack(&second.id).await.unwrap_err();
    assert_eq!(err.code(), Some("call_not_active"));
    // Canceling again answers the same; canceling a call that ended is refused.
    assert_eq!(
        client.cancel_call(&second.id).await.unwrap().status,
        "canceled"
    );
    let err = client.cancel_call(&first.id).await.unwrap_err();
    assert_eq!(err.code(), Some("call_not_cancelable"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_call_is_never_dialed_and_its_number_never_sent() {
    // Offers wait longer than the call lives, so expiry (not fail-over) ends the calls.
    let app = TestApp::spawn_tuned(|c| {
        c.offer_timeout = Duration::from_secs(60);
        c.presence_window = Duration::from_secs(60);
    })
    .await;
    let client = app.client();
    let (agent_id, device, _) = app.agent_with_device(&client, "Ann").await;
    let mut stream = live_stream(&device).await;

    // Acknowledged but never dialed: expires at its deadline.
    let mut request = CreateCall::for_agent("+14155550123", &agent_id);
    request.expires_in = Some(10);
    let held = client.create_call(&request, None).await.unwrap();
    assert_eq!(next_offer(&mut stream).await, held.id);
    device.ack(&held.id).await.unwrap();
    let expired = wait_for_status(&client, &held.id, "expired", Duration::from_secs(20)).await;
    assert_eq!(expired.reason.as_deref(), Some("expired"));
    let err = device
        .report(&held.id, &Report::new("dialing"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("call_expired"));

    // Offered but acknowledged too late: the ack never returns the number.
    let late = client.create_call(&request, None).await.unwrap();
    assert_eq!(next_offer(&mut stream).await, late.id);
    wait_for_status(&client, &late.id, "expired", Duration::from_secs(20)).await;
    let err = device.ack(&late.id).await.unwrap_err();
    assert_eq!(err.status(), Some(409));
    assert_eq!(err.code(), Some("call_expired"));
    assert!(
        !format!("{err:?}").contains("4155550123"),
        "no number in the refusal"
    );
}

/// The next `call.offer` on a hand-held stream, answering nothing else.
pub async fn next_offer(stream: &mut pushdial_sdk::Stream) -> String {
    let offer = next_message(stream, Duration::from_secs(10), |m| match m {
        ServerMessage::CallOffer { call_id, .. } => Some(call_id),
        _ => None,
    })
    .await;
    match offer {
        Next::Got(call_id) => call_id,
        other => panic!("no offer arrived: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_device_closes_its_socket_and_its_token_stops_working() {
    let app = TestApp::spawn().await;
    let client = app.client();
    let (agent_id, device, device_id) = app.agent_with_device(&client, "Ann").await;
    let mut stream = live_stream(&device).await;
    assert!(client.get_agent(&agent_id).await.unwrap().reachable);

    let revoked = client.revoke_device(&device_id).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    assert!(!revoked.reachable);
    let closed = next_message(&mut stream, Duration::from_secs(5), |_| None::<()>).await;
    assert_eq!(
        closed,
        Next::Ended,
        "the server closes the revoked device's socket"
    );
    let err = device.connect_stream().await.unwrap_err();
    assert_eq!(err.code(), Some("device_revoked"));
    assert!(!client.get_agent(&agent_id).await.unwrap().reachable);
    let err = client
        .create_call(&CreateCall::for_agent("+14155550123", &agent_id), None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("no_device_reachable"));
}

/// The kinds of the call's jobs still waiting in the queue.
async fn pending_jobs(app: &TestApp, call_id: &str) -> Vec<String> {
    sqlx::query_scalar("select kind from jobs where payload ->> 'call_id' = $1 order by kind")
        .bind(call_id)
        .fetch_all(&app.db)
        .await
        .unwrap()
}
