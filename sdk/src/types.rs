//! Serde types for every JSON object of the pushdial wire contract: resources
//! (Agent, Device, PairingCode, Call, CallEvent), the list envelope, the
//! problem document, agent-API answers, and request bodies.
//!
//! Responses keep ids, statuses, presences and reasons as `String` so that a
//! server adding a new value never breaks an older client; typed helpers
//! ([`CallStatus`], [`Call::is_terminal`]) sit on top. Request bodies skip
//! `None` fields when serialized, so the server applies its own defaults.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};

/// Deserializes `null` (or a missing field, together with `#[serde(default)]`)
/// as `T::default()`.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// An RFC 7807 `application/problem+json` document: how the server explains
/// every 4xx/5xx answer. Every field is optional on the wire so that a partial
/// or odd document still decodes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// `https://pushdial.dev/problems/<code>` (or `about:blank` when synthesized).
    #[serde(default, deserialize_with = "null_as_default")]
    pub r#type: String,
    /// Short human summary.
    #[serde(default, deserialize_with = "null_as_default")]
    pub title: String,
    /// HTTP status (filled from the response when the body lacks it).
    #[serde(default, deserialize_with = "null_as_default")]
    pub status: u16,
    /// Human explanation of this occurrence.
    #[serde(default, deserialize_with = "null_as_default")]
    pub detail: String,
    /// Machine-readable snake_case code, e.g. `no_device_reachable`. Empty when
    /// the server did not send a problem document.
    #[serde(default, deserialize_with = "null_as_default")]
    pub code: String,
    /// The request id (from the body, or else from the `Request-Id` header).
    #[serde(default, deserialize_with = "null_as_default")]
    pub request_id: String,
    /// Per-field validation errors.
    #[serde(default, deserialize_with = "null_as_default")]
    pub errors: Vec<FieldError>,
}

/// One invalid request field, inside [`Problem::errors`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// The offending field (e.g. `to`).
    #[serde(default, deserialize_with = "null_as_default")]
    pub field: String,
    /// What is wrong with it.
    #[serde(default, deserialize_with = "null_as_default")]
    pub message: String,
}

/// How many bytes of a non-problem error body are kept in [`Problem::detail`].
const MAX_DETAIL: usize = 500;

impl Problem {
    /// Builds the problem for a non-2xx answer from its status, its
    /// `Request-Id` header and its raw body.
    ///
    /// A JSON object carrying at least one of `type`/`title`/`code`/`detail` is
    /// decoded as a problem document, with missing `status`, `title` and
    /// `request_id` filled from the response. Anything else (HTML from a proxy,
    /// plain text, an empty body, unrelated JSON) yields a synthesized problem:
    /// type `about:blank`, the status's canonical reason as title, the body
    /// text (truncated) as detail, and an empty `code`.
    pub fn from_response(status: u16, request_id: Option<&str>, body: &[u8]) -> Problem {
        let reason = reqwest::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .map(str::to_owned)
            .unwrap_or_else(|| format!("HTTP {status}"));
        let header_id = request_id.unwrap_or_default().to_owned();

        let decoded = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .filter(serde_json::Value::is_object)
            .and_then(|v| serde_json::from_value::<Problem>(v).ok())
            .filter(|p| {
                !(p.r#type.is_empty()
                    && p.title.is_empty()
                    && p.code.is_empty()
                    && p.detail.is_empty())
            });

        match decoded {
            Some(mut p) => {
                if p.status == 0 {
                    p.status = status;
                }
                if p.title.is_empty() {
                    p.title = reason;
                }
                if p.request_id.is_empty() {
                    p.request_id = header_id;
                }
                p
            }
            None => Problem {
                r#type: "about:blank".to_owned(),
                title: reason,
                status,
                detail: truncate(String::from_utf8_lossy(body).trim(), MAX_DETAIL),
                code: String::new(),
                request_id: header_id,
                errors: Vec::new(),
            },
        }
    }
}

/// Truncates `s` to at most `max` bytes on a char boundary, marking the cut.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

// ---------------------------------------------------------------------------
// Envelopes and resources
// ---------------------------------------------------------------------------

/// The list envelope `{"object":"list","data":[...],"has_more":bool}` shared
/// by every list endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct List<T> {
    /// Always `"list"`.
    #[serde(default)]
    pub object: String,
    /// The page of items.
    pub data: Vec<T>,
    /// Whether more items exist after this page.
    pub has_more: bool,
}

