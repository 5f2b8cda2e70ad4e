//! A call as every client sees it: its wire shape [`Call`] (the API's answers, the `data`
//! of `call.*` webhooks, what the SDK decodes), and its states as the server stores them:
//! [`CallStatus`] (the transitions between them are `pushdial_core::lifecycle`'s) and
//! [`Confirm`].

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A call placed through an agent's phone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct Call {
    pub id: String,
    /// Always `call`.
    #[serde(default)]
    pub object: String,
    pub agent_id: String,
    /// The device the call is offered to or was taken by.
    pub device_id: Option<String>,
    /// The number the phone dials, E.164.
    pub to: String,
    /// `prompt`: the phone asks its user first; `auto`: it dials at once; `required` (a
    /// widget's call): the phone asks its user first even when set to dial by itself.
    pub confirm: String,
    /// queued, offered, delivered, accepted, declined, dialing, connected, completed,
    /// failed, canceled or expired.
    pub status: String,
    /// Why a call failed or expired: no_device_reachable, push_rejected, push_credential_failed, not_delivered,
    /// expired, dial_failed.
    pub reason: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub metadata: BTreeMap<String, String>,
    /// The phone must not dial after this instant.
    #[serde(serialize_with = "rfc3339")]
    pub expires_at: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339")]
    pub updated_at: DateTime<Utc>,
    /// Length of a completed call, in seconds.
    pub duration_s: Option<i32>,
}

// `status` and `confirm` stay strings on the wire: a client meeting a status a newer server
// added must still decode the call (and the OpenAPI document describes them as strings).
impl Call {
    /// The status as a [`CallStatus`], or `None` for a value this build does not know.
    pub fn status_enum(&self) -> Option<CallStatus> {
        self.status.parse().ok()
    }

    /// Whether the call reached a final state (declined, completed, failed, canceled,
    /// expired). Unknown statuses count as not terminal.
    pub fn is_terminal(&self) -> bool {
        self.status_enum().is_some_and(CallStatus::is_terminal)
    }
}

/// Timestamps as `DateTime::to_rfc3339` writes them (`+00:00`, as the API's answers do),
/// not as chrono's serde does (`Z`): webhook payloads have always looked like this.
fn rfc3339<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&at.to_rfc3339())
}

/// `null` (or, with `#[serde(default)]`, a missing field) as `T::default()`.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Where a call is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallStatus {
    /// Created, not yet offered.
    Queued,
    /// Sent to a device (socket or push).
    Offered,
    /// The device acknowledged the offer (and got the number).
    Delivered,
    /// The person (or auto mode) agreed to dial.
    Accepted,
    /// The person said no.
    Declined,
    /// The phone is dialing.
    Dialing,
    /// The other side picked up.
    Connected,
    /// The call ended normally.
    Completed,
    /// Dialing failed, or no device could take the call.
    Failed,
    /// Canceled through the public API.
    Canceled,
    /// Nobody took it before `expires_at`.
    Expired,
}

impl CallStatus {
    /// Every status, in lifecycle order (declining is the answer to a delivered offer).
    pub const ALL: [CallStatus; 11] = [
        CallStatus::Queued,
        CallStatus::Offered,
        CallStatus::Delivered,
        CallStatus::Accepted,
        CallStatus::Declined,
        CallStatus::Dialing,
        CallStatus::Connected,
        CallStatus::Completed,
        CallStatus::Failed,
        CallStatus::Canceled,
        CallStatus::Expired,
    ];

    /// The wire string, e.g. `"dialing"`.
    pub fn as_str(self) -> &'static str {
        match self {
            CallStatus::Queued => "queued",
            CallStatus::Offered => "offered",
            CallStatus::Delivered => "delivered",
            CallStatus::Accepted => "accepted",
            CallStatus::Declined => "declined",
            CallStatus::Dialing => "dialing",
            CallStatus::Connected => "connected",
            CallStatus::Completed => "completed",
            CallStatus::Failed => "failed",
            CallStatus::Canceled => "canceled",
            CallStatus::Expired => "expired",
        }
    }

    /// No transition leaves a terminal state.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            CallStatus::Declined
                | CallStatus::Completed
                | CallStatus::Failed
                | CallStatus::Canceled
                | CallStatus::Expired
        )
    }
}

