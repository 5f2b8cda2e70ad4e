//! Google's OAuth token endpoint and FCM HTTP v1 on loopback, checking what Google checks:
//! the service account's signed assertion, the bearer token and the message's shape.
//! Answers can be scripted per registration token or fixed per project.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use base64::Engine;
use serde_json::{json, Value};

pub const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;
pub const KEY_PEM: &str = include_str!("../../fixtures/fcm-test-key.pem");
/// The same key's public half (PKCS#1 DER), as Google holds it.
pub const PUB_DER: &[u8] = include_bytes!("../../fixtures/fcm-test-key.pub.der");

/// A scripted answer: status, body, `Retry-After`.
pub type Answer = (u16, Value, Option<u64>);

/// One message FCM received.
#[derive(Debug, Clone)]
pub struct Sent {
    pub project: String,
    pub token: String,
    pub body: String,
    pub at: Instant,
}

#[derive(Default)]
pub struct Google {
    pub url: String,
    pub token_fetches: AtomicUsize,
    /// Access tokens issued, by the service account's e-mail.
    pub issued: Mutex<HashMap<String, String>>,
    pub sent: Mutex<Vec<Sent>>,
    /// Answers per registration token (then 200).
    pub script: Mutex<HashMap<String, VecDeque<Answer>>>,
    /// A fixed answer for every message of a project.
    pub project_answer: Mutex<HashMap<String, Answer>>,
    /// What the fakes found wrong in a request.
    pub violations: Mutex<Vec<String>>,
}

