//! Firebase Cloud Messaging, HTTP v1: `POST {base}/v1/projects/{project}/messages:send`
//! with an OAuth 2.0 bearer token from a service account (`gcp_auth`, which signs the JWT
//! assertion and posts it to the account's `token_uri`). One token per credential, cached
//! until it expires; concurrent sends wait for one fetch instead of each fetching.
//!
//! The message is data-only, high priority, lives as long as the call may still be
//! dialed, and collapses per call; it carries `{type, call_id, expires_at}` and nothing else.

use std::sync::Arc;
use std::time::Duration;

use gcp_auth::TokenProvider;
use serde_json::{json, Value};

use super::{retry_after, ttl_seconds, OfferPayload, PushOutcome};

const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// Longest wait for an access token (gcp_auth retries a failing fetch a few times).
const TOKEN_TIMEOUT: Duration = Duration::from_secs(15);

/// A sender for one service account.
pub struct FcmSender {
    project_id: String,
    send_url: String,
    account: Arc<gcp_auth::CustomServiceAccount>,
    /// Serialises token fetches (gcp_auth caches the token but does not coalesce fetches).
    token_gate: tokio::sync::Mutex<()>,
    http: reqwest::Client,
}

/// What may be shown of a service account: its project and e-mail, never its key.
pub fn describe(service_account_json: &str) -> Result<Value, String> {
    let v: Value = serde_json::from_str(service_account_json)
        .map_err(|_| "not a service-account JSON document".to_owned())?;
    let field = |name: &str| {
        v[name]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| format!("the service account has no `{name}`"))
    };
    if v["type"] != "service_account" {
        return Err("`type` must be \"service_account\"".into());
    }
    field("private_key")?;
    field("token_uri")?;
    Ok(json!({
        "project_id": field("project_id")?,
        "client_email": field("client_email")?,
    }))
}

impl FcmSender {
    /// A sender from a service-account JSON document (its `token_uri` is honoured), sending
    /// to `base_url` (`https://fcm.googleapis.com`, or a fake in tests).
    ///
    /// With `token_uri`, the account's own `token_uri` is replaced (organizations' uploaded
    /// accounts: the token endpoint is the deployment's choice, not the tenant's).
    pub fn new(
        service_account_json: &str,
        base_url: &str,
        http: reqwest::Client,
        token_uri: Option<&str>,
    ) -> Result<Self, String> {
        let meta = describe(service_account_json)?;
        let project_id = meta["project_id"].as_str().unwrap_or_default().to_owned();
        let json = match token_uri {
            Some(uri) => {
                let mut v: Value = serde_json::from_str(service_account_json)
                    .map_err(|_| "not a service-account JSON document".to_owned())?;
                v["token_uri"] = Value::from(uri);
                v.to_string()
            }
            None => service_account_json.to_owned(),
        };
        let account = gcp_auth::CustomServiceAccount::from_json(&json)
            .map_err(|e| format!("unusable service account: {e}"))?;
        Ok(Self {
            send_url: format!(
                "{}/v1/projects/{project_id}/messages:send",
                base_url.trim_end_matches('/')
            ),
            project_id,
            account: Arc::new(account),
            token_gate: tokio::sync::Mutex::new(()),
            http,
        })
    }

    pub fn project_id(&self) -> &str {
        &self.project_id
    }

    /// The access token, fetched at most once at a time and within a bound (gcp_auth's
    /// own client has no timeout).
    async fn token(&self) -> Result<Arc<gcp_auth::Token>, PushOutcome> {
        let _one_at_a_time = self.token_gate.lock().await;
        match tokio::time::timeout(TOKEN_TIMEOUT, self.account.token(&[SCOPE])).await {
            Ok(Ok(token)) => Ok(token),
            Ok(Err(e)) => Err(token_error(&e.to_string())),
            Err(_) => {
                tracing::warn!("fcm token endpoint did not answer in time");
                Err(PushOutcome::transient("token_timeout", None))
            }
        }
    }

