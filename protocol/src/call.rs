//! A call's states as the server stores them and every client sees them: [`CallStatus`]
//! (the transitions between them are `pushdial_core::lifecycle`'s) and [`Confirm`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

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
    fn only_a_prompt_call_dials_by_itself_on_an_auto_dial_device() {
        assert_eq!(Confirm::Prompt.for_device(true), Confirm::Auto);
        assert_eq!(Confirm::Prompt.for_device(false), Confirm::Prompt);
        assert_eq!(Confirm::Required.for_device(true), Confirm::Required);
        assert_eq!(Confirm::Auto.for_device(false), Confirm::Auto);
    }
}
