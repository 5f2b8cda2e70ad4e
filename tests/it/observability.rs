//! What an operator sees of a running `pushdial serve`: JSON log lines that carry the
//! request id and the call id, and OpenTelemetry traces exported over OTLP/HTTP in which
//! the worker's job continues the trace of the request that created the call.

use std::process::{Command, Stdio};
use std::time::Duration;

use pushdial_sdk::{AgentClient, Client};
use serde_json::Value;

use crate::call_loop::next_offer;
use crate::fakes::otlp::collector;
use crate::harness::*;
use crate::replicas::{free_addr, ready, Process};

const BIN: &str = env!("CARGO_BIN_EXE_pushdial");

/// Every span of every export: (name, trace id, attributes as a map of strings).
fn spans(exports: &[Value]) -> Vec<(String, String, serde_json::Map<String, Value>)> {
    let mut out = Vec::new();
    for export in exports {
        for rs in export["resourceSpans"].as_array().into_iter().flatten() {
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                for span in ss["spans"].as_array().into_iter().flatten() {
                    let mut attrs = serde_json::Map::new();
                    for a in span["attributes"].as_array().into_iter().flatten() {
                        let value = a["value"]
                            .as_object()
                            .and_then(|v| v.values().next())
                            .cloned()
                            .unwrap_or(Value::Null);
                        attrs.insert(a["key"].as_str().unwrap_or("").to_owned(), value);
                    }
                    out.push((
                        span["name"].as_str().unwrap_or("").to_owned(),
                        span["traceId"].to_string(),
                        attrs,
                    ));
                }
            }
        }
    }
    out
}

