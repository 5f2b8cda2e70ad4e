//! The `loopback` channel: a minimal HTTP protocol to a push service on loopback, for the
//! local demo and the tests, behaving like the real providers on every kind of answer.

use std::time::Duration;

use super::{retry_after, OfferPayload, PushGateway, PushOutcome, PushTarget};

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
                tracing::warn!(error = %e, "loopback push failed");
                return PushOutcome::transient("network", None);
            }
        };
        let status = response.status().as_u16();
        match status {
            200..=299 => PushOutcome::Accepted,
            404 | 410 => PushOutcome::Rejected("unregistered".to_owned()),
            429 | 500..=599 => PushOutcome::Failed {
                error: format!("http_{status}"),
                retry_after: retry_after(response.headers()),
            },
            _ => PushOutcome::Rejected(format!("http_{status}")),
        }
    }
}
