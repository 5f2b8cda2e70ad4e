//! A Web Push service on loopback, checking the VAPID signature and decrypting each message
//! as the subscribed browser would.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use jwt_simple::prelude::*;
use serde_json::{json, Value};

use super::fcm::B64;

/// A Web Push service: checks the VAPID signature against the key it names, and decrypts
/// each message with the subscription's private key, as a browser would.
#[derive(Default)]
pub struct PushService {
    pub url: String,
    /// Subscriptions by path: (private key components, auth secret).
    pub browsers: Mutex<HashMap<String, (ece::EcKeyComponents, [u8; 16])>>,
    /// Decrypted payloads with the VAPID public key that signed them.
    pub received: Mutex<Vec<(String, Value, String)>>,
    pub gone: Mutex<Vec<String>>,
    pub violations: Mutex<Vec<String>>,
}

impl PushService {
    pub async fn start() -> Arc<PushService> {
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
    pub fn subscribe(&self, id: &str) -> Value {
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

    pub fn status(&self, code: u16, what: Option<String>) -> poem::Response {
        if let Some(w) = what {
            self.violations.lock().unwrap().push(w);
        }
        poem::Response::builder()
            .status(poem::http::StatusCode::from_u16(code).unwrap())
            .finish()
    }

    pub async fn receive(&self, mut req: poem::Request) -> poem::Response {
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
