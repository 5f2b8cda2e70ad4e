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

/// The contract check itself refuses what the document forbids: a field of the wrong type,
/// a missing required field, an undocumented status, a 405 without `Allow`.
#[test]
fn the_contract_check_refuses_what_the_document_forbids() {
    use crate::harness::contract::check;
    use reqwest::header::{HeaderMap, HeaderValue};
    let mut headers = HeaderMap::new();
    headers.insert("request-id", HeaderValue::from_static("req_1"));
    headers.insert(
        "content-type",
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    let agent = serde_json::json!({
        "id": "agt_1", "object": "agent", "name": "Ann", "email": null,
        "created_at": "2026-01-01T00:00:00Z", "reachable": false, "presence": "offline",
        "last_seen_at": null,
    });
    let ok = |body: &serde_json::Value| {
        check(
            "GET",
            "/v1/agents/agt_1",
            200,
            &headers,
            Some(body.to_string().as_bytes()),
        )
    };
    assert_eq!(ok(&agent), Vec::<String>::new(), "a true answer passes");
    let mut missing = agent.clone();
    missing.as_object_mut().unwrap().remove("email");
    assert!(
        !ok(&missing).is_empty(),
        "an absent field is refused: {missing}"
    );
    let mut wrong = agent.clone();
    wrong["reachable"] = serde_json::json!("yes");
    assert!(!ok(&wrong).is_empty(), "a wrong type is refused");
    assert!(
        !check("GET", "/v1/agents/agt_1", 418, &headers, Some(b"{}")).is_empty(),
        "an undocumented status is refused"
    );
    let mut problem = HeaderMap::new();
    problem.insert("request-id", HeaderValue::from_static("req_1"));
    problem.insert(
        "content-type",
        HeaderValue::from_static("application/problem+json"),
    );
    let body = serde_json::json!({"type": "x", "title": "Method Not Allowed", "status": 405,
        "detail": "d", "code": "method_not_allowed", "request_id": "req_1", "errors": []});
    let body = body.to_string();
    assert!(
        !check("PUT", "/v1/agents", 405, &problem, Some(body.as_bytes())).is_empty(),
        "a 405 without Allow is refused"
    );
    problem.insert("allow", HeaderValue::from_static("GET, HEAD, POST"));
    assert_eq!(
        check("PUT", "/v1/agents", 405, &problem, Some(body.as_bytes())),
        Vec::<String>::new()
    );
}

/// The contract's plain promises, on a running server (every answer here also passes the
/// harness's check of the document): `GET /` leads to the console, a body without
/// `Content-Type: application/json` is 415, a method a path does not accept is 405 with
/// `Allow`, and problems always carry `errors`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_redirects_and_415_and_405_answer_as_documented() {
    use std::sync::atomic::Ordering;
    let app = crate::harness::TestApp::spawn().await;
    let before = crate::harness::contract::CHECKED.load(Ordering::Relaxed);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let root = http.get(format!("{}/", app.url)).send().await.unwrap();
    assert!(
        matches!(root.status().as_u16(), 302 | 303 | 307),
        "{}",
        root.status()
    );
    assert_eq!(root.headers()["location"], "/console/");

    let plain = http
        .post(format!("{}/v1/agents", app.url))
        .bearer_auth(&app.org.secret_key)
        .body(r#"{"name":"Ann"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 415);
    let problem: serde_json::Value = plain.json().await.unwrap();
    assert_eq!(problem["code"], "unsupported_media_type");
    assert_eq!(problem["errors"], serde_json::json!([]));
    assert_eq!(app.count("agents").await, 0);

    for (method, path, allow) in [
        (reqwest::Method::PUT, "/v1/agents", "GET, HEAD, POST"),
        (reqwest::Method::POST, "/healthz", "GET, HEAD"),
        (reqwest::Method::GET, "/auth/logout", "POST"),
        // Behind the widget's gate, which looks up the callback (404) or answered its own
        // text/plain 405 before: found by fuzzing.
        (
            reqwest::Method::PUT,
            "/widget/v1/callbacks/0/events",
            "GET, HEAD, OPTIONS",
        ),
        (
            reqwest::Method::DELETE,
            "/widget/v1/config",
            "GET, HEAD, OPTIONS",
        ),
    ] {
        let resp = http
            .request(method.clone(), format!("{}{path}", app.url))
            .bearer_auth(&app.org.secret_key)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 405, "{method} {path}");
        assert_eq!(resp.headers()["allow"], allow, "{method} {path}");
        let problem: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(problem["code"], "method_not_allowed");
    }

    let missing = http
        .post(format!("{}/agent/v1/pair", app.url))
        .json(&serde_json::json!({"code": "K7Q2-9XMD", "name": "phone", "platform": "cli"}))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let problem: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(problem["errors"], serde_json::json!([]));
    let after = crate::harness::contract::CHECKED.load(Ordering::Relaxed);
    assert!(after >= before + 6, "the harness checked these answers");
}