    /// Sends the wake-up to one registration token.
    pub async fn send(&self, token: &str, payload: &OfferPayload) -> PushOutcome {
        let bearer = match self.token().await {
            Ok(t) => t,
            Err(outcome) => return outcome,
        };
        let response = self
            .http
            .post(&self.send_url)
            .bearer_auth(bearer.as_str())
            .json(&message(token, payload))
            .send()
            .await;
        match response {
            Ok(r) => {
                let status = r.status().as_u16();
                let wait = retry_after(r.headers());
                let body = r.bytes().await.unwrap_or_default();
                outcome(status, &body, wait)
            }
            Err(e) if e.is_timeout() => PushOutcome::transient("timeout", None),
            Err(e) => {
                tracing::warn!(error = %e, "fcm send failed");
                PushOutcome::transient("network", None)
            }
        }
    }
}

/// The v1 message for one device.
pub fn message(token: &str, payload: &OfferPayload) -> Value {
    json!({
        "message": {
            "token": token,
            "data": {
                "type": payload.kind,
                "call_id": payload.call_id,
                "expires_at": payload.expires_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            },
            "android": {
                "priority": "HIGH",
                "ttl": format!("{}s", ttl_seconds(payload)),
                "collapse_key": payload.call_id,
            },
        }
    })
}

/// A failed token fetch. gcp_auth reports any non-2xx answer of the token endpoint as
/// "token request failed" (after its own retries): the endpoint refused the account, which
/// is the credential's fault. Anything else (connection, TLS) is transient.
fn token_error(error: &str) -> PushOutcome {
    tracing::warn!(error, "fcm token not obtained");
    if error.contains("token request failed") || error.contains("invalid_grant") {
        PushOutcome::CredentialFailed {
            credential: None,
            reason: "token_refused".into(),
        }
    } else {
        PushOutcome::transient("token_unavailable", None)
    }
}