impl fmt::Display for CallStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Returned when parsing a string that is not a known [`CallStatus`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownCallStatus(pub String);

impl fmt::Display for UnknownCallStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown call status {:?}", self.0)
    }
}

impl std::error::Error for UnknownCallStatus {}

impl FromStr for CallStatus {
    type Err = UnknownCallStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CallStatus::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownCallStatus(s.to_owned()))
    }
}

/// How the phone confirms a call before dialing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Confirm {
    /// The phone asks its user first, unless the device is set to dial by itself.
    Prompt,
    /// The phone dials at once.
    Auto,
    /// The phone asks its user first even when set to dial by itself: a widget's call,
    /// whose number came from a public page and may be anyone's.
    Required,
}

impl Confirm {
    /// Every value.
    pub const ALL: [Confirm; 3] = [Confirm::Prompt, Confirm::Auto, Confirm::Required];

    /// The wire string, e.g. `"prompt"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Confirm::Prompt => "prompt",
            Confirm::Auto => "auto",
            Confirm::Required => "required",
        }
    }

    /// How a device must confirm this call: one set to auto-dial dials a `prompt` call at
    /// once, but never a `required` one.
    pub fn for_device(self, device_auto_dial: bool) -> Confirm {
        match self {
            Confirm::Prompt if device_auto_dial => Confirm::Auto,
            other => other,
        }
    }
}

impl fmt::Display for Confirm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Returned when parsing a string that is not a [`Confirm`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownConfirm(pub String);

impl fmt::Display for UnknownConfirm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown confirm {:?}", self.0)
    }
}

impl std::error::Error for UnknownConfirm {}

impl FromStr for Confirm {
    type Err = UnknownConfirm;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Confirm::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownConfirm(s.to_owned()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn wire_strings_round_trip() {
        for s in CallStatus::ALL {
            assert_eq!(s.as_str().parse(), Ok(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for c in Confirm::ALL {
            assert_eq!(c.as_str().parse(), Ok(c));
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
        assert!("brand_new".parse::<CallStatus>().is_err());
        assert!("maybe".parse::<Confirm>().is_err());
    }

    #[test]
    fn a_call_is_written_as_webhooks_always_showed_it() {
        let at = DateTime::parse_from_rfc3339("2030-01-02T03:04:05.5Z")
            .unwrap()
            .with_timezone(&Utc);
        let call = Call {
            id: "call_1".into(),
            object: "call".into(),
            agent_id: "agt_1".into(),
            device_id: None,
            to: "+15551234567".into(),
            confirm: Confirm::Prompt.to_string(),
            status: CallStatus::Queued.to_string(),
            reason: None,
            metadata: BTreeMap::from([("order".into(), "42".into())]),
            expires_at: at,
            created_at: at,
            updated_at: at,
            duration_s: None,
        };
        // Absent values are `null`, timestamps `to_rfc3339` (`+00:00`, not `Z`).
        assert_eq!(
            serde_json::to_value(&call).unwrap(),
            serde_json::json!({
                "id": "call_1", "object": "call", "agent_id": "agt_1", "device_id": null,
                "to": "+15551234567", "confirm": "prompt", "status": "queued", "reason": null,
                "metadata": {"order": "42"}, "expires_at": "2030-01-02T03:04:05.500+00:00",
                "created_at": "2030-01-02T03:04:05.500+00:00",
                "updated_at": "2030-01-02T03:04:05.500+00:00", "duration_s": null
            })
        );
        let back: Call = serde_json::from_value(serde_json::to_value(&call).unwrap()).unwrap();
        assert_eq!(back, call);
    }

    #[test]
    fn only_a_prompt_call_dials_by_itself_on_an_auto_dial_device() {
        assert_eq!(Confirm::Prompt.for_device(true), Confirm::Auto);
        assert_eq!(Confirm::Prompt.for_device(false), Confirm::Prompt);
        assert_eq!(Confirm::Required.for_device(true), Confirm::Required);
        assert_eq!(Confirm::Auto.for_device(false), Confirm::Auto);
    }
}