/// An instance of the document's schema at `schema` (following `$ref`s): every property
/// present; nullable ones `null` when `nulls`, else a value of their type.
fn instance(schema: &serde_json::Value, nulls: bool) -> serde_json::Value {
    use serde_json::{json, Value};
    let doc = &*crate::harness::contract::DOC;
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        return instance(doc.pointer(r.trim_start_matches('#')).unwrap(), nulls);
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        return instance(&all[0], nulls);
    }
    if let Some(any) = schema.get("anyOf").and_then(Value::as_array) {
        if nulls && any.iter().any(|s| s["type"] == "null") {
            return Value::Null;
        }
        return instance(any.iter().find(|s| s["type"] != "null").unwrap(), nulls);
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if nulls && types.contains(&"null") {
        return Value::Null;
    }
    if let Some(first) = schema["enum"].as_array().and_then(|e| e.first()) {
        return first.clone();
    }
    match types.iter().find(|t| **t != "null").copied() {
        Some("string") if schema["format"] == "date-time" => json!("2026-12-08T10:00:00Z"),
        Some("string") => json!("x"),
        Some("integer") => json!(7),
        Some("number") => json!(1.5),
        Some("boolean") => json!(true),
        Some("array") => json!([instance(&schema["items"], nulls)]),
        Some("object") | None => {
            let mut out = serde_json::Map::new();
            for (name, prop) in schema["properties"].as_object().into_iter().flatten() {
                out.insert(name.clone(), instance(prop, nulls));
            }
            if let Some(extra) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                out.insert("k".into(), instance(extra, nulls));
            }
            Value::Object(out)
        }
        Some(other) => panic!("no instance for type {other}"),
    }
}

/// Drift between one SDK response type and the document's schema `name`: an answer with
/// every field set, and one with every nullable field `null`, decode; what the SDK keeps
/// (serialized again) has exactly the schema's fields and validates against it.
fn response_drift<T>(name: &str) -> Vec<String>
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    let pointer = format!("/components/schemas/{name}");
    let schema = crate::harness::contract::DOC
        .pointer(&pointer)
        .unwrap_or_else(|| panic!("the document has no schema {name}"));
    let mut out = vec![];
    for nulls in [false, true] {
        let answer = instance(schema, nulls);
        let decoded: T = match serde_json::from_value(answer.clone()) {
            Ok(t) => t,
            Err(e) => {
                out.push(format!("{name}: the SDK cannot decode {answer}: {e}"));
                continue;
            }
        };
        let again = serde_json::to_value(&decoded).unwrap();
        let keys = |v: &serde_json::Value| {
            v.as_object()
                .map(|o| o.keys().cloned().collect::<std::collections::BTreeSet<_>>())
                .unwrap_or_default()
        };
        if keys(&again) != keys(&answer) {
            out.push(format!(
                "{name}: the SDK has fields {:?}, the document {:?}",
                keys(&again),
                keys(&answer)
            ));
        }
        if let Err(e) = crate::harness::contract::validate(&pointer, &again) {
            out.push(format!("{name}: what the SDK holds is not a {name}: {e}"));
        }
    }
    out
}

