//! The agent stream's AsyncAPI document (`openapi/asyncapi.yaml`, served at
//! `/asyncapi.yaml`) says what the server does: a phone is driven through every situation
//! in which the server writes to its socket, and every frame it receives must match
//! exactly one of the document's server → phone messages (and decode, as a known message,
//! with the SDK's `ServerMessage`); what the reference agent writes must match a phone →
//! server message; every close code the server ends a socket with must be one the
//! document lists; and the document describes exactly the `pushdial-protocol` crate's
//! messages in both directions. A team writing a native agent from the document alone
//! gets what the server sends.

use std::collections::{BTreeSet, HashMap};
use std::sync::LazyLock;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use pushdial_sdk::protocol::{CancelReason, FromPhone, ToPhone};
use pushdial_sdk::{AgentClient, AgentMessage, CreateCall, ServerMessage};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::*;

const COMMITTED: &str = include_str!("../../openapi/asyncapi.yaml");

static DOC: LazyLock<Value> = LazyLock::new(|| serde_yaml::from_str(COMMITTED).unwrap());

/// Follows a local `$ref` (`#/a/b`) until a value that is not a reference.
fn resolve(v: &Value) -> &Value {
    let mut v = v;
    for _ in 0..8 {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let pointer = r
                    .strip_prefix('#')
                    .unwrap_or_else(|| panic!("non-local $ref {r}"));
                v = DOC
                    .pointer(pointer)
                    .unwrap_or_else(|| panic!("$ref {r} resolves to nothing"));
            }
            None => return v,
        }
    }
    panic!("$ref chain too long");
}

/// A message of the document: its wire name and a validator of its payload.
struct Described {
    name: String,
    payload: jsonschema::Validator,
}

/// The messages of the operations with this `action` (`send`: the server's, to the
/// phone; `receive`: the phone's).
fn messages(action: &str) -> Vec<Described> {
    let mut out: Vec<Described> = vec![];
    for op in DOC["operations"].as_object().unwrap().values() {
        if op["action"] != action {
            continue;
        }
        for m in op["messages"].as_array().unwrap() {
            let m = resolve(m);
            let name = m["name"].as_str().unwrap().to_owned();
            if out.iter().any(|d| d.name == name) {
                continue;
            }
            let payload = jsonschema::options()
                .with_draft(jsonschema::Draft::Draft7)
                .should_validate_formats(true)
                .build(resolve(&m["payload"]))
                .unwrap_or_else(|e| panic!("payload of {name} does not compile: {e}"));
            out.push(Described { name, payload });
        }
    }
    out
}

/// The one message of `described` that `frame` is; an error naming the frame otherwise.
fn classify(described: &[Described], frame: &str) -> Result<String, String> {
    let value: Value =
        serde_json::from_str(frame).map_err(|e| format!("frame {frame} is not JSON: {e}"))?;
    let matched: Vec<&str> = described
        .iter()
        .filter(|d| d.payload.is_valid(&value))
        .map(|d| d.name.as_str())
        .collect();
    match matched.as_slice() {
        [one] => Ok((*one).to_owned()),
        [] => {
            let why: Vec<String> = described
                .iter()
                .map(|d| {
                    let errors: Vec<String> = d
                        .payload
                        .iter_errors(&value)
                        .map(|e| e.to_string())
                        .collect();
                    format!("{}: {}", d.name, errors.join("; "))
                })
                .collect();
            Err(format!(
                "frame {frame} matches no message of the AsyncAPI document ({})",
                why.join(" | ")
            ))
        }
        many => Err(format!("frame {frame} matches several messages: {many:?}")),
    }
}

