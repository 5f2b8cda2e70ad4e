//! Bad input of every kind gets a 4xx problem document with a stable code and the request
//! id, and writes nothing.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::harness::*;

struct Case {
    what: &'static str,
    method: Method,
    path: String,
    auth: Option<String>,
    body: Option<Body>,
    status: u16,
    code: &'static str,
}

enum Body {
    Json(serde_json::Value),
    Raw(&'static str, Vec<u8>),
    Streamed(Vec<u8>),
}

async fn check(app: &TestApp, case: Case) {
    let before = app.counts().await;
    let mut req =
        reqwest::Client::new().request(case.method.clone(), format!("{}{}", app.url, case.path));
    if let Some(auth) = &case.auth {
        req = req.bearer_auth(auth);
    }
    req = match case.body {
        Some(Body::Json(v)) => req.json(&v),
        Some(Body::Raw(ct, bytes)) => req.header("content-type", ct).body(bytes),
        Some(Body::Streamed(bytes)) => {
            let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
                bytes.chunks(8192).map(|c| Ok(c.to_vec())).collect();
            req.header("content-type", "application/json")
                .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        }
        None => req,
    };
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let request_id = resp
        .headers()
        .get("request-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    assert_eq!(status, case.status, "{}: {body}", case.what);
    assert_eq!(body["code"], case.code, "{}: {body}", case.what);
    assert_eq!(body["status"], case.status, "{}", case.what);
    assert!(
        content_type
            .as_deref()
            .unwrap_or("")
            .starts_with("application/problem+json"),
        "{}",
        case.what
    );
    assert!(request_id.is_some(), "{}: Request-Id header", case.what);
    assert_eq!(
        body["request_id"].as_str(),
        request_id.as_deref(),
        "{}",
        case.what
    );
    assert_eq!(app.counts().await, before, "{}: nothing written", case.what);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_a_problem_and_writes_nothing() {
    let app = TestApp::spawn_tuned(|c| {
        c.presence_window = Duration::from_secs(60);
        // The call stays offered to the hand-held stream (which never acks) for the whole
        // test: its ack timeout (the harness's is 1.5 s) or its expiry firing among the
        // cases would write its failure between a case's two counts, and the cases take
        // over 1.5 s on a busy machine.
        c.offer_timeout = Duration::from_secs(600);
    })
    .await;
    let client = app.client();
    let (agent_id, device, device_id) = app.agent_with_device(&client, "Ann").await;
    let _stream = live_stream(&device).await;
    let mut create = pushdial_sdk::CreateCall::for_agent("+14155550123", &agent_id);
    create.expires_in = Some(600);
    let call = client.create_call(&create, None).await.unwrap();
    // Let the worker offer it, so the job table is quiet while we count rows.
    wait_for_status(&client, &call.id, "offered", Duration::from_secs(10)).await;
    settle(&app).await;

    let sk = Some(app.org.secret_key.clone());
    let pk = Some(app.org.publishable_key.clone());
    let dev = Some(device.token().to_owned());
    // A revoked secret key of a second organization, and a revoked device.
    let revoked_org = app.other_org().await;
    {
        let mut conn = app.db.acquire().await.unwrap();
        let key_id: String =
            sqlx::query_scalar("select id from api_keys where org_id = $1 and kind = 'secret'")
                .bind(&revoked_org.org_id)
                .fetch_one(&mut *conn)
                .await
                .unwrap();
        assert!(
            pushdial_core::store::keys::revoke(&mut conn, &revoked_org.org_id, &key_id)
                .await
                .unwrap()
        );
    }
    let (_, gone_device, gone_id) = app.agent_with_device(&client, "Gone").await;
    client.revoke_device(&gone_id).await.unwrap();
    let big = {
        let mut s = b"{\"to\":\"".to_vec();
        s.extend(std::iter::repeat_n(b'1', 70 * 1024));
        s.extend(b"\"}");
        s
    };
    let call_body = |v: serde_json::Value| Some(Body::Json(v));
    let c = |what, method, path: &str, auth: &Option<String>, body, status, code| Case {
        what,
        method,
        path: path.to_owned(),
        auth: auth.clone(),
        body,
        status,
        code,
    };
    let cases = vec![
        c(
            "malformed JSON",
            Method::POST,
            "/v1/calls",
            &sk,
            Some(Body::Raw("application/json", b"{\"to\": ".to_vec())),
            400,
            "invalid_request_body",
        ),
        c(
            "unknown field",
            Method::POST,
            "/v1/calls",
            &sk,
            call_body(json!({"to": "+14155550123", "agent_id": agent_id, "priority": 1})),
            400,
            "invalid_request_body",
        ),
        c(
            "wrong type",
            Method::POST,
            "/v1/calls",
            &sk,
            call_body(json!({"to": ["+14155550123"], "agent_id": agent_id})),
            400,
            "invalid_request_body",
        ),
        c(
            "wrong type in metadata",
            Method::POST,
            "/v1/calls",
            &sk,
            call_body(json!({"to": "+14155550123", "agent_id": agent_id, "metadata": ["x"]})),
            400,
            "invalid_request_body",
        ),
        c(
            "wrong type in number",
            Method::POST,
            "/v1/calls",
            &sk,
            call_body(json!({"to": "+14155550123", "agent_id": agent_id, "expires_in": "soon"})),
            400,
            "invalid_request_body",
        ),
        c(
            "not JSON",
            Method::POST,
            "/v1/calls",
            &sk,
            Some(Body::Raw("text/plain", b"call me".to_vec())),
            415,
            "unsupported_media_type",
        ),
        c(
            "no leading +",
            Method::POST,
            "/v1/calls",
            &sk,
            call_body(json!({"to": "4155550123", "agent_id": agent_id})),
            400,
            "number_invalid",
        ),
        c(
            "USSD code",
            Method::POST,
            "/v1/calls",
            &sk,
            call_body(json!({"to": "*#06#", "agent_id": agent_id})),
            400,
            "number_invalid",
        ),
        c(
            "too long",
            Method::POST,
            "/v1/calls",
            &sk,
            call_body(json!({"to": "+1415555012345678", "agent_id": agent_id})),
            400,
            "number_invalid",
        ),
        c(
            "letters",
            Method::POST,
            "/v1/calls",
            &sk,
            call_body(json!({"to": "+1415CALLNOW", "agent_id": agent_id})),
            400,
            "number_invalid",
        ),
        c(
            "both targets",
            Method::POST,
            "/v1/calls",
            &sk,
            call_body(json!({"to": "+14155550123", "agent_id": agent_id, "device_id": device_id})),
            400,
            "validation_failed",
        ),
        c(
            "no target",
            Method::POST,
            "/v1/calls",
            &sk,
            call_body(json!({"to": "+14155550123"})),
            400,
            "validation_failed",
        ),
        c(
            "expiry out of range",
            Method::POST,
            "/v1/calls",
            &sk,
            call_body(json!({"to": "+14155550123", "agent_id": agent_id, "expires_in": 5})),
            400,
            "validation_failed",
        ),
        c(
            "bad confirm",
            Method::POST,
            "/v1/calls",
            &sk,
            call_body(json!({"to": "+14155550123", "agent_id": agent_id, "confirm": "maybe"})),
            400,
            "validation_failed",
        ),
        c(
            "malformed agent id",
            Method::POST,
            "/v1/calls",
            &sk,
            call_body(json!({"to": "+14155550123", "agent_id": "agt_nope"})),
            400,
            "validation_failed",
        ),
        c(
            "body over 64 KiB",
            Method::POST,
            "/v1/calls",
            &sk,
            Some(Body::Raw("application/json", big.clone())),
            413,
            "payload_too_large",
        ),
        c(
            "streamed body over 64 KiB",
            Method::POST,
            "/v1/calls",
            &sk,
            Some(Body::Streamed(big)),
            413,
            "payload_too_large",
        ),
        c(
            "malformed call id",
            Method::GET,
            "/v1/calls/12345",
            &sk,
            None,
            400,
            "invalid_id",
        ),
        c(
            "id of another kind",
            Method::GET,
            &format!("/v1/calls/{agent_id}"),
            &sk,
            None,
            400,
            "invalid_id",
        ),
        c(
            "malformed device id",
            Method::DELETE,
            "/v1/devices/dev_",
            &sk,
            None,
            400,
            "invalid_id",
        ),
        c(
            "unknown call",
            Method::GET,
            "/v1/calls/call_00000000000000000000000000",
            &sk,
            None,
            404,
            "resource_missing",
        ),
        c(
            "bad limit",
            Method::GET,
            "/v1/calls?limit=1000",
            &sk,
            None,
            400,
            "validation_failed",
        ),
        c(
            "bad status filter",
            Method::GET,
            "/v1/calls?status=ringing",
            &sk,
            None,
            400,
            "validation_failed",
        ),
        c(
            "bad cursor",
            Method::GET,
            "/v1/calls?starting_after=xyz",
            &sk,
            None,
            400,
            "invalid_id",
        ),
        c(
            "empty agent name",
            Method::POST,
            "/v1/agents",
            &sk,
            call_body(json!({"name": "  "})),
            400,
            "validation_failed",
        ),
        c(
            "bad email",
            Method::POST,
            "/v1/agents",
            &sk,
            call_body(json!({"name": "Bo", "email": "bo"})),
            400,
            "validation_failed",
        ),
        c(
            "no credentials",
            Method::POST,
            "/v1/agents",
            &None,
            call_body(json!({"name": "Bo"})),
            401,
            "missing_credentials",
        ),
        c(
            "unknown key",
            Method::POST,
            "/v1/agents",
            &Some("pd_sk_0000".into()),
            call_body(json!({"name": "Bo"})),
            401,
            "invalid_api_key",
        ),
        c(
            "publishable key",
            Method::POST,
            "/v1/agents",
            &pk,
            call_body(json!({"name": "Bo"})),
            403,
            "secret_key_required",
        ),
        c(
            "publishable key on calls",
            Method::GET,
            "/v1/calls",
            &pk,
            None,
            403,
            "secret_key_required",
        ),
        c(
            "revoked key",
            Method::GET,
            "/v1/agents",
            &Some(revoked_org.secret_key.clone()),
            None,
            401,
            "api_key_revoked",
        ),
        c(
            "device token on public API",
            Method::GET,
            "/v1/agents",
            &dev,
            None,
            401,
            "invalid_api_key",
        ),
        c(
            "secret key on agent API",
            Method::POST,
            "/agent/v1/heartbeat",
            &sk,
            None,
            401,
            "invalid_device_token",
        ),
        c(
            "revoked device",
            Method::POST,
            "/agent/v1/heartbeat",
            &Some(gone_device.token().to_owned()),
            None,
            401,
            "device_revoked",
        ),
        c(
            "revoked device on stream",
            Method::GET,
            "/agent/v1/stream",
            &Some(gone_device.token().to_owned()),
            None,
            401,
            "device_revoked",
        ),
        c(
            "bad pairing code",
            Method::POST,
            "/agent/v1/pair",
            &None,
            call_body(json!({"code": "nope", "name": "x", "platform": "cli"})),
            400,
            "invalid_pairing_code",
        ),
        c(
            "unknown pairing code",
            Method::POST,
            "/agent/v1/pair",
            &None,
            call_body(json!({"code": "2345-6789", "name": "x", "platform": "cli"})),
            404,
            "resource_missing",
        ),
        c(
            "bad platform",
            Method::POST,
            "/agent/v1/pair",
            &None,
            call_body(json!({"code": "2345-6789", "name": "x", "platform": "fax"})),
            400,
            "validation_failed",
        ),
        c(
            "bad reported status",
            Method::POST,
            &format!("/agent/v1/calls/{}/events", call.id),
            &dev,
            call_body(json!({"status": "queued"})),
            400,
            "invalid_status",
        ),
        c(
            "duration without completion",
            Method::POST,
            &format!("/agent/v1/calls/{}/events", call.id),
            &dev,
            call_body(json!({"status": "dialing", "duration_s": 3})),
            400,
            "validation_failed",
        ),
        c(
            "unknown push channel",
            Method::PUT,
            "/agent/v1/device",
            &dev,
            call_body(json!({"push_channel": "pager", "push_token": "x"})),
            400,
            "validation_failed",
        ),
        c(
            "unknown route",
            Method::GET,
            "/v1/nothing",
            &sk,
            None,
            404,
            "route_not_found",
        ),
        c(
            "wrong method",
            Method::PATCH,
            "/v1/calls",
            &sk,
            None,
            405,
            "method_not_allowed",
        ),
    ];
    for case in cases {
        check(&app, case).await;
    }
    // The call the bad reports were aimed at is unchanged.
    assert_eq!(client.get_call(&call.id).await.unwrap().status, "offered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairing_code_works_once() {
    let app = TestApp::spawn().await;
    let client = app.client();
    let agent = client.create_agent("Ann", None).await.unwrap();
    let code = client.create_pairing_code(&agent.id).await.unwrap();
    assert!(code
        .pair_uri
        .starts_with("pushdial://pair?server=http%3A%2F%2F127.0.0.1"));
    let (_, paired) =
        pushdial_sdk::AgentClient::pair(&app.url, &code.code.to_lowercase(), "phone", "android")
            .await
            .unwrap();
    assert!(paired.token.starts_with("pd_dev_"));
    assert!(paired.id.starts_with("dev_"));
    let before = app.counts().await;
    let err = pushdial_sdk::AgentClient::pair(&app.url, &code.code, "phone 2", "android")
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert_eq!(app.counts().await, before);
    let stored: Vec<u8> = sqlx::query_scalar("select token_hash from devices where id = $1")
        .bind(&paired.id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_ne!(stored, paired.token.as_bytes(), "tokens are stored hashed");
}

/// A body that stops arriving is answered 408 once the 15 s allowed have passed; nothing is
/// written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stops_arriving_is_answered_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn().await;
    let before = app.counts().await;
    let addr = app.url.trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/calls HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"to\": ",
        app.org.secret_key
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), async {
        let mut buf = [0u8; 4096];
        loop {
            let n = socket.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
            if String::from_utf8_lossy(&answer).contains("request_timeout") {
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer within 30 s");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(answer.contains("\"request_timeout\""), "{answer}");
    assert_eq!(app.counts().await, before, "nothing written");
}

/// The attack: poem-openapi reads a number or a boolean into a field the document types as
/// a string, so `{"to": 14155550123}` placed a call to a number nobody wrote with `+`,
/// `{"name": false}` named an agent "false", and metadata `true` was stored as `"true"`.
/// Every operation's JSON body is held to the document's types: refused, nothing written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_and_booleans_where_the_document_says_string_are_refused() {
    let app = TestApp::spawn().await;
    let client = app.client();
    let (agent_id, device, _device_id) = app.agent_with_device(&client, "Ann").await;
    let _stream = live_stream(&device).await;
    settle(&app).await;
    let sk = Some(app.org.secret_key.clone());
    let cases = [
        (
            "agent name",
            Method::POST,
            "/v1/agents",
            json!({"name": 12}),
        ),
        (
            "number as a JSON number",
            Method::POST,
            "/v1/calls",
            json!({"to": 14155550123_u64, "agent_id": agent_id}),
        ),
        (
            "metadata value",
            Method::POST,
            "/v1/calls",
            json!({"to": "+14155550123", "agent_id": agent_id, "metadata": {"plan": true}}),
        ),
        (
            "event type in a list",
            Method::POST,
            "/v1/webhook_endpoints",
            json!({"url": "https://hooks.example.com/in", "event_types": ["call.completed", 7]}),
        ),
        (
            "optional description",
            Method::POST,
            "/v1/webhook_endpoints",
            json!({"url": "https://hooks.example.com/in", "description": false}),
        ),
    ];
    for (what, method, path, body) in cases {
        check(
            &app,
            Case {
                what,
                method,
                path: path.to_owned(),
                auth: sk.clone(),
                body: Some(Body::Json(body)),
                status: 400,
                code: "invalid_request_body",
            },
        )
        .await;
    }
    // The same bodies with strings pass the check (and are answered on their merits).
    let (status, body) = app
        .api(
            Method::POST,
            "/v1/calls",
            Some(json!({"to": "+14155550123", "agent_id": agent_id, "metadata": {"plan": "true"}})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["metadata"]["plan"], "true");
}
