//! The seam between the worker and push services. A `PushGateway` wakes a device that
//! holds no live socket; the real FCM, APNs and Web Push gateways plug in here. The
//! `LoopbackGateway` speaks a minimal HTTP protocol to a push service on loopback, for the
//! local demo and the tests, and behaves like the real ones on every kind of answer.
//!
//! The payload is only `{type, call_id, expires_at}`: no phone number passes through a
//! push provider. The device fetches the details with its ack.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// A device's push address.
#[derive(Debug, Clone)]
pub struct PushTarget {
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
    /// A transient failure: try again later, not before `retry_after` if given.
    Failed {
        error: String,
        retry_after: Option<Duration>,
    },
}

/// Sends wake-up messages through a push service.
#[async_trait::async_trait]
pub trait PushGateway: Send + Sync {
    async fn send(&self, target: &PushTarget, payload: &OfferPayload) -> PushOutcome;
}

/// Serves the `loopback` channel by POSTing `{token, device_id, payload}` to a URL.
/// 2xx accepted; 404/410 token gone; 429/5xx transient (honouring `Retry-After`); other 4xx
/// rejected.
pub struct LoopbackGateway {
    url: Option<String>,
    http: reqwest::Client,
}

impl LoopbackGateway {
    pub fn new(url: Option<String>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self { url, http }
    }
}

#[async_trait::async_trait]
impl PushGateway for LoopbackGateway {
    async fn send(&self, target: &PushTarget, payload: &OfferPayload) -> PushOutcome {
        let Some(url) = self.url.as_deref().filter(|_| target.channel == "loopback") else {
            return PushOutcome::Unsupported;
        };
        let body = serde_json::json!({
            "token": target.token,
            "device_id": target.device_id,
            "payload": payload,
        });
        let response = match self.http.post(url).json(&body).send().await {
            Ok(r) => r,
            Err(e) => {
                return PushOutcome::Failed {
                    error: format!("loopback push: {e}"),
                    retry_after: None,
                }
            }
        };
        let status = response.status().as_u16();
        match status {
            200..=299 => PushOutcome::Accepted,
            404 | 410 => PushOutcome::Rejected("unregistered".to_owned()),
            429 | 500..=599 => PushOutcome::Failed {
                error: format!("loopback push answered {status}"),
                retry_after: response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs),
            },
            _ => PushOutcome::Rejected(format!("http_{status}")),
        }
    }
}
