//! Tenant isolation: every resource of one organization, asked for with another
//! organization's key or device, answers 404 and reveals nothing.

use std::time::Duration;

use pushdial_sdk::{CreateCall, ListCalls, Report};
use reqwest::Method;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_organization_sees_nothing_of_ours() {
    let app = TestApp::spawn_tuned(|c| c.presence_window = Duration::from_secs(60)).await;
    let ours = app.client();
    let (agent_id, device, device_id) = app.agent_with_device(&ours, "Ann").await;
    let _stream = live_stream(&device).await;
    let call = ours
        .create_call(&CreateCall::for_agent("+14155550123", &agent_id), None)
        .await
        .unwrap();

    let endpoint: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/v1/webhook_endpoints", app.url))
        .bearer_auth(&app.org.secret_key)
        .json(&serde_json::json!({ "url": "https://example.com/hook" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let endpoint_id = endpoint["id"].as_str().unwrap().to_owned();
    let event_id: String = sqlx::query_scalar("select id from events limit 1")
        .fetch_one(&app.db)
        .await
        .unwrap();
    let other_org = app.other_org().await;
    let theirs = app.client_for(&other_org);
    settle(&app).await;
    let before = app.counts().await;
    let http = reqwest::Client::new();
    let cases: Vec<(Method, String, Option<serde_json::Value>)> = vec![
        (Method::GET, format!("/v1/agents/{agent_id}"), None),
        (Method::GET, format!("/v1/devices/{device_id}"), None),
        (Method::DELETE, format!("/v1/devices/{device_id}"), None),
        (Method::GET, format!("/v1/calls/{}", call.id), None),
        (Method::GET, format!("/v1/calls/{}/events", call.id), None),
        (Method::POST, format!("/v1/calls/{}/cancel", call.id), None),
        (
            Method::POST,
            "/v1/pairing_codes".into(),
            Some(serde_json::json!({"agent_id": agent_id})),
        ),
        (
            Method::POST,
            "/v1/calls".into(),
            Some(serde_json::json!({"to": "+14155550123", "agent_id": agent_id})),
        ),
        (
            Method::POST,
            "/v1/calls".into(),
            Some(serde_json::json!({"to": "+14155550123", "device_id": device_id})),
        ),
        (
            Method::GET,
            format!("/v1/webhook_endpoints/{endpoint_id}"),
            None,
        ),
        (
            Method::PATCH,
            format!("/v1/webhook_endpoints/{endpoint_id}"),
            Some(serde_json::json!({"enabled": false})),
        ),
        (
            Method::DELETE,
            format!("/v1/webhook_endpoints/{endpoint_id}"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/webhook_endpoints/{endpoint_id}/rotate_secret"),
            Some(serde_json::json!({})),
        ),
        (
            Method::POST,
            format!("/v1/webhook_endpoints/{endpoint_id}/test"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/webhook_endpoints/{endpoint_id}/events/{event_id}/resend"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/webhook_endpoints/{endpoint_id}/recover"),
            Some(serde_json::json!({"since": "2000-01-01T00:00:00Z"})),
        ),
        (
            Method::GET,
            format!("/v1/webhook_endpoints/{endpoint_id}/attempts"),
            None,
        ),
    ];
    for (method, path, body) in cases {
        let mut req = http
            .request(method.clone(), format!("{}{path}", app.url))
            .bearer_auth(&other_org.secret_key);
        if let Some(b) = &body {
            req = req.json(b);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 404, "{method} {path}");
        let problem: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(problem["code"], "resource_missing", "{method} {path}");
        let text = problem.to_string();
        assert!(
            !text.contains("Ann") && !text.contains("4155550123"),
            "{method} {path} leaks: {text}"
        );
    }
    assert_eq!(
        app.counts().await,
        before,
        "cross-tenant requests write nothing"
    );
    // Lists show only their own (empty) organization.
    assert!(theirs.list_agents().await.unwrap().data.is_empty());
    for path in ["/v1/events", "/v1/webhook_endpoints"] {
        let list: serde_json::Value = http
            .get(format!("{}{path}", app.url))
            .bearer_auth(&other_org.secret_key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(list["data"].as_array().unwrap().len(), 0, "{path}");
    }
    assert!(theirs.list_devices(None).await.unwrap().data.is_empty());
    assert!(theirs
        .list_devices(Some(&agent_id))
        .await
        .unwrap()
        .data
        .is_empty());
    assert!(theirs
        .list_calls(&ListCalls::default())
        .await
        .unwrap()
        .data
        .is_empty());
    let filtered = ListCalls {
        agent_id: Some(agent_id.clone()),
        ..Default::default()
    };
    assert!(theirs.list_calls(&filtered).await.unwrap().data.is_empty());

    // Their phone cannot ack or report our call.
    let (_, their_device, _) = app.agent_with_device(&theirs, "Mallory").await;
    let before_theirs = app.counts().await;
    let err = their_device.ack(&call.id).await.unwrap_err();
    assert_eq!(err.status(), Some(404));
    let err = their_device
        .report(&call.id, &Report::new("dialing"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert_eq!(app.counts().await, before_theirs);

    // Our data is untouched: the device is not revoked, the call not canceled.
    assert!(ours
        .get_device(&device_id)
        .await
        .unwrap()
        .revoked_at
        .is_none());
    assert_ne!(ours.get_call(&call.id).await.unwrap().status, "canceled");
}