/// What FCM's answer means. Errors carry `error.status` and, in `error.details`, an
/// `FcmError` with the `errorCode` that decides.
pub fn outcome(status: u16, body: &[u8], retry_after: Option<Duration>) -> PushOutcome {
    if (200..300).contains(&status) {
        return PushOutcome::Accepted;
    }
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let code = v["error"]["details"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|d| d["errorCode"].as_str())
        .or_else(|| v["error"]["status"].as_str())
        .unwrap_or("")
        .to_owned();
    // Only an explicit token error condemns the device's registration; an answer without
    // FCM's error code (a wrong base URL, a proxy's page) must not mark every device dead.
    match (code.as_str(), status) {
        ("UNREGISTERED", _) => PushOutcome::Rejected("unregistered".into()),
        ("INVALID_ARGUMENT", _) => PushOutcome::Rejected("invalid_argument".into()),
        // The token was issued for another sender (project): the app must register again.
        ("SENDER_ID_MISMATCH", _) => PushOutcome::Rejected("sender_id_mismatch".into()),
        ("THIRD_PARTY_AUTH_ERROR", _) => PushOutcome::CredentialFailed {
            credential: None,
            reason: "third_party_auth_error".into(),
        },
        ("UNAUTHENTICATED" | "PERMISSION_DENIED", _) | (_, 401 | 403) => {
            PushOutcome::CredentialFailed {
                credential: None,
                reason: if code.is_empty() {
                    "unauthenticated".to_owned()
                } else {
                    code.to_lowercase()
                },
            }
        }
        // No such project (or a wrong base URL): the credential's configuration.
        ("NOT_FOUND", _) | (_, 404) => PushOutcome::CredentialFailed {
            credential: None,
            reason: "not_found".into(),
        },
        ("QUOTA_EXCEEDED", _) | (_, 429) => PushOutcome::transient("quota_exceeded", retry_after),
        ("UNAVAILABLE", _) | (_, 503) => PushOutcome::transient("unavailable", retry_after),
        ("INTERNAL", _) | (_, 500..=599) => PushOutcome::transient("internal", retry_after),
        _ => PushOutcome::transient(format!("http_{status}"), retry_after),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn err(status: &str, code: Option<&str>) -> Vec<u8> {
        let details = code
            .map(|c| json!([{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": c}]))
            .unwrap_or(json!([]));
        serde_json::to_vec(
            &json!({"error": {"code": 0, "message": "m", "status": status, "details": details}}),
        )
        .unwrap()
    }

    #[test]
    fn each_answer_means_what_fcm_documents() {
        let wait = Some(Duration::from_secs(7));
        assert_eq!(
            outcome(200, b"{\"name\":\"x\"}", None),
            PushOutcome::Accepted
        );
        assert_eq!(
            outcome(404, &err("NOT_FOUND", Some("UNREGISTERED")), None),
            PushOutcome::Rejected("unregistered".into())
        );
        assert_eq!(
            outcome(
                400,
                &err("INVALID_ARGUMENT", Some("INVALID_ARGUMENT")),
                None
            ),
            PushOutcome::Rejected("invalid_argument".into())
        );
        assert_eq!(
            outcome(
                403,
                &err("PERMISSION_DENIED", Some("SENDER_ID_MISMATCH")),
                None
            ),
            PushOutcome::Rejected("sender_id_mismatch".into())
        );
        assert!(matches!(
            outcome(404, b"<html>Not Found</html>", None),
            PushOutcome::CredentialFailed { reason, .. } if reason == "not_found"
        ));
        assert_eq!(
            outcome(400, b"bad gateway config", None),
            PushOutcome::transient("http_400", None)
        );
        assert!(matches!(
            outcome(401, &err("UNAUTHENTICATED", Some("THIRD_PARTY_AUTH_ERROR")), None),
            PushOutcome::CredentialFailed { reason, .. } if reason == "third_party_auth_error"
        ));
        assert_eq!(
            outcome(
                429,
                &err("RESOURCE_EXHAUSTED", Some("QUOTA_EXCEEDED")),
                wait
            ),
            PushOutcome::transient("quota_exceeded", wait)
        );
        assert_eq!(
            outcome(503, &err("UNAVAILABLE", Some("UNAVAILABLE")), wait),
            PushOutcome::transient("unavailable", wait)
        );
        assert_eq!(
            outcome(500, &err("INTERNAL", Some("INTERNAL")), None),
            PushOutcome::transient("internal", None)
        );
        assert_eq!(
            outcome(502, b"<html>bad gateway</html>", None),
            PushOutcome::transient("internal", None)
        );
    }

    #[test]
    fn the_message_is_data_only_and_carries_no_number() {
        let expires = chrono::Utc::now() + chrono::Duration::seconds(45);
        let m = message("tok", &OfferPayload::new("call_1", expires));
        let msg = &m["message"];
        assert_eq!(msg["token"], "tok");
        assert!(msg.get("notification").is_none(), "data-only");
        let data = msg["data"].as_object().unwrap();
        let mut keys: Vec<_> = data.keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["call_id", "expires_at", "type"]);
        assert!(
            data.values().all(|v| v.is_string()),
            "FCM data values are strings"
        );
        assert_eq!(msg["android"]["priority"], "HIGH");
        assert_eq!(msg["android"]["collapse_key"], "call_1");
        let ttl = msg["android"]["ttl"].as_str().unwrap();
        let secs: u64 = ttl.trim_end_matches('s').parse().unwrap();
        assert!((43..=45).contains(&secs), "ttl {ttl} is the time left");
    }

    #[test]
    fn service_accounts_are_checked_and_described_without_their_key() {
        let good = json!({
            "type": "service_account", "project_id": "p1", "client_email": "a@p1.iam",
            "private_key": "-----BEGIN PRIVATE KEY-----\n…", "token_uri": "https://oauth2.googleapis.com/token"
        })
        .to_string();
        let d = describe(&good).unwrap();
        assert_eq!(d, json!({"project_id": "p1", "client_email": "a@p1.iam"}));
        assert!(describe("{}").is_err());
        assert!(describe("not json").is_err());
        let no_key = good.replace("private_key", "other");
        assert!(describe(&no_key).unwrap_err().contains("private_key"));
    }
}
