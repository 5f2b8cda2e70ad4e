//! Waking phones that hold no live socket, through real HTTP against faithful fakes on
//! loopback: Google's OAuth token endpoint and FCM HTTP v1 (which check the service
//! account's signed assertion, the bearer token and the message's shape), and a Web Push
//! service (which checks the VAPID signature and decrypts the body with the browser's
//! keys). Each provider answer has its effect on the device, the credential and the call.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use jwt_simple::prelude::*;
use pushdial_sdk::{AgentClient, Client, CreateCall};
use serde_json::{json, Value};

use crate::harness::*;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;
const KEY_PEM: &str = include_str!("../fixtures/fcm-test-key.pem");
/// The same key's public half (PKCS#1 DER), as Google holds it.
const PUB_DER: &[u8] = include_bytes!("../fixtures/fcm-test-key.pub.der");

/// A scripted answer: status, body, `Retry-After`.
type Answer = (u16, Value, Option<u64>);

/// One message FCM received.
#[derive(Debug, Clone)]
struct Sent {
    project: String,
    token: String,
    body: String,
    at: Instant,
}

#[derive(Default)]
struct Google {
    url: String,
    token_fetches: AtomicUsize,
    /// Access tokens issued, by the service account's e-mail.
    issued: Mutex<HashMap<String, String>>,
    sent: Mutex<Vec<Sent>>,
    /// Answers per registration token (then 200).
    script: Mutex<HashMap<String, VecDeque<Answer>>>,
    /// A fixed answer for every message of a project.
    project_answer: Mutex<HashMap<String, Answer>>,
    /// What the fakes found wrong in a request.
    violations: Mutex<Vec<String>>,
}

