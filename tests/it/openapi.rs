//! The committed OpenAPI document is the one the code serves. Run with
//! `UPDATE_OPENAPI=1` to rewrite it after an API change.

#[test]
fn committed_openapi_document_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json");
    let current = pushdial_api::openapi_json() + "\n";
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(path, &current).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == current,
        "openapi/openapi.json is stale: run `UPDATE_OPENAPI=1 cargo nextest run -E 'test(committed_openapi)'` and commit it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_document_and_reference_are_reachable() {
    let app = crate::harness::TestApp::spawn().await;
    let spec: serde_json::Value = reqwest::get(format!("{}/openapi.json", app.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(spec["paths"]["/v1/calls"]["post"].is_object());
    assert!(
        spec["paths"]["/v1/calls"]["post"]["responses"]["409"].is_object(),
        "409 documented"
    );
    let docs = reqwest::get(format!("{}/docs", app.url)).await.unwrap();
    assert_eq!(docs.status(), 200);
    let page = docs.text().await.unwrap();
    assert!(
        page.contains("Redoc.init"),
        "the reference renders with the embedded Redoc"
    );
    assert!(page.contains("pushdial API reference"));
    assert!(
        !page.contains("fonts.googleapis.com"),
        "no web fonts from outside the deployment"
    );
    assert!(
        !page.contains("src=\"http"),
        "no scripts from outside the deployment"
    );
    let health = reqwest::get(format!("{}/healthz", app.url)).await.unwrap();
    assert_eq!(health.status(), 200);
    assert!(health.headers().contains_key("request-id"));
    let ready: serde_json::Value = reqwest::get(format!("{}/readyz", app.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["postgres"], "ok");
    assert_eq!(ready["redis"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_report_requests_calls_and_refusals() {
    use pushdial_sdk::CreateCall;
    let app = crate::harness::TestApp::spawn().await;
    let client = app.client();
    let (agent_id, device, _) = app.agent_with_device(&client, "Ann").await;
    let phone = crate::harness::RunningAgent::start(device, std::time::Duration::ZERO).await;
    let call = client
        .create_call(&CreateCall::for_agent("+12125551234", &agent_id), None)
        .await
        .unwrap();
    crate::harness::wait_for_status(
        &client,
        &call.id,
        "completed",
        std::time::Duration::from_secs(10),
    )
    .await;
    let refused = client
        .create_call(&CreateCall::for_agent("+19005550123", &agent_id), None)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some("number_type_blocked"));

    let text = app.metrics().await;
    for needle in [
        "pushdial_http_requests_total{method=\"POST\",route=\"/v1/calls\",status=\"201\"}",
        "pushdial_http_requests_total{method=\"GET\",route=\"/v1/calls/:id\",status=\"200\"}",
        "pushdial_call_transitions_total{reason=\"\",status=\"completed\"}",
        "pushdial_click_to_offer_seconds_count{channel=\"socket\"}",
        "pushdial_dialing_refusals_total{code=\"number_type_blocked\"}",
        "pushdial_agent_sockets",
        "pushdial_db_pool_connections{state=\"max\"} 10",
        "pushdial_call_transitions_total{reason=\"\",status=\"offered\"}",
    ] {
        assert!(text.contains(needle), "/metrics lacks {needle}");
    }
    assert!(!text.contains("call_0"), "no ids in labels");
    phone.stop().await;
}

/// The TypeScript client in `sdk/ts` (used by the console and offered to third parties) is
/// generated from the committed OpenAPI document; regenerate it with `npm run generate`
/// there when this fails.
#[test]
fn typescript_client_matches_the_openapi_document() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = std::process::Command::new("node")
        .arg(format!("{root}/sdk/ts/scripts/check.mjs"))
        .current_dir(format!("{root}/sdk/ts"))
        .output()
        .expect("node is installed (./scripts/test installs it)");
    assert!(
        out.status.success(),
        "sdk/ts/src/schema.d.ts is stale (run `npm run generate` in sdk/ts):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