/// A person whose phone(s) place calls (public API resource).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agent {
    /// `agt_…`
    pub id: String,
    /// Always `"agent"`.
    #[serde(default)]
    pub object: String,
    /// Display name.
    pub name: String,
    /// Optional e-mail.
    pub email: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Whether any of the agent's devices can currently receive an offer.
    pub reachable: bool,
    /// `online` (live socket), `push` (reachable by push only) or `offline`.
    pub presence: String,
    /// Last time one of the agent's devices was seen.
    pub last_seen_at: Option<DateTime<Utc>>,
}

/// A paired phone (or CLI agent) belonging to an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Device {
    /// `dev_…`
    pub id: String,
    /// Always `"device"`.
    #[serde(default)]
    pub object: String,
    /// Owning agent.
    pub agent_id: String,
    /// Name given at pairing.
    pub name: String,
    /// `android`, `ios`, `web` or `cli`.
    pub platform: String,
    /// `fcm`, `apns`, `webpush`, `loopback` or none.
    pub push_channel: Option<String>,
    /// Version reported by the device.
    pub app_version: Option<String>,
    /// Capabilities reported by the device.
    #[serde(default, deserialize_with = "null_as_default")]
    pub capabilities: Vec<String>,
    /// Whether the device dials without asking its owner.
    pub auto_dial: bool,
    /// Whether the device can currently receive an offer.
    pub reachable: bool,
    /// `online`, `push` or `offline`.
    pub presence: String,
    /// Last time the device was seen.
    pub last_seen_at: Option<DateTime<Utc>>,
    /// Pairing time.
    pub created_at: DateTime<Utc>,
    /// Set once the device is revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A short-lived code the phone enters (or scans as `pair_uri`) to pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairingCode {
    /// Always `"pairing_code"`.
    #[serde(default)]
    pub object: String,
    /// e.g. `K7Q2-9XMD`.
    pub code: String,
    /// Agent the device will belong to.
    pub agent_id: String,
    /// After this the code is useless.
    pub expires_at: DateTime<Utc>,
    /// `pushdial://pair?server=<public url>&token=<pairing_token>`, for a QR code.
    pub pair_uri: String,
    /// The one-time token (256 bits) the QR code carries; pairs like the code.
    #[serde(default)]
    pub pairing_token: String,
}

/// A click-to-call request and its current state: the protocol crate's, the shape the
/// server writes. `status` and `confirm` stay strings (see the module doc); typed helpers
/// are [`Call::status_enum`] and [`Call::is_terminal`].
pub use pushdial_protocol::Call;

/// One step in a call's history (`GET /v1/calls/{id}/events`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallEvent {
    /// `evt_…`
    pub id: String,
    /// Always `"call_event"`.
    #[serde(default)]
    pub object: String,
    /// The call.
    pub call_id: String,
    /// `status` (a status change) or `push` (a push provider's answer, in `status`).
    #[serde(default = "status_kind")]
    pub kind: String,
    /// The status entered (for `push` entries: the provider's result).
    pub status: String,
    /// Whether the device actually observed this (vs inferred it).
    pub observed: bool,
    /// Reason, for failure-like statuses.
    pub reason: Option<String>,
    /// Device that caused the event, if any.
    pub device_id: Option<String>,
    /// When it happened.
    pub created_at: DateTime<Utc>,
    /// For `push` entries: the provider.
    #[serde(default)]
    pub provider: Option<String>,
}

impl CallEvent {
    /// The status as a [`CallStatus`], or `None` for a value this SDK does not know and
    /// for `push` entries (whose `status` is a provider's result, not a call status).
    pub fn status_enum(&self) -> Option<CallStatus> {
        if self.kind != "status" {
            return None;
        }
        self.status.parse().ok()
    }
}

/// The known call statuses, for matching and for building reports without typos: the
/// protocol's, shared with the server. Responses keep `status: String`; convert with
/// `.parse()` / [`Call::status_enum`].
pub use pushdial_protocol::{CallStatus, UnknownCallStatus};

// ---------------------------------------------------------------------------
// Agent-API answers
// ---------------------------------------------------------------------------

/// Answer of `POST /agent/v1/pair`: the new device and its bearer token.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct PairResponse {
    /// `dev_…`
    pub id: String,
    /// `pd_dev_…`, the device's bearer token. Secret.
    pub token: String,
    /// Owning agent.
    pub agent_id: String,
    /// Always `"device_token"`.
    #[serde(default)]
    pub object: String,
}

impl fmt::Debug for PairResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PairResponse")
            .field("id", &self.id)
            .field("token", &"<redacted>")
            .field("agent_id", &self.agent_id)
            .field("object", &self.object)
            .finish()
    }
}