/// The value of `field` in a JSON log line, looked up in the event and its spans.
fn log_field<'a>(line: &'a Value, field: &str) -> Option<&'a str> {
    line["fields"][field]
        .as_str()
        .or_else(|| line["span"][field].as_str())
        .or_else(|| {
            line["spans"]
                .as_array()?
                .iter()
                .find_map(|s| s[field].as_str())
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_and_traces_follow_a_call_from_request_to_job() {
    let database_url = fresh_database().await;
    let (otlp_url, exports) = collector().await;
    let logs = std::env::temp_dir().join(format!("pushdial-logs-{}.jsonl", rand::random::<u64>()));
    let addr = free_addr();
    let url = format!("http://{addr}");
    let mut server = Process(
        Command::new(BIN)
            .arg("serve")
            .env("DATABASE_URL", &database_url)
            .env("REDIS_URL", redis_url())
            .env(
                "PUSHDIAL_REDIS_PREFIX",
                format!("obs{:x}:", rand::random::<u32>()),
            )
            .env("PUSHDIAL_LISTEN", &addr)
            .env("PUSHDIAL_LOG_FORMAT", "json")
            .env("PUSHDIAL_OTLP_ENDPOINT", &otlp_url)
            .env("PUSHDIAL_LOOPBACK_PUSH_URL", format!("{otlp_url}/push"))
            .env("PUSHDIAL_SHUTDOWN_DRAIN", "0s")
            .env("PUSHDIAL_SHUTDOWN_GRACE", "2s")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&logs).unwrap())
            .spawn()
            .unwrap(),
    );
    ready(&url).await;

    let db = sqlx::PgPool::connect(&database_url).await.unwrap();
    let org = {
        let mut conn = db.acquire().await.unwrap();
        pushdial_core::tenants::create_org(&mut conn, "Acme", "US")
            .await
            .unwrap()
    };
    let client = Client::new(&url, &org.secret_key).unwrap();
    let agent = client.create_agent("Ann", None).await.unwrap();
    let code = client.create_pairing_code(&agent.id).await.unwrap();
    let (phone, _) = AgentClient::pair(&url, &code.code, "phone", "cli")
        .await
        .unwrap();
    let mut stream = live_stream(&phone).await;
    eventually(Duration::from_secs(5), "the phone online", || async {
        client
            .get_agent(&agent.id)
            .await
            .ok()
            .filter(|a| a.presence == "online")
    })
    .await;

    // Create the call with a plain request, to read its Request-Id.
    let created = reqwest::Client::new()
        .post(format!("{url}/v1/calls"))
        .bearer_auth(&org.secret_key)
        .json(&serde_json::json!({"to": "+12125551234", "agent_id": agent.id}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let request_id = created.headers()["request-id"].to_str().unwrap().to_owned();
    let call: Value = created.json().await.unwrap();
    let call_id = call["id"].as_str().unwrap().to_owned();
    assert_eq!(next_offer(&mut stream).await, call_id);
    phone.ack(&call_id).await.unwrap();

    // A phone without a socket is woken by push: the worker's `call.offer` job routes it.
    let code = client.create_pairing_code(&agent.id).await.unwrap();
    let (sleeper, paired) = AgentClient::pair(&url, &code.code, "sleeper", "android")
        .await
        .unwrap();
    use_loopback_push(&sleeper, "tok").await;
    let woken = reqwest::Client::new()
        .post(format!("{url}/v1/calls"))
        .bearer_auth(&org.secret_key)
        .json(&serde_json::json!({"to": "+12125551235", "device_id": paired.id}))
        .send()
        .await
        .unwrap();
    assert_eq!(woken.status(), 201);
    let woken_request = woken.headers()["request-id"].to_str().unwrap().to_owned();
    let woken: Value = woken.json().await.unwrap();
    let woken_id = woken["id"].as_str().unwrap().to_owned();
    eventually(
        Duration::from_secs(10),
        "the push-woken call offered",
        || async {
            client
                .get_call(&woken_id)
                .await
                .ok()
                .filter(|c| c.status == "offered")
        },
    )
    .await;

    // SIGTERM: the process drains, flushes its traces and exits 0.
    server.sigterm();
    let status = server.exit_status(Duration::from_secs(15)).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "exit status {status:?}"
    );

    // Logs: every line is a JSON object; the access lines carry request and call ids.
    let text = std::fs::read_to_string(&logs).unwrap();
    let _ = std::fs::remove_file(&logs);
    let lines: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let create_line = lines
        .iter()
        .find(|l| {
            l["fields"]["message"] == "request" && log_field(l, "request_id") == Some(&request_id)
        })
        .unwrap_or_else(|| panic!("no access line for {request_id} in:\n{text}"));
    assert_eq!(log_field(create_line, "call_id"), Some(call_id.as_str()));
    assert_eq!(log_field(create_line, "route"), Some("/v1/calls"));
    assert_eq!(create_line["fields"]["status"], 201);
    let ack_line = lines.iter().find(|l| {
        l["fields"]["message"] == "request"
            && log_field(l, "route") == Some("/agent/v1/calls/:id/ack")
    });
    assert_eq!(
        ack_line.and_then(|l| log_field(l, "call_id")),
        Some(call_id.as_str()),
        "the phone's ack is logged with the call id"
    );
    assert!(
        lines
            .iter()
            .all(|l| l["level"].is_string() && l["timestamp"].is_string()),
        "every line has a level and a timestamp"
    );

    // Traces: the request that created a call and the worker's offer job share a trace.
    let spans = spans(&exports.lock().unwrap());
    let of_call = |name: &str, call: &str| {
        spans
            .iter()
            .filter(|(n, _, a)| n == name && a.get("call_id") == Some(&Value::from(call)))
            .map(|(_, trace, a)| (trace.clone(), a.clone()))
            .collect::<Vec<_>>()
    };
    let find_create = |requests: &[(String, serde_json::Map<String, Value>)], id: &str| {
        requests
            .iter()
            .find(|(_, a)| a.get("request_id") == Some(&Value::from(id)))
            .cloned()
            .unwrap_or_else(|| panic!("no request span {id} among {spans:?}"))
    };
    let create = find_create(&of_call("request", &woken_id), &woken_request);
    let jobs = of_call("job", &woken_id);
    assert!(
        jobs.iter()
            .any(|(trace, a)| trace == &create.0
                && a.get("kind") == Some(&Value::from("call.offer"))),
        "the offer job continues the request's trace: request {create:?}, jobs {jobs:?}"
    );
    let requests = of_call("request", &call_id);
    let first = find_create(&requests, &request_id);
    assert!(
        requests.iter().any(|(trace, _)| trace != &first.0),
        "the ack is a request of its own, also tagged with the call"
    );
}
