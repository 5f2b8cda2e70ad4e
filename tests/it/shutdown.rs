//! Stopping the server (SIGTERM) tells connected agents to reconnect elsewhere, and the
//! agents notice the stream is gone.

use std::time::Duration;

use pushdial_sdk::ServerMessage;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_tells_connected_agents_to_reconnect() {
    let app = TestApp::spawn().await;
    let client = app.client();
    let (agent_id, device, _) = app.agent_with_device(&client, "Ann").await;
    let (other_device, _) = app.pair_device(&client, &agent_id, "second phone").await;
    let mut stream = live_stream(&device).await;
    let mut phone = RunningAgent::start(other_device, Duration::ZERO).await;
    assert!(*phone.connected.borrow());

    app.shutdown().await;
    let hint = next_message(&mut stream, Duration::from_secs(5), |m| {
        matches!(m, ServerMessage::Reconnect).then_some(())
    })
    .await;
    assert_eq!(
        hint,
        Next::Got(()),
        "a reconnect hint arrives before the socket closes"
    );
    tokio::time::timeout(Duration::from_secs(5), phone.connected.wait_for(|c| !*c))
        .await
        .expect("the reference agent notices the server went away")
        .unwrap();
    phone.stop().await;
}
