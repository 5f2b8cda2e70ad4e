//! Apple Push Notification service through the `a2` crate, with token authentication (a
//! .p8 key, its key id and the team id), sandbox or production per credential.
//!
//! The wake-up is an alert push (priority 10) in the `PUSHDIAL_CALL` category — the app
//! registers that category with a "Call" action — that expires with the call and collapses
//! per call. Besides `aps` it carries `pushdial: {type, call_id, expires_at}` and nothing
//! else. `a2` cannot be pointed at another host, so the request it would send (payload and
//! options) and the meaning of every APNs answer are tested here without the network.

use a2::{
    CollapseId, DefaultNotificationBuilder, ErrorReason, NotificationBuilder, NotificationOptions,
    Priority, PushType,
};
use serde_json::{json, Value};

use super::{OfferPayload, PushOutcome};

/// The notification category the app registers, with its "Call" action.
pub const CATEGORY: &str = "PUSHDIAL_CALL";

/// A token-authenticated APNs sender for one app (topic).
pub struct ApnsSender {
    client: a2::Client,
    topic: String,
}

/// An APNs credential as configured or uploaded.
#[derive(Debug, Clone)]
pub struct ApnsKey {
    /// The .p8 key (PKCS#8 PEM).
    pub pem: String,
    pub key_id: String,
    pub team_id: String,
    /// The app's bundle id.
    pub topic: String,
    pub sandbox: bool,
}

impl ApnsKey {
    /// Checks the parts (the key must be an ES256 PKCS#8 key, as Apple issues them).
    pub fn validate(&self) -> Result<(), String> {
        let alnum10 = |s: &str| s.len() == 10 && s.chars().all(|c| c.is_ascii_alphanumeric());
        if !alnum10(&self.key_id) {
            return Err("key_id must be the 10-character key id".into());
        }
        if !alnum10(&self.team_id) {
            return Err("team_id must be the 10-character team id".into());
        }
        if self.topic.is_empty()
            || self.topic.len() > 255
            || self.topic.contains(char::is_whitespace)
        {
            return Err("topic must be the app's bundle id".into());
        }
        if !self.pem.contains("BEGIN PRIVATE KEY") {
            return Err("key must be the .p8 file's PEM text".into());
        }
        Ok(())
    }

    /// What may be shown: everything but the key.
    pub fn describe(&self) -> Value {
        json!({
            "key_id": self.key_id,
            "team_id": self.team_id,
            "topic": self.topic,
            "sandbox": self.sandbox,
        })
    }
}

impl ApnsSender {
    pub fn new(key: &ApnsKey) -> Result<Self, String> {
        key.validate()?;
        let endpoint = if key.sandbox {
            a2::Endpoint::Sandbox
        } else {
            a2::Endpoint::Production
        };
        let client = a2::Client::token(
            key.pem.as_bytes(),
            key.key_id.clone(),
            key.team_id.clone(),
            a2::ClientConfig::new(endpoint),
        )
        .map_err(|e| format!("unusable APNs key: {e}"))?;
        Ok(Self {
            client,
            topic: key.topic.clone(),
        })
    }

    /// Sends the wake-up to one device token.
    pub async fn send(&self, token: &str, payload: &OfferPayload) -> PushOutcome {
        let notification = match notification(token, &self.topic, payload) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "apns notification not built");
                return PushOutcome::Rejected("invalid_payload".into());
            }
        };
        outcome(self.client.send(notification).await)
    }
}

/// The notification for one device, as `a2` will send it.
pub fn notification<'a>(
    token: &'a str,
    topic: &'a str,
    payload: &'a OfferPayload,
) -> Result<a2::request::payload::Payload<'a>, a2::Error> {
    let options = NotificationOptions {
        apns_priority: Some(Priority::High),
        apns_push_type: Some(PushType::Alert),
        apns_expiration: Some(payload.expires_at.timestamp().max(0) as u64),
        apns_collapse_id: Some(CollapseId::new(&payload.call_id)?),
        apns_topic: Some(topic),
        ..Default::default()
    };
    let mut built = DefaultNotificationBuilder::new()
        .set_title("Call request")
        .set_body("Tap Call to place it from this phone")
        .set_category(CATEGORY)
        .set_sound("default")
        .set_mutable_content()
        .build(token, options);
    built.add_custom_data("pushdial", payload)?;
    Ok(built)
}