pub fn fcm_error(status: u16, grpc: &str, code: &str) -> Value {
    json!({"error": {"code": status, "message": code, "status": grpc,
        "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}]}})
}

impl Google {
    pub async fn start() -> Arc<Google> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let google = Arc::new(Google {
            url: format!("http://{}", listener.local_addr().unwrap()),
            ..Default::default()
        });
        let (g1, g2) = (google.clone(), google.clone());
        let app = poem::Route::new()
            .at(
                "/token",
                poem::post(poem::endpoint::make(move |req: poem::Request| {
                    let g = g1.clone();
                    async move { g.token(req).await }
                })),
            )
            .at(
                "/v1/projects/*rest",
                poem::post(poem::endpoint::make(move |req: poem::Request| {
                    let g = g2.clone();
                    async move { g.send(req).await }
                })),
            );
        tokio::spawn(async move {
            let acceptor = poem::listener::TcpAcceptor::from_tokio(listener).unwrap();
            poem::Server::new_with_acceptor(acceptor).run(app).await
        });
        google
    }

    pub fn violation(&self, what: String) -> poem::Response {
        self.violations.lock().unwrap().push(what.clone());
        poem::Response::builder()
            .status(poem::http::StatusCode::BAD_REQUEST)
            .body(fcm_error(400, "INVALID_ARGUMENT", &what).to_string())
    }

    /// The OAuth 2.0 JWT-bearer grant: the assertion must be signed by the account's key,
    /// for this token endpoint, asking for FCM's scope.
    pub async fn token(&self, mut req: poem::Request) -> poem::Response {
        self.token_fetches.fetch_add(1, Ordering::SeqCst);
        let form = req.take_body().into_string().await.unwrap_or_default();
        let fields: HashMap<String, String> = url_decode(&form);
        if fields.get("grant_type").map(String::as_str)
            != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
        {
            return self.violation(format!("grant_type in {form}"));
        }
        // RS256 over the assertion exactly as sent (gcp_auth pads its base64url, which
        // Google accepts; the signature covers the padded text).
        let assertion = fields.get("assertion").cloned().unwrap_or_default();
        let parts: Vec<&str> = assertion.split('.').collect();
        let lenient = |s: &str| B64.decode(s.trim_end_matches('='));
        let (Some(signing_input), Ok(signature), Ok(payload)) = (
            assertion.rfind('.').map(|i| &assertion[..i]),
            lenient(parts.get(2).unwrap_or(&"")),
            lenient(parts.get(1).unwrap_or(&"")),
        ) else {
            return self.violation(format!("assertion shape {assertion}"));
        };
        let key = ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            PUB_DER,
        );
        if key.verify(signing_input.as_bytes(), &signature).is_err() {
            return self.violation("assertion signature".into());
        }
        let claims: Value = serde_json::from_slice(&payload).unwrap_or_default();
        let now = chrono::Utc::now().timestamp();
        if claims["aud"] != format!("{}/token", self.url).as_str()
            || !claims["exp"]
                .as_i64()
                .is_some_and(|e| e > now && e <= now + 3700)
            || !claims["scope"]
                .as_str()
                .is_some_and(|s| s.contains("https://www.googleapis.com/auth/firebase.messaging"))
        {
            return self.violation(format!("assertion claims {claims}"));
        }
        let email = claims["iss"].as_str().unwrap_or_default().to_owned();
        let token = format!("ya29.{}", rand::random::<u64>());
        self.issued.lock().unwrap().insert(email, token.clone());
        poem::Response::builder()
            .content_type("application/json")
            .body(
                json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer"})
                    .to_string(),
            )
    }

    pub async fn send(&self, mut req: poem::Request) -> poem::Response {
        let path = req.uri().path().to_owned();
        let Some(project) = path
            .strip_prefix("/v1/projects/")
            .and_then(|p| p.strip_suffix("/messages:send"))
            .map(str::to_owned)
        else {
            return self.violation(format!("path {path}"));
        };
        let bearer = req
            .header("authorization")
            .and_then(|h| h.strip_prefix("Bearer "))
            .unwrap_or("")
            .to_owned();
        if !self.issued.lock().unwrap().values().any(|t| *t == bearer) {
            return poem::Response::builder()
                .status(poem::http::StatusCode::UNAUTHORIZED)
                .body(fcm_error(401, "UNAUTHENTICATED", "").to_string());
        }
        let body = req.take_body().into_string().await.unwrap_or_default();
        let v: Value = serde_json::from_str(&body).unwrap_or_default();
        let m = &v["message"];
        let mut data_keys: Vec<&String> = m["data"]
            .as_object()
            .map(|d| d.keys().collect())
            .unwrap_or_default();
        data_keys.sort();
        if data_keys != ["call_id", "expires_at", "type"] || m["data"]["type"] != "call.offer" {
            return self.violation(format!("data {}", m["data"]));
        }
        if m.get("notification").is_some() || m["android"]["priority"] != "HIGH" {
            return self.violation(format!("not a high-priority data message: {m}"));
        }
        if m["android"]["collapse_key"] != m["data"]["call_id"]
            || !m["android"]["ttl"]
                .as_str()
                .is_some_and(|t| t.ends_with('s'))
        {
            return self.violation(format!("android options {}", m["android"]));
        }
        let token = m["token"].as_str().unwrap_or("").to_owned();
        self.sent.lock().unwrap().push(Sent {
            project: project.clone(),
            token: token.clone(),
            body: body.clone(),
            at: Instant::now(),
        });
        let fixed = self.project_answer.lock().unwrap().get(&project).cloned();
        let scripted = self
            .script
            .lock()
            .unwrap()
            .get_mut(&token)
            .and_then(|q| q.pop_front());
        let (status, answer, retry) = fixed.or(scripted).unwrap_or((
            200,
            json!({"name": format!("projects/{project}/messages/{}", rand::random::<u32>())}),
            None,
        ));
        let mut r = poem::Response::builder()
            .status(poem::http::StatusCode::from_u16(status).unwrap())
            .content_type("application/json");
        if let Some(secs) = retry {
            r = r.header("retry-after", secs.to_string());
        }
        r.body(answer.to_string())
    }

    pub fn sends_to(&self, token: &str) -> Vec<Sent> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.token == token)
            .cloned()
            .collect()
    }

    pub fn script(&self, token: &str, answers: Vec<Answer>) {
        self.script
            .lock()
            .unwrap()
            .insert(token.to_owned(), answers.into());
    }

    pub fn assert_clean(&self) {
        assert_eq!(*self.violations.lock().unwrap(), Vec::<String>::new());
    }
}

pub fn url_decode(form: &str) -> HashMap<String, String> {
    url::form_urlencoded::parse(form.as_bytes())
        .into_owned()
        .collect()
}

pub fn service_account(google: &Google, project: &str) -> Value {
    json!({
        "type": "service_account",
        "project_id": project,
        "private_key_id": "k1",
        "private_key": KEY_PEM,
        "client_email": format!("push@{project}.iam.gserviceaccount.com"),
        "client_id": "1",
        "token_uri": format!("{}/token", google.url),
    })
}