fn fcm_error(status: u16, grpc: &str, code: &str) -> Value {
    json!({"error": {"code": status, "message": code, "status": grpc,
        "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}]}})
}

impl Google {
    async fn start() -> Arc<Google> {
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

    fn violation(&self, what: String) -> poem::Response {
        self.violations.lock().unwrap().push(what.clone());
        poem::Response::builder()
            .status(poem::http::StatusCode::BAD_REQUEST)
            .body(fcm_error(400, "INVALID_ARGUMENT", &what).to_string())
    }

    /// The OAuth 2.0 JWT-bearer grant: the assertion must be signed by the account's key,
    /// for this token endpoint, asking for FCM's scope.
    async fn token(&self, mut req: poem::Request) -> poem::Response {
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

    async fn send(&self, mut req: poem::Request) -> poem::Response {
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

    fn sends_to(&self, token: &str) -> Vec<Sent> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.token == token)
            .cloned()
            .collect()
    }

    fn script(&self, token: &str, answers: Vec<Answer>) {
        self.script
            .lock()
            .unwrap()
            .insert(token.to_owned(), answers.into());
    }

    fn assert_clean(&self) {
        assert_eq!(*self.violations.lock().unwrap(), Vec::<String>::new());
    }
}

fn url_decode(form: &str) -> HashMap<String, String> {
    url::form_urlencoded::parse(form.as_bytes())
        .into_owned()
        .collect()
}

fn service_account(google: &Google, project: &str) -> Value {
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

/// Registers the device's push channel with the documented `push` object.
async fn register_push(app: &TestApp, device: &AgentClient, provider: &str, token: Value) {
    let resp = reqwest::Client::new()
        .put(format!("{}/agent/v1/device", app.url))
        .bearer_auth(device.token())
        .json(&json!({"push": {"provider": provider, "token": token}}))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    assert_eq!(status, 200, "{}", resp.text().await.unwrap_or_default());
}

/// The push entries of a call's timeline: (device, result, reason).
async fn push_trail(client: &Client, call_id: &str) -> Vec<(String, String, String)> {
    client
        .call_events(call_id)
        .await
        .unwrap()
        .data
        .into_iter()
        .filter(|e| e.kind == "push")
        .map(|e| {
            (
                e.device_id.unwrap_or_default(),
                e.status,
                e.reason.unwrap_or_default(),
            )
        })
        .collect()
}

/// Waits for the call's push entries to be exactly `expected` (each is recorded once the
/// provider has answered, a moment after the call shows `offered`).
async fn push_trail_becomes(client: &Client, call_id: &str, expected: &[(String, String, String)]) {
    let mut last = Vec::new();
    for _ in 0..100 {
        last = push_trail(client, call_id).await;
        if last == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(last, expected, "push entries of {call_id}");
}

async fn call_in(client: &Client, call_id: &str, status: &str) -> pushdial_sdk::Call {
    eventually(
        Duration::from_secs(10),
        &format!("{call_id} {status}"),
        || async {
            client
                .get_call(call_id)
                .await
                .ok()
                .filter(|c| c.status == status)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fcm_wakes_phones_with_one_token_and_acts_on_each_answer() {
    let google = Google::start().await;
    let sa_path = std::env::temp_dir().join(format!("pd-sa-{}.json", rand::random::<u64>()));
    std::fs::write(
        &sa_path,
        service_account(&google, "pd-platform").to_string(),
    )
    .unwrap();
    let (path, base) = (sa_path.clone(), google.url.clone());
    let app = TestApp::spawn_tuned(move |c| {
        c.fcm_credentials = Some(path);
        c.fcm_base_url = base;
        c.offer_timeout = Duration::from_secs(30);
    })
    .await;
    let client = app.client();

    // Many wake-ups, one access token; no number passes through Google.
    let (ann, phone, phone_id) = app.agent_with_device(&client, "Ann").await;
    register_push(&app, &phone, "fcm", json!("tok-good")).await;
    let mut calls = Vec::new();
    for i in 0..5 {
        let to = format!("+1415555012{i}");
        calls.push(
            client
                .create_call(&CreateCall::for_agent(&to, &ann), None)
                .await
                .unwrap(),
        );
    }
    eventually(Duration::from_secs(10), "five wake-ups", || async {
        (google.sends_to("tok-good").len() == 5).then_some(())
    })
    .await;
    assert_eq!(
        google.token_fetches.load(Ordering::SeqCst),
        1,
        "one token for many sends"
    );
    assert!(
        google
            .sends_to("tok-good")
            .iter()
            .all(|s| !s.body.contains("415555")),
        "no phone number in any push"
    );
    let first = call_in(&client, &calls[0].id, "offered").await;
    push_trail_becomes(
        &client,
        &first.id,
        &[(phone_id.clone(), "accepted".into(), String::new())],
    )
    .await;
    // `offered` is the provider's acceptance; `delivered` comes only from the app's ack.
    assert_eq!(phone.ack(&first.id).await.unwrap().to, "+14155550120");
    assert_eq!(
        client.get_call(&first.id).await.unwrap().status,
        "delivered"
    );

    // A dead token: the device stops counting as reachable by push, and the call moves on
    // to the next device at once (long before the 30 s ack timeout).
    let (bob, spare, spare_id) = app.agent_with_device(&client, "Bob").await;
    register_push(&app, &spare, "fcm", json!("tok-spare")).await;
    let (gone, gone_id) = app.pair_device(&client, &bob, "old phone").await;
    register_push(&app, &gone, "fcm", json!("tok-gone")).await;
    gone.heartbeat().await.unwrap(); // seen last: tried first
    google.script(
        "tok-gone",
        vec![(404, fcm_error(404, "NOT_FOUND", "UNREGISTERED"), None)],
    );
    let call = client
        .create_call(&CreateCall::for_agent("+14155550130", &bob), None)
        .await
        .unwrap();
    eventually(Duration::from_secs(5), "the spare phone woken", || async {
        (!google.sends_to("tok-spare").is_empty()).then_some(())
    })
    .await; // within 5 s: the 30 s ack timeout plays no part
    let call = call_in(&client, &call.id, "offered").await;
    assert_eq!(call.device_id.as_deref(), Some(spare_id.as_str()));
    push_trail_becomes(
        &client,
        &call.id,
        &[
            (gone_id.clone(), "rejected".into(), "unregistered".into()),
            (spare_id.clone(), "accepted".into(), String::new()),
        ],
    )
    .await;
    assert_eq!(
        client.get_device(&gone_id).await.unwrap().presence,
        "offline"
    );

    // Unavailable with Retry-After: retried no sooner than asked, then accepted.
    let (cy, flaky, flaky_id) = app.agent_with_device(&client, "Cy").await;
    register_push(&app, &flaky, "fcm", json!("tok-flaky")).await;
    google.script(
        "tok-flaky",
        vec![(503, fcm_error(503, "UNAVAILABLE", "UNAVAILABLE"), Some(1))],
    );
    let call = client
        .create_call(&CreateCall::for_agent("+14155550140", &cy), None)
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "the retry", || async {
        (google.sends_to("tok-flaky").len() == 2).then_some(())
    })
    .await;
    let sends = google.sends_to("tok-flaky");
    assert!(
        sends[1].at - sends[0].at >= Duration::from_millis(950),
        "Retry-After honoured: {:?}",
        sends[1].at - sends[0].at
    );
    eventually(
        Duration::from_secs(5),
        "both answers in the timeline",
        || async {
            let trail = push_trail(&client, &call.id).await;
            (trail
                == [
                    (flaky_id.clone(), "failed".into(), "unavailable".into()),
                    (flaky_id.clone(), "accepted".into(), String::new()),
                ])
            .then_some(())
        },
    )
    .await;
    assert_eq!(flaky.ack(&call.id).await.unwrap().to, "+14155550140");
    google.assert_clean();
    let _ = std::fs::remove_file(sa_path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organizations_own_fcm_credential_sends_and_is_marked_failing_when_refused() {
    let google = Google::start().await;
    let base = google.url.clone();
    let token_uri = format!("{}/token", google.url);
    let app = TestApp::spawn_tuned(move |c| {
        c.fcm_base_url = base;
        c.fcm_token_uri = token_uri;
        c.offer_timeout = Duration::from_secs(30);
    })
    .await;
    let client = app.client();
    let (ann, phone, phone_id) = app.agent_with_device(&client, "Ann").await;
    register_push(&app, &phone, "fcm", json!("tok-own")).await;

    // Without any credential (none configured, none uploaded) the phone cannot be woken.
    let call = client
        .create_call(&CreateCall::for_agent("+14155550150", &ann), None)
        .await
        .unwrap();
    let failed = call_in(&client, &call.id, "failed").await;
    assert_eq!(failed.reason.as_deref(), Some("no_device_reachable"));
    push_trail_becomes(
        &client,
        &call.id,
        &[(phone_id.clone(), "unsupported".into(), String::new())],
    )
    .await;

    // Bad credentials are refused and nothing is stored.
    let (status, problem) = app
        .api(
            reqwest::Method::PUT,
            "/v1/push_credentials/fcm",
            Some(json!({"service_account": {"type": "service_account"}})),
        )
        .await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "service_account");
    let mut broken = service_account(&google, "org-proj");
    broken["private_key"] = json!("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n");
    let (status, _) = app
        .api(
            reqwest::Method::PUT,
            "/v1/push_credentials/fcm",
            Some(json!({"service_account": broken})),
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = app
        .api(
            reqwest::Method::PUT,
            "/v1/push_credentials/fcm",
            Some(json!({"service_account": service_account(&google, "org-proj"), "key_id": "X"})),
        )
        .await;
    assert_eq!(status, 400, "another provider's field");
    let (status, _) = app
        .api(
            reqwest::Method::PUT,
            "/v1/push_credentials/sms",
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 404);
    let (_, list) = app
        .api(reqwest::Method::GET, "/v1/push_credentials", None)
        .await;
    assert_eq!(list["data"], json!([]));

    // The organization's own service account: stored sealed, shown without its key. Its
    // `token_uri` names another host; tokens still come from the deployment's endpoint.
    let mut own = service_account(&google, "org-proj");
    own["token_uri"] = json!("http://127.0.0.1:9/steal-the-assertion");
    let (status, cred) = app
        .api(
            reqwest::Method::PUT,
            "/v1/push_credentials/fcm",
            Some(json!({"service_account": own})),
        )
        .await;
    assert_eq!(status, 200, "{cred}");
    assert!(cred["id"].as_str().unwrap().starts_with("pcr_"));
    assert_eq!(cred["metadata"]["project_id"], "org-proj");
    assert!(!cred.to_string().contains("PRIVATE KEY"));
    let stored: Vec<u8> = sqlx::query_scalar("select secret from push_credentials")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&stored).contains("PRIVATE KEY"),
        "sealed at rest"
    );

    let call = client
        .create_call(&CreateCall::for_agent("+14155550151", &ann), None)
        .await
        .unwrap();
    call_in(&client, &call.id, "offered").await;
    eventually(
        Duration::from_secs(5),
        "the wake-up through org-proj",
        || async {
            let sent = google.sends_to("tok-own");
            (sent.last().map(|s| s.project.as_str()) == Some("org-proj")).then_some(())
        },
    )
    .await;

    // Google refuses the organization's credential: it shows as failing, the call moves on.
    google.project_answer.lock().unwrap().insert(
        "org-proj".into(),
        (
            401,
            fcm_error(401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR"),
            None,
        ),
    );
    let call = client
        .create_call(&CreateCall::for_agent("+14155550152", &ann), None)
        .await
        .unwrap();
    let failed = call_in(&client, &call.id, "failed").await;
    assert_eq!(failed.reason.as_deref(), Some("push_credential_failed"));
    push_trail_becomes(
        &client,
        &call.id,
        &[(
            phone_id.clone(),
            "credential_failed".into(),
            "third_party_auth_error".into(),
        )],
    )
    .await;
    let (_, cred) = app
        .api(reqwest::Method::GET, "/v1/push_credentials/fcm", None)
        .await;
    assert_eq!(cred["last_error"], "third_party_auth_error");
    assert!(cred["failing_since"].is_string());
    assert_eq!(
        client.get_device(&phone_id).await.unwrap().presence,
        "push",
        "the device is not at fault"
    );

    // Deleting it returns the organization to the deployment's (none here).
    let (status, _) = app
        .api(reqwest::Method::DELETE, "/v1/push_credentials/fcm", None)
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .api(reqwest::Method::GET, "/v1/push_credentials/fcm", None)
        .await;
    assert_eq!(status, 404);
    google.assert_clean();
}

/// A Web Push service: checks the VAPID signature against the key it names, and decrypts
/// each message with the subscription's private key, as a browser would.
#[derive(Default)]
struct PushService {
    url: String,
    /// Subscriptions by path: (private key components, auth secret).
    browsers: Mutex<HashMap<String, (ece::EcKeyComponents, [u8; 16])>>,
    /// Decrypted payloads with the VAPID public key that signed them.
    received: Mutex<Vec<(String, Value, String)>>,
    gone: Mutex<Vec<String>>,
    violations: Mutex<Vec<String>>,
}

impl PushService {
    async fn start() -> Arc<PushService> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let service = Arc::new(PushService {
            url: format!("http://{}", listener.local_addr().unwrap()),
            ..Default::default()
        });
        let s = service.clone();
        let app = poem::Route::new().at(
            "/wp/:id",
            poem::post(poem::endpoint::make(move |req: poem::Request| {
                let s = s.clone();
                async move { s.receive(req).await }
            })),
        );
        tokio::spawn(async move {
            let acceptor = poem::listener::TcpAcceptor::from_tokio(listener).unwrap();
            poem::Server::new_with_acceptor(acceptor).run(app).await
        });
        service
    }

    /// A new browser subscription under `/wp/{id}`, as `PushSubscription.toJSON()`.
    fn subscribe(&self, id: &str) -> Value {
        let (keys, auth) = ece::generate_keypair_and_auth_secret().unwrap();
        let subscription = json!({
            "endpoint": format!("{}/wp/{id}", self.url),
            "keys": {"p256dh": B64.encode(keys.pub_as_raw().unwrap()), "auth": B64.encode(auth)},
        });
        self.browsers
            .lock()
            .unwrap()
            .insert(id.to_owned(), (keys.raw_components().unwrap(), auth));
        subscription
    }

    fn status(&self, code: u16, what: Option<String>) -> poem::Response {
        if let Some(w) = what {
            self.violations.lock().unwrap().push(w);
        }
        poem::Response::builder()
            .status(poem::http::StatusCode::from_u16(code).unwrap())
            .finish()
    }

    async fn receive(&self, mut req: poem::Request) -> poem::Response {
        let id = req.uri().path().trim_start_matches("/wp/").to_owned();
        if self.gone.lock().unwrap().contains(&id) {
            return self.status(410, None);
        }
        if req.header("content-encoding") != Some("aes128gcm")
            || req
                .header("ttl")
                .and_then(|t| t.parse::<u64>().ok())
                .is_none()
            || req.header("urgency") != Some("high")
        {
            return self.status(400, Some(format!("headers {:?}", req.headers())));
        }
        // RFC 8292: `vapid t=<JWT>, k=<public key>`; the JWT's audience is our origin.
        let auth = req.header("authorization").unwrap_or("").to_owned();
        let part = |name: &str| {
            auth.trim_start_matches("vapid ")
                .split(',')
                .map(str::trim)
                .find_map(|p| p.strip_prefix(name))
                .unwrap_or("")
                .to_owned()
        };
        let (jwt, k) = (part("t="), part("k="));
        let Ok(key) = ES256PublicKey::from_bytes(&B64.decode(&k).unwrap_or_default()) else {
            return self.status(401, Some(format!("vapid key {k}")));
        };
        let options = VerificationOptions {
            allowed_audiences: Some(HashSet::from_strings(std::slice::from_ref(&self.url))),
            ..Default::default()
        };
        let claims = match key.verify_token::<NoCustomClaims>(&jwt, Some(options)) {
            Ok(c) => c,
            Err(e) => return self.status(401, Some(format!("vapid jwt: {e}"))),
        };
        if claims.subject.as_deref() != Some("mailto:ops@example.com") {
            return self.status(403, Some(format!("sub {:?}", claims.subject)));
        }
        let Some((components, secret)) = self.browsers.lock().unwrap().get(&id).cloned() else {
            return self.status(404, None);
        };
        let body = req.take_body().into_vec().await.unwrap_or_default();
        let plain = match ece::decrypt(&components, &secret, &body) {
            Ok(p) => p,
            Err(e) => return self.status(400, Some(format!("decrypt: {e}"))),
        };
        let payload: Value = serde_json::from_slice(&plain).unwrap_or_default();
        self.received.lock().unwrap().push((id, payload, k));
        self.status(201, None)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_push_is_encrypted_for_the_browser_and_signed_with_vapid() {
    let service = PushService::start().await;
    let (private, public) = pushdial_core::push::webpush::VapidKey::generate();
    let app = TestApp::spawn_tuned(move |c| {
        c.vapid_private_key = Some(private);
        c.vapid_subject = Some("mailto:ops@example.com".into());
        c.webhook_allow_subnets = "127.0.0.0/8".into();
    })
    .await;
    let client = app.client();
    let (ann, browser, browser_id) = app.agent_with_device(&client, "Ann").await;

    // The agent learns which key to subscribe with.
    let config: Value = reqwest::Client::new()
        .get(format!("{}/agent/v1/push_config", app.url))
        .bearer_auth(browser.token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(config["webpush_public_key"], public.as_str());

    // A subscription that is not one is refused at registration.
    let resp = reqwest::Client::new()
        .put(format!("{}/agent/v1/device", app.url))
        .bearer_auth(browser.token())
        .json(
            &json!({"push": {"provider": "webpush", "token": {"endpoint": "https://x.example/1"}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    register_push(&app, &browser, "webpush", service.subscribe("s1")).await;
    let call = client
        .create_call(&CreateCall::for_agent("+14155550160", &ann), None)
        .await
        .unwrap();
    call_in(&client, &call.id, "offered").await;
    eventually(
        Duration::from_secs(5),
        "the push service to receive it",
        || async { (!service.received.lock().unwrap().is_empty()).then_some(()) },
    )
    .await;
    let received = service.received.lock().unwrap().clone();
    assert_eq!(
        received.len(),
        1,
        "{:?}",
        service.violations.lock().unwrap()
    );
    let (id, payload, signer) = &received[0];
    assert_eq!(id, "s1");
    assert_eq!(signer, &public, "signed with the deployment's VAPID key");
    assert_eq!(payload["type"], "call.offer");
    assert_eq!(payload["call_id"], call.id.as_str());
    assert_eq!(
        payload.as_object().unwrap().len(),
        3,
        "nothing but type, call and expiry"
    );
    assert_eq!(browser.ack(&call.id).await.unwrap().to, "+14155550160");

    // An expired subscription (410): the channel is invalidated and the call fails over.
    service.gone.lock().unwrap().push("s1".into());
    let call = client
        .create_call(&CreateCall::for_device("+14155550161", &browser_id), None)
        .await
        .unwrap();
    let failed = call_in(&client, &call.id, "failed").await;
    assert_eq!(failed.reason.as_deref(), Some("push_rejected"));
    push_trail_becomes(
        &client,
        &call.id,
        &[(
            browser_id.clone(),
            "rejected".into(),
            "subscription_gone".into(),
        )],
    )
    .await;
    assert_eq!(
        client.get_device(&browser_id).await.unwrap().presence,
        "offline"
    );
    assert_eq!(*service.violations.lock().unwrap(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_agent_without_a_socket_is_woken_by_web_push_and_places_the_call() {
    let (private, _) = pushdial_core::push::webpush::VapidKey::generate();
    let app = TestApp::spawn_tuned(move |c| {
        c.vapid_private_key = Some(private);
        c.webhook_allow_subnets = "127.0.0.0/8".into();
    })
    .await;
    let client = app.client();
    let (ann, phone, phone_id) = app.agent_with_device(&client, "Ann").await;

    let receiver =
        pushdial_sdk::webpush::WebPushReceiver::bind("127.0.0.1:0".parse().unwrap(), None)
            .await
            .unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let opts = pushdial_sdk::agent::RunOptions {
        auto: true,
        ..Default::default()
    };
    let agent = tokio::spawn(pushdial_sdk::agent::run_push_woken(
        phone,
        opts,
        receiver,
        async move {
            let _ = stop_rx.await;
        },
    ));
    eventually(
        Duration::from_secs(5),
        "the phone reachable by push",
        || async {
            client
                .get_device(&phone_id)
                .await
                .ok()
                .filter(|d| d.presence == "push" && d.push_channel.as_deref() == Some("webpush"))
        },
    )
    .await;

    let call = client
        .create_call(&CreateCall::for_agent("+14155550170", &ann), None)
        .await
        .unwrap();
    let done = call_in(&client, &call.id, "completed").await;
    assert_eq!(done.device_id.as_deref(), Some(phone_id.as_str()));
    // The whole loop, through push alone: offered once the push service accepted it,
    // delivered by the agent's ack, then its reports.
    assert_eq!(
        event_trail(&client, &call.id).await,
        [
            "queued",
            "offered",
            "delivered",
            "accepted",
            "dialing",
            "~connected",
            "completed"
        ]
    );
    push_trail_becomes(
        &client,
        &call.id,
        &[(phone_id.clone(), "accepted".into(), String::new())],
    )
    .await;
    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(10), agent)
        .await
        .expect("the agent stops")
        .unwrap()
        .unwrap();
}
