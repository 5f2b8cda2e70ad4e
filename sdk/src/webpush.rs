//! A Web Push endpoint of the agent's own, for running without a live socket: the agent
//! plays both the browser (it holds the subscription's P-256 key pair and auth secret, and
//! decrypts each message, RFC 8291) and the push service (it receives the POST, RFC 8030).
//! pushdial signs and encrypts the wake-up exactly as for a browser; the agent registers the
//! subscription with `PUT /agent/v1/device {"push": {"provider": "webpush", …}}`.
//!
//! The server must be allowed to reach the endpoint: on a private address that means
//! `PUSHDIAL_WEBHOOK_ALLOW_SUBNETS` (the egress policy of webhooks applies to Web Push too).

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, Response, StatusCode};
use pushdial_protocol::ToPhone;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::{Error, Result};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;
/// Largest message accepted (RFC 8030 push services take 4 KiB payloads).
const MAX_BODY: usize = 8 * 1024;

/// An offer received by push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedOffer {
    pub call_id: String,
    pub expires_at: DateTime<Utc>,
}

/// The listening endpoint and the offers it decrypted.
pub struct WebPushReceiver {
    subscription: Value,
    local_addr: SocketAddr,
    offers: mpsc::Receiver<PushedOffer>,
    server: tokio::task::JoinHandle<()>,
}

struct Keys {
    components: ece::EcKeyComponents,
    auth: [u8; 16],
}

impl WebPushReceiver {
    /// Listens on `addr`; the subscription's endpoint is `{public_url}/push` (default
    /// `http://{local address}`).
    pub async fn bind(addr: SocketAddr, public_url: Option<&str>) -> Result<WebPushReceiver> {
        let (pair, auth) = ece::generate_keypair_and_auth_secret()
            .map_err(|e| Error::Config(format!("cannot make push keys: {e}")))?;
        let keys = Arc::new(Keys {
            components: pair
                .raw_components()
                .map_err(|e| Error::Config(format!("cannot export push keys: {e}")))?,
            auth,
        });
        let public = pair
            .pub_as_raw()
            .map_err(|e| Error::Config(format!("cannot export push keys: {e}")))?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Error::Config(format!("cannot listen on {addr}: {e}")))?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| Error::Config(e.to_string()))?;
        let base = public_url
            .map(|u| u.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| format!("http://{local_addr}"));
        let subscription = json!({
            "endpoint": format!("{base}/push"),
            "keys": {"p256dh": B64.encode(public), "auth": B64.encode(auth)},
        });
        let (tx, offers) = mpsc::channel(64);
        let server = tokio::spawn(serve(listener, keys, tx));
        Ok(WebPushReceiver {
            subscription,
            local_addr,
            offers,
            server,
        })
    }

    /// The subscription to register (`PushSubscription.toJSON()` form).
    pub fn subscription(&self) -> &Value {
        &self.subscription
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The next offer pushed; `None` once the listener stopped.
    pub async fn next(&mut self) -> Option<PushedOffer> {
        self.offers.recv().await
    }
}

impl Drop for WebPushReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn serve(listener: tokio::net::TcpListener, keys: Arc<Keys>, tx: mpsc::Sender<PushedOffer>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "push endpoint: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let (keys, tx) = (keys.clone(), tx.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let (keys, tx) = (keys.clone(), tx.clone());
                async move { Ok::<_, std::convert::Infallible>(receive(req, &keys, &tx).await) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await
            {
                debug!(%peer, error = %e, "push endpoint connection ended");
            }
        });
    }
}

fn answer(status: StatusCode) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = status;
    r
}

/// One message: decrypt it, hand the offer on, answer 201 as a push service does.
async fn receive(
    req: Request<hyper::body::Incoming>,
    keys: &Keys,
    tx: &mpsc::Sender<PushedOffer>,
) -> Response<Full<Bytes>> {
    if req.method() != Method::POST || req.uri().path() != "/push" {
        return answer(StatusCode::NOT_FOUND);
    }
    if req
        .headers()
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
        != Some("aes128gcm")
    {
        return answer(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
    let body = match http_body_util::Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => return answer(StatusCode::PAYLOAD_TOO_LARGE),
    };
    let plain = match ece::decrypt(&keys.components, &keys.auth, &body) {
        Ok(p) => p,
        Err(e) => {
            warn!(error = %e, "push message not decryptable with our keys");
            return answer(StatusCode::BAD_REQUEST);
        }
    };
    // The pushed message is the stream's offer (`ToPhone::CallOffer`), encrypted.
    let offer: Value = serde_json::from_slice(&plain).unwrap_or_default();
    match serde_json::from_value::<ToPhone>(offer.clone()) {
        Ok(ToPhone::CallOffer {
            call_id,
            expires_at,
        }) if !call_id.is_empty() => {
            let pushed = PushedOffer {
                call_id,
                expires_at,
            };
            if tx.send(pushed).await.is_err() {
                return answer(StatusCode::SERVICE_UNAVAILABLE);
            }
            answer(StatusCode::CREATED)
        }
        _ => {
            debug!(payload = %offer, "ignoring a push that is not an offer");
            answer(StatusCode::CREATED)
        }
    }
}