/// What an APNs answer means.
pub fn outcome(result: Result<a2::Response, a2::Error>) -> PushOutcome {
    let response = match result {
        Ok(_) => return PushOutcome::Accepted,
        Err(a2::Error::ResponseError(r)) => r,
        Err(a2::Error::RequestTimeout(_)) => return PushOutcome::transient("timeout", None),
        Err(a2::Error::SignerError(e)) => {
            tracing::warn!(error = %e, "apns token not signed");
            return PushOutcome::CredentialFailed {
                credential: None,
                reason: "signing_failed".into(),
            };
        }
        Err(e) => {
            tracing::warn!(error = %e, "apns send failed");
            return PushOutcome::transient("network", None);
        }
    };
    let reason = response.error.as_ref().map(|e| &e.reason);
    match (response.code, reason) {
        (410, _) | (_, Some(ErrorReason::Unregistered)) => {
            PushOutcome::Rejected("unregistered".into())
        }
        (_, Some(ErrorReason::BadDeviceToken)) => PushOutcome::Rejected("bad_device_token".into()),
        (_, Some(ErrorReason::DeviceTokenNotForTopic)) => {
            PushOutcome::Rejected("device_token_not_for_topic".into())
        }
        (_, Some(ErrorReason::InvalidProviderToken)) => PushOutcome::CredentialFailed {
            credential: None,
            reason: "invalid_provider_token".into(),
        },
        (_, Some(ErrorReason::ExpiredProviderToken)) => PushOutcome::CredentialFailed {
            credential: None,
            reason: "expired_provider_token".into(),
        },
        // The credential's topic (bundle id) is wrong for its key: not the device's fault.
        (
            _,
            Some(
                r @ (ErrorReason::BadTopic
                | ErrorReason::TopicDisallowed
                | ErrorReason::MissingTopic),
            ),
        ) => PushOutcome::CredentialFailed {
            credential: None,
            reason: format!("{r:?}").to_lowercase(),
        },
        (403, other) => PushOutcome::CredentialFailed {
            credential: None,
            reason: other.map_or("forbidden".to_owned(), |r| format!("{r:?}").to_lowercase()),
        },
        (429, _) => PushOutcome::transient("too_many_requests", None),
        (500..=599, _) => PushOutcome::transient("apns_unavailable", None),
        (code, other) => PushOutcome::Rejected(
            other.map_or(format!("http_{code}"), |r| format!("{r:?}").to_lowercase()),
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use a2::request::payload::PayloadLike;

    use super::*;

    fn answer(code: u16, reason: Option<ErrorReason>) -> Result<a2::Response, a2::Error> {
        Err(a2::Error::ResponseError(a2::Response {
            error: reason.map(|reason| a2::ErrorBody {
                reason,
                timestamp: None,
            }),
            apns_id: None,
            code,
        }))
    }

    #[test]
    fn the_request_is_an_expiring_collapsing_alert_without_the_number() {
        let expires = chrono::Utc::now() + chrono::Duration::seconds(60);
        let offer = OfferPayload::new("call_01abc", expires);
        let n = notification("a1b2c3", "com.example.dialer", &offer).unwrap();
        assert_eq!(n.device_token, "a1b2c3");
        let o = &n.options;
        assert_eq!(
            o.apns_priority.as_ref().map(|p| p.to_string()),
            Some("10".into())
        );
        assert_eq!(o.apns_push_type, Some(PushType::Alert));
        assert_eq!(o.apns_expiration, Some(expires.timestamp() as u64));
        assert_eq!(
            o.apns_collapse_id.as_ref().map(|c| c.value),
            Some("call_01abc")
        );
        assert_eq!(o.apns_topic, Some("com.example.dialer"));

        let body: Value = serde_json::from_str(&n.clone().to_json_string().unwrap()).unwrap();
        assert_eq!(body["aps"]["category"], CATEGORY);
        assert!(body["aps"]["alert"].is_object());
        let mut keys: Vec<_> = body.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["aps", "pushdial"]);
        assert_eq!(body["pushdial"]["type"], "call.offer");
        assert_eq!(body["pushdial"]["call_id"], "call_01abc");
        assert!(body["pushdial"]["expires_at"].is_string());
        assert_eq!(body["pushdial"].as_object().unwrap().len(), 3);
        assert!(body.to_string().len() <= 4096, "within APNs' payload limit");
    }

    #[test]
    fn each_apns_answer_means_what_apple_documents() {
        assert_eq!(
            outcome(Ok(a2::Response {
                error: None,
                apns_id: None,
                code: 200
            })),
            PushOutcome::Accepted
        );
        assert_eq!(
            outcome(answer(410, Some(ErrorReason::Unregistered))),
            PushOutcome::Rejected("unregistered".into())
        );
        assert_eq!(
            outcome(answer(400, Some(ErrorReason::BadDeviceToken))),
            PushOutcome::Rejected("bad_device_token".into())
        );
        assert!(matches!(
            outcome(answer(403, Some(ErrorReason::InvalidProviderToken))),
            PushOutcome::CredentialFailed { reason, .. } if reason == "invalid_provider_token"
        ));
        assert!(matches!(
            outcome(answer(403, Some(ErrorReason::ExpiredProviderToken))),
            PushOutcome::CredentialFailed { reason, .. } if reason == "expired_provider_token"
        ));
        assert!(matches!(
            outcome(answer(400, Some(ErrorReason::TopicDisallowed))),
            PushOutcome::CredentialFailed { reason, .. } if reason == "topicdisallowed"
        ));
        assert_eq!(
            outcome(answer(429, Some(ErrorReason::TooManyRequests))),
            PushOutcome::transient("too_many_requests", None)
        );
        assert_eq!(
            outcome(answer(503, Some(ErrorReason::ServiceUnavailable))),
            PushOutcome::transient("apns_unavailable", None)
        );
        assert_eq!(
            outcome(Err(a2::Error::RequestTimeout(20))),
            PushOutcome::transient("timeout", None)
        );
    }

    #[test]
    fn keys_are_checked_before_use() {
        let key = ApnsKey {
            pem: "-----BEGIN PRIVATE KEY-----\nMIGT…\n-----END PRIVATE KEY-----".into(),
            key_id: "ABC123DEFG".into(),
            team_id: "DEF123GHIJ".into(),
            topic: "com.example.dialer".into(),
            sandbox: true,
        };
        assert!(key.validate().is_ok());
        assert!(ApnsKey {
            key_id: "short".into(),
            ..key.clone()
        }
        .validate()
        .is_err());
        assert!(ApnsKey {
            pem: "nope".into(),
            ..key.clone()
        }
        .validate()
        .is_err());
        assert!(!key.describe().to_string().contains("PRIVATE"));
    }

    /// A real send through Apple's sandbox, with credentials from the environment:
    /// `PUSHDIAL_TEST_APNS_KEY` (path of the .p8), `PUSHDIAL_TEST_APNS_KEY_ID`,
    /// `PUSHDIAL_TEST_APNS_TEAM_ID`, `PUSHDIAL_TEST_APNS_TOPIC` and
    /// `PUSHDIAL_TEST_APNS_DEVICE_TOKEN` (a development build's token). Skipped, saying so,
    /// when any is missing.
    #[cfg(feature = "apns-sandbox")]
    #[tokio::test]
    async fn sends_through_apples_sandbox_when_credentials_are_given() {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let (Some(path), Some(key_id), Some(team_id), Some(topic), Some(token)) = (
            var("PUSHDIAL_TEST_APNS_KEY"),
            var("PUSHDIAL_TEST_APNS_KEY_ID"),
            var("PUSHDIAL_TEST_APNS_TEAM_ID"),
            var("PUSHDIAL_TEST_APNS_TOPIC"),
            var("PUSHDIAL_TEST_APNS_DEVICE_TOKEN"),
        ) else {
            eprintln!("skipped: PUSHDIAL_TEST_APNS_* credentials are not set");
            return;
        };
        let sender = ApnsSender::new(&ApnsKey {
            pem: std::fs::read_to_string(path).unwrap(),
            key_id,
            team_id,
            topic,
            sandbox: true,
        })
        .unwrap();
        let expires = chrono::Utc::now() + chrono::Duration::seconds(60);
        let offer = OfferPayload::new("call_sandbox_check", expires);
        assert_eq!(sender.send(&token, &offer).await, PushOutcome::Accepted);
    }
}