/// Answer of `POST /agent/v1/calls/{id}/ack`: the number and how to confirm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AckResponse {
    /// The call.
    pub call_id: String,
    /// E.164 number to dial.
    pub to: String,
    /// `prompt` (ask the person first), `auto`, or `required` (ask the person first, even
    /// in auto mode: a widget's call).
    pub confirm: String,
    /// Do not dial after this.
    pub expires_at: DateTime<Utc>,
    /// Call status after the ack (normally `delivered`).
    pub status: String,
}

/// Answer of `POST /agent/v1/heartbeat`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeartbeatResponse {
    /// The device the token belongs to.
    pub device_id: String,
    /// Server clock, handy to detect skew.
    pub server_time: DateTime<Utc>,
}

// ---------------------------------------------------------------------------
// Request bodies and queries
// ---------------------------------------------------------------------------

/// Body of `POST /v1/agents`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CreateAgent {
    /// 1..200 characters.
    pub name: String,
    /// Optional e-mail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// Body of `POST /v1/pairing_codes`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CreatePairingCode {
    /// Agent the device will belong to.
    pub agent_id: String,
}

/// Body of `POST /v1/calls`. Set exactly one of `agent_id` / `device_id`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CreateCall {
    /// E.164 number, e.g. `+15551234567`.
    pub to: String,
    /// Call through any reachable device of this agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// Call through this device.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// `prompt` (server default) or `auto`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirm: Option<String>,
    /// Seconds until the call expires (server default 60; 10..3600).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u32>,
    /// Free-form string metadata, echoed back on the Call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
}

impl CreateCall {
    /// A call to `to` through any reachable device of `agent_id`.
    pub fn for_agent(to: impl Into<String>, agent_id: impl Into<String>) -> Self {
        CreateCall {
            to: to.into(),
            agent_id: Some(agent_id.into()),
            ..Default::default()
        }
    }

    /// A call to `to` through the device `device_id`.
    pub fn for_device(to: impl Into<String>, device_id: impl Into<String>) -> Self {
        CreateCall {
            to: to.into(),
            device_id: Some(device_id.into()),
            ..Default::default()
        }
    }
}

/// Pagination query shared by the list endpoints.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListParams {
    /// 1..100 (server default 20).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Return items after this id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starting_after: Option<String>,
    /// Return items before this id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ending_before: Option<String>,
}

/// Query of `GET /v1/calls`: filters plus pagination.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListCalls {
    /// Only calls in this status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Only calls of this agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// 1..100 (server default 20).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Return items after this id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starting_after: Option<String>,
    /// Return items before this id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ending_before: Option<String>,
}

/// Body of `POST /agent/v1/pair`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PairRequest {
    /// The typed pairing code, e.g. `K7Q2-9XMD` (or `token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The one-time token of the pairing code's QR code or link, `pd_pair_…` (or `code`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Device name shown to the owner.
    pub name: String,
    /// `android`, `ios`, `web` or `cli`.
    pub platform: String,
}

/// Body of `PUT /agent/v1/device`. Every field is optional; `None` leaves the
/// value unchanged. For `push_channel` / `push_token`, `Some(None)` sends an
/// explicit `null` (clears it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateDevice {
    /// `fcm`, `apns`, `webpush`, `loopback`; `Some(None)` clears.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push_channel: Option<Option<String>>,
    /// The push token for `push_channel`; `Some(None)` clears.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push_token: Option<Option<String>>,
    /// App version string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_version: Option<String>,
    /// Capability strings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Vec<String>>,
    /// Whether the device dials without asking.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_dial: Option<bool>,
}

/// Body of `POST /agent/v1/calls/{id}/events`: the device reporting progress.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// `accepted`, `declined`, `dialing`, `connected`, `completed` or `failed`.
    pub status: String,
    /// Call length, for `completed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<u64>,
    /// Why, for `failed` (e.g. `dial_failed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Whether the device actually observed the status (server default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed: Option<bool>,
}

impl Report {
    /// A report of `status` with no other field.
    pub fn new(status: impl Into<String>) -> Self {
        Report {
            status: status.into(),
            ..Default::default()
        }
    }
}

impl From<CallStatus> for Report {
    fn from(s: CallStatus) -> Self {
        Report::new(s.as_str())
    }
}

