//! The seam between the worker and push services. A `PushGateway` wakes a device that
//! holds no live socket. `PushRouter` is the gateway of a deployment: it sends through FCM
//! HTTP v1 (`fcm`), APNs (`apns`) or Web Push (`webpush`) with the organization's own
//! credential when it brought one, else the deployment's, and through `LoopbackGateway`
//! for the `loopback` channel of the local demo.
//!
//! The payload is only `{type, call_id, expires_at}`: no phone number passes through a
//! push provider. The device fetches the details with its ack.

pub mod apns;
pub mod fcm;
pub mod loopback;
pub mod router;
pub mod webpush;

use std::time::Duration;

pub use loopback::LoopbackGateway;
pub use router::PushRouter;

use chrono::{DateTime, Utc};

/// A device's push address.
#[derive(Debug, Clone)]
pub struct PushTarget {
    /// Whose credential sends it.
    pub org_id: String,
    pub device_id: String,
    pub channel: String,
    pub token: String,
}

/// What is pushed: which call, and until when it may be dialed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OfferPayload {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub call_id: String,
    pub expires_at: DateTime<Utc>,
}

impl OfferPayload {
    pub fn new(call_id: &str, expires_at: DateTime<Utc>) -> Self {
        Self {
            kind: "call.offer",
            call_id: call_id.to_owned(),
            expires_at,
        }
    }
}

/// The push service's answer, in the terms the router acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    /// The service accepted the message for delivery (not a delivery receipt).
    Accepted,
    /// The token is dead or the message can never be sent this way: stop using the channel.
    Rejected(String),
    /// This gateway does not serve the device's channel.
    Unsupported,
    /// The egress policy refused the device's endpoint (an internal, loopback or
    /// non-https address): nothing was sent, and the endpoint is never tried again. The
    /// reason is the policy's ([`crate::egress::EgressError::kind`]), never anything the
    /// target said: a refused endpoint must not turn the push into a port scanner.
    EgressRefused(&'static str),
    /// A transient failure: try again later, not before `retry_after` if given.
    Failed {
        error: String,
        retry_after: Option<Duration>,
    },
    /// The provider refused the sender's credential (not the device's token): the
    /// credential is marked failing (`credential` is the organization's credential id, or
    /// `None` for the deployment's) and the call moves on to another device.
    CredentialFailed {
        credential: Option<String>,
        reason: String,
    },
}

impl PushOutcome {
    /// The metric and event label of the outcome.
    pub fn result(&self) -> &'static str {
        match self {
            PushOutcome::Accepted => "accepted",
            PushOutcome::Rejected(_) => "rejected",
            PushOutcome::Unsupported => "unsupported",
            PushOutcome::EgressRefused(_) => "egress_refused",
            PushOutcome::Failed { .. } => "failed",
            PushOutcome::CredentialFailed { .. } => "credential_failed",
        }
    }

    /// The provider's reason, when it gave one.
    pub fn reason(&self) -> Option<&str> {
        match self {
            PushOutcome::Rejected(r) | PushOutcome::CredentialFailed { reason: r, .. } => Some(r),
            PushOutcome::Failed { error, .. } => Some(error),
            PushOutcome::EgressRefused(kind) => Some(kind),
            PushOutcome::Accepted | PushOutcome::Unsupported => None,
        }
    }

    /// A transient failure, with the floor the provider asked for (`Retry-After`).
    pub fn transient(error: impl Into<String>, retry_after: Option<Duration>) -> Self {
        PushOutcome::Failed {
            error: error.into(),
            retry_after,
        }
    }
}

/// The `Retry-After` header of a provider's answer.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::egress::parse_retry_after)
}

/// Time left until the call expires, in whole seconds (at least 1): how long a provider may
/// keep trying to deliver the wake-up.
pub fn ttl_seconds(payload: &OfferPayload) -> u64 {
    let left = (payload.expires_at - Utc::now()).num_seconds();
    left.max(1) as u64
}

/// Sends wake-up messages through a push service.
#[async_trait::async_trait]
pub trait PushGateway: Send + Sync {
    async fn send(&self, target: &PushTarget, payload: &OfferPayload) -> PushOutcome;
}