/// Drift between one SDK request type (`value` with every field set) and the document's
/// schema `name`: every field the SDK sends is in the schema and validates, and every field
/// the schema requires is one the SDK sends.
fn request_drift<T: serde::Serialize>(name: &str, value: &T) -> Vec<String> {
    let pointer = format!("/components/schemas/{name}");
    let schema = crate::harness::contract::DOC
        .pointer(&pointer)
        .unwrap_or_else(|| panic!("the document has no schema {name}"));
    let sent = serde_json::to_value(value).unwrap();
    let mut out = vec![];
    let props = schema["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for key in sent.as_object().unwrap().keys() {
        if !props.contains_key(key) {
            out.push(format!(
                "{name}: the SDK sends {key}, which the document does not have"
            ));
        }
    }
    for required in schema["required"].as_array().into_iter().flatten() {
        if sent.get(required.as_str().unwrap()).is_none() {
            out.push(format!(
                "{name}: the document requires {required}, the SDK cannot send it"
            ));
        }
    }
    if let Err(e) = crate::harness::contract::validate(&pointer, &sent) {
        out.push(format!("{name}: what the SDK sends is not a {name}: {e}"));
    }
    out
}

/// The Rust SDK's types mirror the document's schemas: a field renamed, added or removed
/// on either side, a nullable field the SDK cannot hold, or a type that differs fails here.
#[test]
fn sdk_types_match_the_openapi_document() {
    use pushdial_sdk::{
        AckResponse, Agent, Call, CallEvent, CreateAgent, CreateCall, CreatePairingCode, Device,
        FieldError, HeartbeatResponse, List, PairRequest, PairResponse, PairingCode, Problem,
        Report, UpdateDevice,
    };
    use std::collections::BTreeMap;
    let mut drift = vec![];
    drift.extend(response_drift::<Problem>("Problem"));
    drift.extend(response_drift::<FieldError>("ProblemField"));
    drift.extend(response_drift::<Agent>("Agent"));
    drift.extend(response_drift::<List<Agent>>("List_Agent"));
    drift.extend(response_drift::<Device>("Device"));
    drift.extend(response_drift::<List<Device>>("List_Device"));
    drift.extend(response_drift::<PairingCode>("PairingCode"));
    drift.extend(response_drift::<Call>("Call"));
    drift.extend(response_drift::<List<Call>>("List_Call"));
    drift.extend(response_drift::<CallEvent>("CallEvent"));
    drift.extend(response_drift::<List<CallEvent>>("List_CallEvent"));
    drift.extend(response_drift::<PairResponse>("PairResponse"));
    drift.extend(response_drift::<AckResponse>("AckResponse"));
    drift.extend(response_drift::<HeartbeatResponse>("HeartbeatResponse"));
    drift.extend(request_drift(
        "CreateAgent",
        &CreateAgent {
            name: "Ann".into(),
            email: Some("ann@example.com".into()),
        },
    ));
    drift.extend(request_drift(
        "CreatePairingCode",
        &CreatePairingCode {
            agent_id: "agt_1".into(),
        },
    ));
    drift.extend(request_drift(
        "CreateCall",
        &CreateCall {
            to: "+12125551234".into(),
            agent_id: Some("agt_1".into()),
            device_id: Some("dev_1".into()),
            confirm: Some("auto".into()),
            expires_in: Some(30),
            metadata: Some(BTreeMap::from([("k".into(), "v".into())])),
        },
    ));
    drift.extend(request_drift(
        "PairRequest",
        &PairRequest {
            code: Some("K7Q2-9XMD".into()),
            token: Some("pd_pair_x".into()),
            name: "phone".into(),
            platform: "cli".into(),
        },
    ));
    drift.extend(request_drift(
        "UpdateDevice",
        &UpdateDevice {
            push_channel: Some(Some("loopback".into())),
            push_token: Some(Some("tok".into())),
            app_version: Some("1.0".into()),
            capabilities: Some(vec!["dial".into()]),
            auto_dial: Some(true),
        },
    ));
    drift.extend(request_drift(
        "ReportRequest",
        &Report {
            status: "completed".into(),
            duration_s: Some(12),
            reason: Some("done".into()),
            observed: Some(true),
        },
    ));
    assert!(
        drift.is_empty(),
        "the SDK's types drifted from openapi/openapi.json:\n{}",
        drift.join("\n")
    );
}

