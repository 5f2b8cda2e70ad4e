//! Web Push (RFC 8030) for the installable web agent: the payload encrypted for the
//! browser's subscription (RFC 8291, `aes128gcm`) and signed with the sender's VAPID key
//! (RFC 8292), by the `web-push` crate, and sent through our own HTTP client — the one with
//! the egress policy, since the endpoint comes from the device. The endpoint is checked by
//! the policy before each send as well (`EgressPolicy::check_push_endpoint`): the
//! client's resolver never sees a URL whose host is an IP literal.

use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};
use web_push::{
    ContentEncoding, SubscriptionInfo, Urgency, VapidSignatureBuilder, WebPushMessageBuilder,
};

use super::{retry_after, ttl_seconds, OfferPayload, PushOutcome};
use crate::egress::{EgressError, EgressPolicy};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A VAPID key pair: the private key is the raw P-256 scalar, base64url (no padding), as
/// `pushdial admin vapid-keys` prints it.
#[derive(Clone)]
pub struct VapidKey {
    private: String,
    public: String,
    subject: String,
}

impl std::fmt::Debug for VapidKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VapidKey")
            .field("public", &self.public)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

impl VapidKey {
    /// `subject` is the contact the push service may use (`mailto:` or `https:`).
    pub fn new(private_key: &str, subject: &str) -> Result<Self, String> {
        let private = private_key.trim().trim_end_matches('=').to_owned();
        // Checked here: the key parser panics on a scalar of the wrong length.
        if B64.decode(&private).map(|k| k.len()) != Ok(32) {
            return Err("not a P-256 private key in base64url (32 bytes)".into());
        }
        let public = VapidSignatureBuilder::from_base64_no_sub(&private)
            .map_err(|_| "not a P-256 private key in base64url".to_owned())?
            .get_public_key();
        if !(subject.starts_with("mailto:") || subject.starts_with("https://")) {
            return Err("the VAPID subject must be a mailto: or https: URL".into());
        }
        Ok(Self {
            private,
            public: B64.encode(public),
            subject: subject.to_owned(),
        })
    }

    /// A new key pair: (private, public), both base64url.
    pub fn generate() -> (String, String) {
        let pair = jwt_simple::algorithms::ES256KeyPair::generate();
        let private = B64.encode(pair.to_bytes());
        let public = VapidSignatureBuilder::from_base64_no_sub(&private)
            .map(|b| B64.encode(b.get_public_key()))
            .unwrap_or_default();
        (private, public)
    }

    /// The public key browsers subscribe with (`applicationServerKey`).
    pub fn public_key(&self) -> &str {
        &self.public
    }

    pub fn describe(&self) -> Value {
        json!({ "public_key": self.public, "subject": self.subject })
    }
}

/// Parses and checks a subscription as a browser's `PushSubscription.toJSON()` gives it.
pub fn parse_subscription(token: &str) -> Result<SubscriptionInfo, String> {
    let sub: SubscriptionInfo = serde_json::from_str(token).map_err(|_| {
        "a Web Push token is the subscription JSON: {endpoint, keys: {p256dh, auth}}".to_owned()
    })?;
    let url = url::Url::parse(&sub.endpoint).map_err(|_| "endpoint is not a URL".to_owned())?;
    if !matches!(url.scheme(), "https" | "http") || url.host().is_none() {
        return Err("endpoint must be an https URL".into());
    }
    let decode = |s: &str| B64.decode(s.trim_end_matches('='));
    match decode(&sub.keys.p256dh) {
        Ok(k) if k.len() == 65 && k[0] == 4 => {}
        _ => return Err("keys.p256dh must be an uncompressed P-256 public key".into()),
    }
    match decode(&sub.keys.auth) {
        Ok(a) if a.len() == 16 => {}
        _ => return Err("keys.auth must be 16 bytes in base64url".into()),
    }
    Ok(sub)
}

/// Sends the wake-up to one subscription, through `http` (built by
/// [`EgressPolicy::client`] of the same `policy`) after `policy` accepted the endpoint.
pub async fn send(
    policy: &EgressPolicy,
    http: &reqwest::Client,
    key: &VapidKey,
    subscription: &str,
    payload: &OfferPayload,
) -> PushOutcome {
    let sub = match parse_subscription(subscription) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "unusable web push subscription");
            return PushOutcome::Rejected("invalid_subscription".into());
        }
    };
    let request = match prepare(key, &sub, payload) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "web push message not built");
            return PushOutcome::Rejected("invalid_subscription".into());
        }
    };
    // The URL actually requested is the one checked (an IP literal never reaches the
    // client's filtering resolver).
    if let Err(e) = policy.check_push_endpoint(&request.url) {
        tracing::warn!(error = %e, "web push endpoint refused by the egress policy");
        return PushOutcome::EgressRefused(e.kind());
    }
    let mut outgoing = http.post(&request.url).timeout(Duration::from_secs(10));
    for (name, value) in request.headers {
        outgoing = outgoing.header(name, value);
    }
    match outgoing.body(request.body).send().await {
        Ok(r) => outcome(r.status().as_u16(), retry_after(r.headers())),
        Err(e) if e.is_timeout() => PushOutcome::transient("timeout", None),
        // A host name that resolved only to refused addresses (checked on the very
        // addresses the connection would use) is refused; one that does not resolve may be
        // a passing DNS failure, and is retried.
        Err(e) => match EgressError::of(&e) {
            Some(EgressError::Unresolvable(_)) => PushOutcome::transient("unresolvable", None),
            Some(refused) => {
                tracing::warn!(error = %e, "web push endpoint refused by the egress policy");
                PushOutcome::EgressRefused(refused.kind())
            }
            None => {
                tracing::warn!(error = %e, "web push send failed");
                PushOutcome::transient("network", None)
            }
        },
    }
}

