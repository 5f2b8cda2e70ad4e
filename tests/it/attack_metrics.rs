//! Attacks of issue 17 on `/metrics`, kept as tests written as the attack: the metrics
//! (52 KB of operational detail, and a query of the job queue per scrape) were served to
//! anyone on the public API listener, outside admission control.

use std::time::Duration;

use crate::harness::*;

/// The attack: `GET /metrics` on the API's address, with no credentials (or a guessed
/// one). Now the public listener answers `404` as for any unknown route, and the metrics
/// are served on `PUSHDIAL_METRICS_LISTEN` only.
#[tokio::test]
async fn metrics_are_not_served_on_the_public_listener() {
    // A free port for the metrics listener (bound, read, released).
    let metrics_addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let app = TestApp::spawn_tuned(|c| {
        c.metrics_token = None;
        c.metrics_listen = Some(metrics_addr);
    })
    .await;
    let http = reqwest::Client::new();
    for bearer in [None, Some("guess"), Some("")] {
        let mut req = http.get(format!("{}/metrics", app.url));
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 404, "bearer {bearer:?}");
        let problem: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(problem["code"], "route_not_found");
    }

    // The operator's scraper reads them on the private listener, beside the health checks.
    let private = format!("http://{metrics_addr}");
    let text = http
        .get(format!("{private}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("pushdial_http_requests_total"), "{text}");
    assert!(text.contains("pushdial_jobs_ready") || text.contains("pushdial_db_pool_connections"));
    let ready = http.get(format!("{private}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    // The private listener serves nothing of the API.
    let api = http
        .get(format!("{private}/v1/calls"))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 404);
}

/// With `PUSHDIAL_METRICS_TOKEN`, the public listener serves metrics to that bearer only.
#[tokio::test]
async fn metrics_on_the_public_listener_need_the_metrics_token() {
    let app = TestApp::spawn().await;
    let http = reqwest::Client::new();
    let wrong = http
        .get(format!("{}/metrics", app.url))
        .bearer_auth(format!("{METRICS_TOKEN}x"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 404);
    // An organization's secret key is not the metrics token either.
    let key = http
        .get(format!("{}/metrics", app.url))
        .bearer_auth(&app.org.secret_key)
        .send()
        .await
        .unwrap();
    assert_eq!(key.status(), 404);
    let right = http
        .get(format!("{}/metrics", app.url))
        .bearer_auth(METRICS_TOKEN)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
    assert!(right
        .text()
        .await
        .unwrap()
        .contains("pushdial_http_requests_total"));
}