/// The document validates as the OpenAPI version it declares: against the OpenAPI
/// Initiative's schema of 3.1 documents (`tests/fixtures/openapi-3.1.schema.json`, as
/// published with the specification, Apache-2.0), and each of its schemas compiles as
/// JSON Schema draft 2020-12.
#[test]
fn document_is_valid_openapi_3_1() {
    let doc = &*crate::harness::contract::DOC;
    assert_eq!(doc["openapi"], "3.1.0");
    let meta: serde_json::Value =
        serde_json::from_str(include_str!("../fixtures/openapi-3.1.schema.json")).unwrap();
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&meta)
        .unwrap();
    let errors: Vec<String> = validator
        .iter_errors(doc)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "not an OpenAPI 3.1 document:\n{}",
        errors.join("\n")
    );
    for name in doc["components"]["schemas"].as_object().unwrap().keys() {
        let pointer = format!("/components/schemas/{name}");
        if let Err(e) = crate::harness::contract::validate(&pointer, &serde_json::Value::Null) {
            assert!(!e.contains("does not compile"), "{e}");
        }
    }
}

/// The pattern the document gives each id in a path matches the ids the server makes (and
/// refuses what `core::ids` refuses), so that a client or fuzzer that follows it sends ids
/// the server reads.
#[test]
fn path_id_patterns_match_the_ids_the_server_makes() {
    use pushdial_core::ids::{self, Kind};
    let doc = &*crate::harness::contract::DOC;
    let kinds = [
        ("agent_id", Kind::Agent),
        ("api_key_id", Kind::Key),
        ("blocked_number_id", Kind::BlockedNumber),
        ("call_id", Kind::Call),
        ("callback_id", Kind::Callback),
        ("device_id", Kind::Device),
        ("endpoint_id", Kind::WebhookEndpoint),
        ("event_id", Kind::Event),
        ("identity_id", Kind::Identity),
        ("invitation_id", Kind::Invitation),
        ("user_id", Kind::User),
        ("widget_id", Kind::Widget),
    ];
    let mut seen = 0;
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            for p in op["parameters"].as_array().into_iter().flatten() {
                if p["in"] != "path" || p["name"] == "provider" {
                    continue;
                }
                let name = p["name"].as_str().unwrap();
                let (_, kind) = kinds
                    .iter()
                    .find(|(n, _)| *n == name)
                    .unwrap_or_else(|| panic!("a path id with no pattern: {name}"));
                let v = jsonschema::validator_for(&p["schema"]).unwrap();
                for _ in 0..20 {
                    let id = ids::new_id(*kind);
                    assert!(v.is_valid(&serde_json::json!(id)), "{name}: {id}");
                }
                for bad in ["0", "agt_", "agt_0123456789abcdefghjkmnpqri"] {
                    assert_eq!(
                        v.is_valid(&serde_json::json!(bad)),
                        ids::is_valid(*kind, bad),
                        "{name}: {bad}"
                    );
                }
                seen += 1;
            }
        }
    }
    assert!(seen > 30, "the document's paths name ids: {seen}");
}