/// The close codes the document lists (`x-close-codes`).
fn close_codes() -> BTreeSet<u16> {
    DOC["channels"]["agentStream"]["x-close-codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_u64().unwrap() as u16)
        .collect()
}

#[tokio::test]
async fn asyncapi_document_is_served_and_complete() {
    let app = TestApp::spawn().await;
    let resp = reqwest::get(format!("{}/asyncapi.yaml", app.url))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        content_type.starts_with("application/yaml"),
        "{content_type}"
    );
    assert_eq!(resp.text().await.unwrap(), COMMITTED, "served as committed");

    assert_eq!(DOC["asyncapi"], "3.0.0");
    let channel = &DOC["channels"]["agentStream"];
    assert_eq!(channel["address"], "/agent/v1/stream");
    let server = resolve(&channel["servers"][0]);
    let security = resolve(&server["security"][0]);
    assert_eq!(
        (&security["type"], &security["scheme"]),
        (&Value::from("http"), &Value::from("bearer"))
    );

    // Every message has a JSON Schema payload naming its `type`, its examples follow it,
    // and it belongs to the channel and to an operation.
    let components = DOC["components"]["messages"].as_object().unwrap();
    let in_channel: Vec<&Value> = channel["messages"]
        .as_object()
        .unwrap()
        .values()
        .map(resolve)
        .collect();
    let mut used = BTreeSet::new();
    for op in DOC["operations"].as_object().unwrap().values() {
        assert!(["send", "receive"].contains(&op["action"].as_str().unwrap()));
        assert_eq!(op["channel"]["$ref"], "#/channels/agentStream");
        for m in op["messages"].as_array().unwrap() {
            let r = m["$ref"].as_str().unwrap();
            assert!(r.starts_with("#/channels/agentStream/messages/"), "{r}");
            used.insert(resolve(m)["name"].as_str().unwrap().to_owned());
        }
    }
    for (key, m) in components {
        let name = m["name"].as_str().unwrap();
        let payload = &m["payload"];
        assert_eq!(payload["type"], "object", "{key}");
        assert_eq!(payload["properties"]["type"]["const"], name, "{key}");
        let required: Vec<&str> = payload["required"]
            .as_array()
            .unwrap_or_else(|| panic!("{key} lists no required fields"))
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(required.contains(&"type"), "{key}");
        for field in &required {
            assert!(payload["properties"].get(field).is_some(), "{key}.{field}");
        }
        assert!(in_channel.contains(&m), "{key} is not in the channel");
        assert!(used.contains(name), "{key} is in no operation");
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft7)
            .should_validate_formats(true)
            .build(payload)
            .unwrap();
        let examples = m["examples"].as_array().unwrap();
        assert!(!examples.is_empty(), "{key} has no example");
        for example in examples {
            let errors: Vec<String> = validator
                .iter_errors(&example["payload"])
                .map(|e| e.to_string())
                .collect();
            assert!(errors.is_empty(), "{key}'s example: {errors:?}");
        }
    }
    assert!(close_codes().is_superset(&BTreeSet::from([1012, 4000, 4001, 4002])));
    app.shutdown().await;
}

/// What a phone saw on one socket.
#[derive(Debug)]
enum Seen {
    Text(String),
    /// The close frame's code (`None`: a close frame without one, or no close frame).
    Closed(Option<u16>),
}

/// A phone on a raw WebSocket: sees every frame as the server wrote it; sends the
/// reference agent's heartbeat while `beating`.
struct Phone {
    seen: mpsc::UnboundedReceiver<Seen>,
    task: tokio::task::JoinHandle<()>,
}

impl Phone {
    async fn connect(app: &TestApp, device: &AgentClient, beating: bool) -> Phone {
        let url = format!("{}/agent/v1/stream", app.url.replacen("http", "ws", 1));
        let mut request = url.into_client_request().unwrap();
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {}", device.token()).parse().unwrap(),
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        let heartbeat = serde_json::to_string(&AgentMessage::Heartbeat).unwrap();
        let (tx, seen) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tokio::select! {
                    _ = tick.tick(), if beating => {
                        if ws.send(Message::Text(heartbeat.clone())).await.is_err() {
                            let _ = tx.send(Seen::Closed(None));
                            return;
                        }
                    }
                    frame = ws.next() => match frame {
                        Some(Ok(Message::Text(t))) => { let _ = tx.send(Seen::Text(t)); }
                        Some(Ok(Message::Close(f))) => {
                            let _ = tx.send(Seen::Closed(f.map(|f| u16::from(f.code))));
                            return;
                        }
                        Some(Ok(_)) => {}
                        None | Some(Err(_)) => {
                            let _ = tx.send(Seen::Closed(None));
                            return;
                        }
                    },
                }
            }
        });
        Phone { seen, task }
    }

    /// The next thing seen, within 15 s.
    async fn next(&mut self) -> Seen {
        tokio::time::timeout(Duration::from_secs(15), self.seen.recv())
            .await
            .expect("the server wrote nothing in 15 s")
            .expect("the phone's socket task ended")
    }
}

impl Drop for Phone {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Checks frames against the document and remembers which messages and close codes
/// were seen.
struct Checker {
    sent_by_server: Vec<Described>,
    names: BTreeSet<String>,
    codes: BTreeSet<u16>,
}

impl Checker {
    /// The next frame must be a text frame that is the document's message `expected`,
    /// and the SDK must know it; returns it.
    async fn expect(&mut self, phone: &mut Phone, expected: &str) -> Value {
        let text = match phone.next().await {
            Seen::Text(t) => t,
            Seen::Closed(code) => panic!("closed ({code:?}) while waiting for {expected}"),
        };
        let name = classify(&self.sent_by_server, &text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(name, expected, "{text}");
        let decoded: ServerMessage = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("the SDK cannot decode {text}: {e}"));
        assert_ne!(
            decoded,
            ServerMessage::Unknown,
            "the SDK does not know {text}"
        );
        self.names.insert(name);
        serde_json::from_str(&text).unwrap()
    }