fn status_kind() -> String {
    "status".to_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn problem_document_decodes_and_fills_gaps() {
        let body = json!({
            "type": "https://pushdial.dev/problems/no_device_reachable",
            "title": "No device reachable",
            "status": 409,
            "detail": "agent agt_1 has no reachable device",
            "code": "no_device_reachable",
            "request_id": "req_1",
            "errors": [{"field": "to", "message": "bad"}]
        });
        let p = Problem::from_response(409, Some("req_hdr"), body.to_string().as_bytes());
        assert_eq!(p.code, "no_device_reachable");
        assert_eq!(p.status, 409);
        assert_eq!(p.request_id, "req_1");
        assert_eq!(p.errors[0].field, "to");

        let p = Problem::from_response(
            422,
            Some("req_hdr"),
            br#"{"code":"validation_failed","detail":null,"errors":null}"#,
        );
        assert_eq!(p.code, "validation_failed");
        assert_eq!(p.status, 422);
        assert_eq!(p.title, "Unprocessable Entity");
        assert_eq!(p.request_id, "req_hdr");
        assert!(p.errors.is_empty());
    }

    #[test]
    fn non_problem_bodies_become_synthesized_problems() {
        let p = Problem::from_response(502, Some("req_9"), b"<html>Bad Gateway</html>");
        assert_eq!(p.status, 502);
        assert_eq!(p.title, "Bad Gateway");
        assert_eq!(p.r#type, "about:blank");
        assert_eq!(p.code, "");
        assert_eq!(p.detail, "<html>Bad Gateway</html>");
        assert_eq!(p.request_id, "req_9");

        let p = Problem::from_response(404, None, b"");
        assert_eq!(
            (p.status, p.title.as_str(), p.detail.as_str()),
            (404, "Not Found", "")
        );

        for body in [
            &br#"{"error":"nope"}"#[..],
            b"[]",
            b"\"x\"",
            br#"{"status":"weird"}"#,
        ] {
            let p = Problem::from_response(500, None, body);
            assert_eq!(p.status, 500);
            assert_eq!(p.r#type, "about:blank");
        }

        let long = "x".repeat(5000);
        let p = Problem::from_response(500, None, long.as_bytes());
        assert!(p.detail.len() <= MAX_DETAIL + '…'.len_utf8());

        let p = Problem::from_response(599, None, b"");
        assert_eq!(p.title, "HTTP 599");
    }

    #[test]
    fn request_bodies_skip_none() {
        let c = CreateCall::for_agent("+15551234567", "agt_1");
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!({"to": "+15551234567", "agent_id": "agt_1"})
        );
        let r = Report {
            duration_s: Some(3),
            ..Report::new("completed")
        };
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"status": "completed", "duration_s": 3})
        );
        let u = UpdateDevice {
            push_channel: Some(None),
            auto_dial: Some(true),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&u).unwrap(),
            json!({"push_channel": null, "auto_dial": true})
        );
        assert_eq!(
            serde_json::to_value(CreateAgent {
                name: "Ada".into(),
                email: None
            })
            .unwrap(),
            json!({"name": "Ada"})
        );
    }

    #[test]
    fn list_query_serializes_only_set_fields() {
        let q = ListCalls {
            status: Some("dialing".into()),
            limit: Some(5),
            ..Default::default()
        };
        let enc = serde_json::to_value(&q).unwrap();
        assert_eq!(enc, json!({"status": "dialing", "limit": 5}));
    }

    #[test]
    fn call_decodes_and_knows_terminal_states() {
        let call: Call = serde_json::from_value(json!({
            "id": "call_1", "object": "call", "agent_id": "agt_1", "device_id": null,
            "to": "+15551234567", "confirm": "prompt", "status": "completed", "reason": null,
            "metadata": {"order": "42"}, "expires_at": "2030-01-01T00:00:00Z",
            "created_at": "2030-01-01T00:00:00Z", "updated_at": "2030-01-01T00:00:01.5+00:00",
            "duration_s": 12
        }))
        .unwrap();
        assert!(call.is_terminal());
        assert_eq!(call.status_enum(), Some(CallStatus::Completed));
        assert_eq!(call.metadata["order"], "42");

        let mut other = call.clone();
        other.status = "brand_new_status".into();
        assert!(!other.is_terminal());
        assert_eq!(other.status_enum(), None);

        for s in CallStatus::ALL {
            assert_eq!(s.as_str().parse::<CallStatus>().unwrap(), s);
            assert_eq!(serde_json::to_value(s).unwrap(), json!(s.as_str()));
        }
        let terminal: Vec<_> = CallStatus::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(
            terminal,
            [
                CallStatus::Declined,
                CallStatus::Completed,
                CallStatus::Failed,
                CallStatus::Canceled,
                CallStatus::Expired
            ]
        );
    }

    #[test]
    fn pair_response_debug_hides_token() {
        let p = PairResponse {
            id: "dev_1".into(),
            token: "pd_dev_secret".into(),
            agent_id: "agt_1".into(),
            object: "device_token".into(),
        };
        assert!(!format!("{p:?}").contains("pd_dev_secret"));
    }
}
