//! The messages of a phone's agent stream (`GET /agent/v1/stream`), as JSON text frames
//! `{"type": …, …}`. Every server-side sender — the api's hello, first offers, cancels,
//! revocations and reconnect hints, the worker's offers and expiries, the offers sent
//! again after a reconnect or a Redis outage — builds its message from [`ToPhone`], and the
//! SDK's agent decodes the same enum, so that they cannot drift from one another or from
//! `openapi/asyncapi.yaml`, which tests check every frame and every variant against.
//!
//! Decoding is tolerant where an old agent meets a newer server: an unknown message
//! `type` decodes as [`ToPhone::Unknown`], an unknown cancel reason as
//! [`CancelReason::Unknown`]; the server never sends either.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The heartbeat interval an agent uses when a `hello` does not say (the server always
/// says).
pub const DEFAULT_HEARTBEAT_INTERVAL_S: u64 = 20;

fn default_heartbeat() -> u64 {
    DEFAULT_HEARTBEAT_INTERVAL_S
}

/// A message from the server to a phone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ToPhone {
    /// The first message on every socket: the device is reachable, and must send a
    /// heartbeat this often.
    #[serde(rename = "hello")]
    Hello {
        /// The device the token belongs to.
        device_id: String,
        /// Send a heartbeat this often ([`DEFAULT_HEARTBEAT_INTERVAL_S`] when absent).
        #[serde(default = "default_heartbeat")]
        heartbeat_interval_s: u64,
    },
    /// A call is offered to the device; it acknowledges over HTTP (and gets the number),
    /// never dials past `expires_at`, and ignores an offer of a call it already saw.
    #[serde(rename = "call.offer")]
    CallOffer {
        call_id: String,
        expires_at: DateTime<Utc>,
    },
    /// A call offered to the device ended before dialing: do not dial it.
    #[serde(rename = "call.canceled")]
    CallCanceled {
        call_id: String,
        /// Absent when the call was canceled through the API.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<CancelReason>,
    },
    /// The device was revoked: the socket closes next, and the token is refused from then
    /// on (pair again).
    #[serde(rename = "device.revoked")]
    DeviceRevoked,
    /// The server is shutting down: the socket closes next; reconnect at once.
    #[serde(rename = "reconnect")]
    Reconnect,
    /// A message type this build does not know, from a newer server: an agent ignores it.
    /// The server never sends it.
    #[serde(other, rename = "unknown")]
    Unknown,
}

/// Why a call was canceled, when it was not through the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    /// The call reached its `expires_at` before anyone dialed it.
    Expired,
    /// A reason this build does not know, from a newer server. The server never sends it.
    #[serde(other)]
    Unknown,
}

/// A message from a phone to the server. Any frame shows the server the phone is there;
/// this is what a phone sends when it has nothing else to say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum FromPhone {
    /// `{"type":"heartbeat"}`, sent every `heartbeat_interval_s`.
    #[serde(rename = "heartbeat")]
    Heartbeat,
}

impl ToPhone {
    /// The offer of a call.
    pub fn offer(call_id: &str, expires_at: DateTime<Utc>) -> ToPhone {
        ToPhone::CallOffer {
            call_id: call_id.to_owned(),
            expires_at,
        }
    }

    /// The text frame.
    pub fn to_text(&self) -> String {
        // A tagged enum of strings, integers and timestamps always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl FromPhone {
    /// The text frame.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn wire_forms() {
        let at = DateTime::parse_from_rfc3339("2030-01-02T03:04:05.5Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            ToPhone::offer("call_1", at).to_text(),
            r#"{"type":"call.offer","call_id":"call_1","expires_at":"2030-01-02T03:04:05.500Z"}"#
        );
        assert_eq!(
            ToPhone::CallCanceled {
                call_id: "call_1".into(),
                reason: None
            }
            .to_text(),
            r#"{"type":"call.canceled","call_id":"call_1"}"#
        );
        assert_eq!(
            ToPhone::CallCanceled {
                call_id: "call_1".into(),
                reason: Some(CancelReason::Expired)
            }
            .to_text(),
            r#"{"type":"call.canceled","call_id":"call_1","reason":"expired"}"#
        );
        assert_eq!(
            ToPhone::DeviceRevoked.to_text(),
            r#"{"type":"device.revoked"}"#
        );
        assert_eq!(ToPhone::Reconnect.to_text(), r#"{"type":"reconnect"}"#);
        let hello = ToPhone::Hello {
            device_id: "dev_1".into(),
            heartbeat_interval_s: 20,
        };
        assert_eq!(
            hello.to_text(),
            r#"{"type":"hello","device_id":"dev_1","heartbeat_interval_s":20}"#
        );
        let back: ToPhone = serde_json::from_str(&hello.to_text()).unwrap();
        assert_eq!(back, hello);
        assert_eq!(FromPhone::Heartbeat.to_text(), r#"{"type":"heartbeat"}"#);
    }

    #[test]
    fn a_newer_server_does_not_break_an_older_phone() {
        let parse = |s: &str| serde_json::from_str::<ToPhone>(s).unwrap();
        assert_eq!(
            parse(r#"{"type":"device.renamed","name":"x"}"#),
            ToPhone::Unknown
        );
        assert_eq!(
            parse(r#"{"type":"call.canceled","call_id":"call_1","reason":"moved"}"#),
            ToPhone::CallCanceled {
                call_id: "call_1".into(),
                reason: Some(CancelReason::Unknown)
            }
        );
        assert_eq!(
            parse(r#"{"type":"hello","device_id":"dev_1"}"#),
            ToPhone::Hello {
                device_id: "dev_1".into(),
                heartbeat_interval_s: DEFAULT_HEARTBEAT_INTERVAL_S
            }
        );
    }
}
