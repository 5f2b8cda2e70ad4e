//! Dialing safety: number validity, blocked number types, the country allowlist and the
//! blocklist — each refusal a problem with its own code, and nothing written.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_are_judged_by_type_country_and_blocklist() {
    let app = TestApp::spawn_tuned(|c| {
        c.presence_window = Duration::from_secs(60);
        c.offer_timeout = Duration::from_secs(60);
    })
    .await;
    let client = app.client();
    let (agent_id, device, _) = app.agent_with_device(&client, "Ann").await;
    let _stream = live_stream(&device).await;

    let (status, org) = app.api(Method::GET, "/v1/organization", None).await;
    assert_eq!(status, 200);
    assert_eq!(org["country"], "US");
    assert_eq!(org["dialing"]["allowed_countries"], json!(["US"]));

    let call = |to: &str| json!({ "to": to, "agent_id": agent_id, "expires_in": 600 });
    let cases: Vec<(&str, u16, &str)> = vec![
        ("+1 212 555 1234", 201, ""),
        ("+1 800 234 5678", 201, ""),
        ("+19005550123", 422, "number_type_blocked"),
        ("+447400123456", 422, "country_not_allowed"),
        ("+33612345678", 422, "country_not_allowed"),
        ("+33810123456", 422, "number_type_blocked"),
        ("*#06#", 400, "number_invalid"),
        ("+1234", 400, "number_invalid"),
        ("+1415CALLNOW", 400, "number_invalid"),
        ("+1 000 000 0000", 400, "number_invalid"),
    ];
    for (to, status, code) in &cases {
        settle(&app).await;
        let before = app.counts().await;
        let (got, body) = app.api(Method::POST, "/v1/calls", Some(call(to))).await;
        assert_eq!(got, *status, "{to}: {body}");
        if *status != 201 {
            assert_eq!(body["code"], *code, "{to}");
            assert_eq!(
                app.counts().await,
                before,
                "{to}: a refused call writes nothing"
            );
        }
    }

    // Opening Great Britain and France lets their ordinary numbers through, never their
    // premium, shared-cost, UAN or personal numbers.
    let (status, org) = app
        .api(
            Method::PATCH,
            "/v1/organization",
            Some(json!({ "dialing": { "allowed_countries": ["us", "GB", "FR"] } })),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        org["dialing"]["allowed_countries"],
        json!(["FR", "GB", "US"])
    );
    for (to, status, code) in [
        ("+447400123456", 201, ""),
        ("+33612345678", 201, ""),
        ("+33810123456", 422, "number_type_blocked"),
        ("+443031234567", 422, "number_type_blocked"),
        ("+447012345678", 422, "number_type_blocked"),
        ("+448431234567", 422, "number_type_blocked"),
    ] {
        let (got, body) = app.api(Method::POST, "/v1/calls", Some(call(to))).await;
        assert_eq!(got, status, "{to}: {body}");
        if status != 201 {
            assert_eq!(body["code"], code, "{to}");
        }
    }
    let (status, body) = app
        .api(
            Method::PATCH,
            "/v1/organization",
            Some(json!({ "dialing": { "allowed_countries": ["ZZ"] } })),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("validation_failed"))
    );

    // The blocklist: a prefix blocks every number under it, until it is removed.
    let (status, blocked) = app
        .api(
            Method::POST,
            "/v1/blocked_numbers",
            Some(json!({ "prefix": "+1 212 555" })),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(blocked["prefix"], "+1212555");
    let (status, dup) = app
        .api(
            Method::POST,
            "/v1/blocked_numbers",
            Some(json!({ "prefix": "+1212555" })),
        )
        .await;
    assert_eq!(
        (status, dup["code"].as_str()),
        (409, Some("already_blocked"))
    );
    let (status, body) = app
        .api(Method::POST, "/v1/calls", Some(call("+12125551234")))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("number_blocked"))
    );
    assert!(
        !body.to_string().contains("+1212555\""),
        "the refusal does not echo the list"
    );
    let (status, _) = app
        .api(Method::POST, "/v1/calls", Some(call("+12125561234")))
        .await;
    assert_eq!(status, 201, "a number outside the prefix");
    let (_, list) = app.api(Method::GET, "/v1/blocked_numbers", None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let id = blocked["id"].as_str().unwrap();
    let (status, _) = app
        .api(Method::DELETE, &format!("/v1/blocked_numbers/{id}"), None)
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .api(Method::POST, "/v1/calls", Some(call("+12125551234")))
        .await;
    assert_eq!(status, 201);
    let (status, body) = app
        .api(
            Method::POST,
            "/v1/blocked_numbers",
            Some(json!({ "prefix": "1900" })),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("validation_failed"))
    );

    // Another organization's blocklist and policy are its own.
    let other = app.other_org().await;
    let resp = reqwest::Client::new()
        .delete(format!("{}/v1/blocked_numbers/{id}", app.url))
        .bearer_auth(&other.secret_key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}