    /// The next frame closes the socket with `code`, which the document lists.
    async fn expect_close(&mut self, phone: &mut Phone, code: u16) {
        match phone.next().await {
            Seen::Closed(got) => assert_eq!(got, Some(code)),
            Seen::Text(t) => panic!("{t} while waiting for close {code}"),
        }
        assert!(
            close_codes().contains(&code),
            "close code {code} is not documented"
        );
        self.codes.insert(code);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_frame_the_server_sends_a_phone_is_in_the_asyncapi_document() {
    // Short windows, so that silence is noticed and a call expires within the test; the
    // phones beat four times a second.
    let app = TestApp::spawn_tuned(|c| {
        c.presence_window = Duration::from_secs(3);
        c.call_expires_in = Duration::from_secs(3);
        c.offer_timeout = Duration::from_secs(30);
    })
    .await;
    let client = app.client();
    let (agent_id, device, device_id) = app.agent_with_device(&client, "Ann").await;
    let mut check = Checker {
        sent_by_server: messages("send"),
        names: BTreeSet::new(),
        codes: BTreeSet::new(),
    };

    // What the reference agent writes is a message of the document.
    let sent_by_phone = messages("receive");
    let heartbeat = serde_json::to_string(&AgentMessage::Heartbeat).unwrap();
    assert_eq!(classify(&sent_by_phone, &heartbeat).unwrap(), "heartbeat");

    // hello, on connecting.
    let mut phone = Phone::connect(&app, &device, true).await;
    let hello = check.expect(&mut phone, "hello").await;
    assert_eq!(hello["device_id"], device_id.as_str());
    assert_eq!(hello["heartbeat_interval_s"], 1);

    // call.offer, the api's first offer; call.canceled, through the API.
    let long = CreateCall {
        expires_in: Some(60),
        ..CreateCall::for_agent("+14155550123", &agent_id)
    };
    let call = client.create_call(&long, None).await.unwrap();
    let offer = check.expect(&mut phone, "call.offer").await;
    assert_eq!(offer["call_id"], call.id.as_str());
    client.cancel_call(&call.id).await.unwrap();
    let cancel = check.expect(&mut phone, "call.canceled").await;
    assert_eq!(cancel["call_id"], call.id.as_str());

    // call.offer again, for the offer still pending when a phone reconnects.
    let call = client.create_call(&long, None).await.unwrap();
    check.expect(&mut phone, "call.offer").await;
    drop(phone);
    let mut phone = Phone::connect(&app, &device, true).await;
    check.expect(&mut phone, "hello").await;
    let again = check.expect(&mut phone, "call.offer").await;
    assert_eq!(
        again["call_id"],
        call.id.as_str(),
        "the pending offer, sent again"
    );
    client.cancel_call(&call.id).await.unwrap();
    check.expect(&mut phone, "call.canceled").await;

    // call.canceled with a reason, when an offered call expires.
    let short = CreateCall::for_agent("+14155550123", &agent_id);
    let call = client.create_call(&short, None).await.unwrap();
    check.expect(&mut phone, "call.offer").await;
    let expired = check.expect(&mut phone, "call.canceled").await;
    assert_eq!(
        (&expired["call_id"], &expired["reason"]),
        (&Value::from(call.id.as_str()), &Value::from("expired"))
    );

    // A newer socket of the same device replaces this one: 4002.
    let mut newer = Phone::connect(&app, &device, true).await;
    check.expect(&mut newer, "hello").await;
    check.expect_close(&mut phone, 4002).await;

    // A phone that stops beating is closed after a presence window: 4000.
    let (second, _) = app.pair_device(&client, &agent_id, "quiet phone").await;
    let mut quiet = Phone::connect(&app, &second, false).await;
    check.expect(&mut quiet, "hello").await;
    check.expect_close(&mut quiet, 4000).await;

    // device.revoked, then 4001.
    client.revoke_device(&device_id).await.unwrap();
    check.expect(&mut newer, "device.revoked").await;
    check.expect_close(&mut newer, 4001).await;

    // reconnect, when the server shuts down, then 1012.
    let (third, _) = app.pair_device(&client, &agent_id, "third phone").await;
    let mut last = Phone::connect(&app, &third, true).await;
    check.expect(&mut last, "hello").await;
    app.shutdown().await;
    check.expect(&mut last, "reconnect").await;
    check.expect_close(&mut last, 1012).await;

    // Every server → phone message of the document was seen: none is described but
    // never sent, and the drive above covers each kind.
    let described: BTreeSet<String> = check
        .sent_by_server
        .iter()
        .map(|d| d.name.clone())
        .collect();
    assert_eq!(check.names, described);
    assert_eq!(check.codes, close_codes());
}

/// The SDK's decoding of each example of the document: what a native team copies from
/// the document, the reference agent reads as the message it is.
#[test]
fn the_sdk_decodes_every_example_of_the_document() {
    let mut kinds = HashMap::new();
    for m in DOC["components"]["messages"].as_object().unwrap().values() {
        for example in m["examples"].as_array().unwrap() {
            let text = example["payload"].to_string();
            let name = m["name"].as_str().unwrap();
            if name == "heartbeat" {
                let ours: AgentMessage = serde_json::from_str(&text).unwrap();
                assert_eq!(ours, AgentMessage::Heartbeat);
                continue;
            }
            let decoded: ServerMessage = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("the SDK cannot decode {text}: {e}"));
            assert_ne!(decoded, ServerMessage::Unknown, "{text}");
            kinds.insert(name.to_owned(), decoded);
        }
    }
    assert_eq!(kinds.len(), 5, "{kinds:?}");
}

/// One of each message the protocol crate lets the server send, and of each a phone
/// sends. The `match`es have no wildcard: a new variant does not compile until it is
/// listed here, and then fails the test below until the document describes it.
fn protocol_samples() -> (Vec<ToPhone>, Vec<FromPhone>) {
    let at = chrono::DateTime::parse_from_rfc3339("2026-12-07T10:15:30.123456Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let call_id = "call_01JF3Q4D2S8H6J0K1M3N5P7Q9R".to_owned();
    let to_phone = vec![
        ToPhone::Hello {
            device_id: "dev_01JF3Q2ZB7N4XK8M5R6T9V0W1Y".into(),
            heartbeat_interval_s: 20,
        },
        ToPhone::offer(&call_id, at),
        ToPhone::CallCanceled {
            call_id: call_id.clone(),
            reason: None,
        },
        ToPhone::CallCanceled {
            call_id,
            reason: Some(CancelReason::Expired),
        },
        ToPhone::DeviceRevoked,
        ToPhone::Reconnect,
    ];
    for m in &to_phone {
        match m {
            ToPhone::Hello { .. }
            | ToPhone::CallOffer { .. }
            | ToPhone::CallCanceled { .. }
            | ToPhone::DeviceRevoked
            | ToPhone::Reconnect => {}
            // Decoding's fallback for a newer server's message: never sent.
            ToPhone::Unknown => unreachable!(),
        }
        if let ToPhone::CallCanceled {
            reason: Some(reason),
            ..
        } = m
        {
            match reason {
                CancelReason::Expired => {}
                // Decoding's fallback for a newer server's reason: never sent.
                CancelReason::Unknown => unreachable!(),
            }
        }
    }
    let from_phone = vec![FromPhone::Heartbeat];
    for m in &from_phone {
        match m {
            FromPhone::Heartbeat => {}
        }
    }
    (to_phone, from_phone)
}

/// The document and the protocol crate's enums describe the same messages: every message
/// the server can build is exactly the document's message of its `type` (and every
/// server → phone message of the document is one the server can build), the same for the
/// phone's messages, and every example of the document is what the enum writes for it.
#[test]
fn the_document_describes_the_protocol_crates_messages() {
    let (to_phone, from_phone) = protocol_samples();
    for (action, frames) in [
        (
            "send",
            to_phone.iter().map(ToPhone::to_text).collect::<Vec<_>>(),
        ),
        (
            "receive",
            from_phone
                .iter()
                .map(FromPhone::to_text)
                .collect::<Vec<_>>(),
        ),
    ] {
        let described = messages(action);
        let mut seen = BTreeSet::new();
        for frame in &frames {
            let name = classify(&described, frame).unwrap_or_else(|e| panic!("{e}"));
            let value: Value = serde_json::from_str(frame).unwrap();
            assert_eq!(value["type"], name.as_str(), "{frame}");
            seen.insert(name);
        }
        let names: BTreeSet<String> = described.iter().map(|d| d.name.clone()).collect();
        assert_eq!(seen, names, "{action}: the document and the enum differ");
    }

    // Each example is written back exactly as the document shows it.
    for m in DOC["components"]["messages"].as_object().unwrap().values() {
        for example in m["examples"].as_array().unwrap() {
            let payload = &example["payload"];
            let written = if m["name"] == "heartbeat" {
                serde_json::to_value(serde_json::from_value::<FromPhone>(payload.clone()).unwrap())
            } else {
                serde_json::to_value(serde_json::from_value::<ToPhone>(payload.clone()).unwrap())
            }
            .unwrap();
            assert_eq!(&written, payload);
        }
    }

    // The cancel reasons the document lists are the ones the server can send.
    let reasons =
        &DOC["components"]["messages"]["callCanceled"]["payload"]["properties"]["reason"]["enum"];
    assert_eq!(
        reasons,
        &serde_json::json!([serde_json::to_value(CancelReason::Expired).unwrap()])
    );
}