/// A request ready to send.
struct Prepared {
    url: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

/// The encrypted, signed request for one subscription.
fn prepare(
    key: &VapidKey,
    sub: &SubscriptionInfo,
    payload: &OfferPayload,
) -> Result<Prepared, web_push::WebPushError> {
    let content = serde_json::to_vec(payload).unwrap_or_default();
    let mut signature = VapidSignatureBuilder::from_base64(&key.private, sub)?;
    signature.add_claim("sub", key.subject.as_str());
    // RFC 8292 §2: the audience is the push resource's origin, port included; `web-push`
    // would leave the port out, which a push service on a non-default port refuses.
    let origin = url::Url::parse(&sub.endpoint)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    signature.add_claim("aud", origin.as_str());
    let mut message = WebPushMessageBuilder::new(sub);
    message.set_payload(ContentEncoding::Aes128Gcm, &content);
    message.set_ttl(ttl_seconds(payload).min(u64::from(u32::MAX)) as u32);
    message.set_urgency(Urgency::High);
    // A later message for the same call replaces this one while undelivered.
    message.set_topic(payload.call_id.chars().take(32).collect());
    message.set_vapid_signature(signature.build()?);
    let request = web_push::request_builder::build_request::<Vec<u8>>(message.build()?);
    Ok(Prepared {
        url: request.uri().to_string(),
        headers: request
            .headers()
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
            .collect(),
        body: request.into_body(),
    })
}

/// What a push service's answer means (RFC 8030 §5, RFC 8292 §4.2).
pub fn outcome(status: u16, retry_after: Option<Duration>) -> PushOutcome {
    match status {
        200..=299 => PushOutcome::Accepted,
        404 | 410 => PushOutcome::Rejected("subscription_gone".into()),
        // RFC 8292 §4.2: 403 when the key does not match the one the subscription was made
        // with (the browser must subscribe again), 401 when the signature is not accepted.
        403 => PushOutcome::Rejected("vapid_key_mismatch".into()),
        401 => PushOutcome::CredentialFailed {
            credential: None,
            reason: "vapid_rejected".into(),
        },
        413 => PushOutcome::Rejected("payload_too_large".into()),
        429 => PushOutcome::transient("too_many_requests", retry_after),
        500..=599 => PushOutcome::transient(format!("http_{status}"), retry_after),
        _ => PushOutcome::Rejected(format!("http_{status}")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_sign_and_subscriptions_are_checked() {
        let (private, public) = VapidKey::generate();
        let key = VapidKey::new(&private, "mailto:ops@example.com").unwrap();
        assert_eq!(key.public_key(), public);
        assert_eq!(B64.decode(&public).unwrap().len(), 65);
        assert!(VapidKey::new("bm90IGEga2V5", "mailto:x@y").is_err());
        assert!(VapidKey::new(&private, "ops@example.com").is_err());

        let (_, browser_public) = VapidKey::generate();
        let auth = B64.encode([7u8; 16]);
        let good = json!({"endpoint": "https://push.example.net/wpush/v2/abc", "keys": {"p256dh": browser_public, "auth": auth}});
        assert!(parse_subscription(&good.to_string()).is_ok());
        let mut bad = good.clone();
        bad["keys"]["auth"] = json!("c2hvcnQ");
        assert!(parse_subscription(&bad.to_string()).is_err());
        let mut bad = good.clone();
        bad["endpoint"] = json!("ftp://push.example.net/x");
        assert!(parse_subscription(&bad.to_string()).is_err());
        assert!(parse_subscription("fcm-token-not-json").is_err());
    }

    #[test]
    fn each_answer_means_what_rfc_8030_says() {
        assert_eq!(outcome(201, None), PushOutcome::Accepted);
        assert_eq!(
            outcome(410, None),
            PushOutcome::Rejected("subscription_gone".into())
        );
        assert_eq!(
            outcome(404, None),
            PushOutcome::Rejected("subscription_gone".into())
        );
        assert!(matches!(
            outcome(401, None),
            PushOutcome::CredentialFailed { .. }
        ));
        assert_eq!(
            outcome(403, None),
            PushOutcome::Rejected("vapid_key_mismatch".into())
        );
        let wait = Some(Duration::from_secs(3));
        assert_eq!(
            outcome(429, wait),
            PushOutcome::transient("too_many_requests", wait)
        );
        assert_eq!(outcome(503, None), PushOutcome::transient("http_503", None));
    }
}
