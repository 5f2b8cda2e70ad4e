//! Lists: cursor pagination (newest first) and filters.

use std::time::Duration;

use pushdial_sdk::{CreateCall, ListCalls, ListParams};

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_page_with_cursors_and_filter_by_status_and_agent() {
    let app = TestApp::spawn_tuned(|c| c.presence_window = Duration::from_secs(60)).await;
    let client = app.client();
    let (ann, ann_phone, _) = app.agent_with_device(&client, "Ann").await;
    let (bob, bob_phone, _) = app.agent_with_device(&client, "Bob").await;
    let _s1 = live_stream(&ann_phone).await;
    let _s2 = live_stream(&bob_phone).await;
    let mut ids = vec![];
    for i in 0..5 {
        let agent = if i == 4 { &bob } else { &ann };
        ids.push(
            client
                .create_call(
                    &CreateCall::for_agent(format!("+1415555010{i}"), agent),
                    None,
                )
                .await
                .unwrap()
                .id,
        );
    }
    ids.reverse(); // newest first

    let page = |limit, starting_after: Option<&str>, ending_before: Option<&str>| ListCalls {
        limit: Some(limit),
        starting_after: starting_after.map(str::to_owned),
        ending_before: ending_before.map(str::to_owned),
        ..Default::default()
    };
    let first = client.list_calls(&page(2, None, None)).await.unwrap();
    assert_eq!(
        first.data.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
        ids[..2]
    );
    assert!(first.has_more);
    let second = client
        .list_calls(&page(2, Some(&ids[1]), None))
        .await
        .unwrap();
    assert_eq!(
        second.data.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
        ids[2..4]
    );
    assert!(second.has_more);
    let last = client
        .list_calls(&page(2, Some(&ids[3]), None))
        .await
        .unwrap();
    assert_eq!(
        last.data.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
        ids[4..]
    );
    assert!(!last.has_more);
    let back = client
        .list_calls(&page(2, None, Some(&ids[4])))
        .await
        .unwrap();
    assert_eq!(
        back.data.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
        ids[2..4],
        "ending_before reads the page above, newest first"
    );
    assert!(back.has_more);

    client.cancel_call(&ids[0]).await.unwrap();
    let canceled = client
        .list_calls(&ListCalls {
            status: Some("canceled".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        canceled
            .data
            .iter()
            .map(|c| c.id.clone())
            .collect::<Vec<_>>(),
        ids[..1]
    );
    let bobs = client
        .list_calls(&ListCalls {
            agent_id: Some(bob.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(bobs.data.len(), 1);
    assert_eq!(bobs.data[0].agent_id, bob);

    // By creation time: the window around the calls holds all of them, a later one none.
    let created: Vec<_> = first.data.iter().map(|c| c.created_at).collect();
    let oldest_kept = created[1];
    let by_date = |gte: String, lt: String| {
        let path = format!("/v1/calls?created_gte={gte}&created_lt={lt}&limit=100");
        let app = &app;
        async move { app.api(reqwest::Method::GET, &path, None).await }
    };
    let enc = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339().replace('+', "%2B");
    let (status, window) = by_date(
        enc(oldest_kept - chrono::Duration::hours(1)),
        enc(chrono::Utc::now() + chrono::Duration::hours(1)),
    )
    .await;
    assert_eq!(status, 200, "{window}");
    assert_eq!(window["data"].as_array().unwrap().len(), ids.len());
    let (_, later) = by_date(
        enc(chrono::Utc::now() + chrono::Duration::hours(1)),
        enc(chrono::Utc::now() + chrono::Duration::hours(2)),
    )
    .await;
    assert_eq!(later["data"], serde_json::json!([]));
    let (status, _) = app
        .api(
            reqwest::Method::GET,
            "/v1/calls?created_gte=yesterday",
            None,
        )
        .await;
    assert_eq!(status, 400);

    let agents = client
        .list_agents_page(&ListParams {
            limit: Some(1),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(agents.data.len(), 1);
    assert_eq!(agents.data[0].id, bob, "newest agent first");
    assert!(agents.has_more);
    assert!(agents.data[0].reachable);
    let devices = client.list_devices(Some(&ann)).await.unwrap();
    assert_eq!(devices.data.len(), 1);
    assert_eq!(devices.data[0].presence, "online");
}
