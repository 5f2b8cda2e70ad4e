//! HTTP clients: [`Client`] for the public API (secret key `pd_sk_…`) and
//! [`AgentClient`] for the agent API (device token `pd_dev_…`), both built on
//! one private transport that joins paths, authenticates, and turns every
//! non-2xx answer into [`Error::Api`].

use std::fmt;
use std::time::Duration;

use reqwest::header::{HeaderValue, AUTHORIZATION};
use reqwest::{Method, RequestBuilder, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::stream::Stream;
use crate::types::{
    AckResponse, Agent, Call, CallEvent, CreateAgent, CreateCall, CreatePairingCode, Device,
    HeartbeatResponse, List, ListCalls, ListParams, PairRequest, PairResponse, PairingCode,
    Problem, Report, UpdateDevice,
};

/// Whole-request timeout of the default HTTP client.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// TCP/TLS connect timeout of the default HTTP client.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of an undecodable body [`Error::Decode`] keeps.
const MAX_BODY_IN_ERROR: usize = 2000;

/// Builds the HTTP client used when the caller does not supply one.
fn default_http_client() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .user_agent(concat!("pushdial-sdk/", env!("CARGO_PKG_VERSION")))
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .build()?)
}

/// Parses and checks a server base URL (`http(s)://host[:port][/prefix]`).
pub(crate) fn parse_base_url(base_url: &str) -> Result<Url> {
    let mut url = Url::parse(base_url.trim())
        .map_err(|e| Error::Config(format!("invalid base URL {base_url:?}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(Error::Config(format!(
            "base URL {base_url:?} must start with http:// or https://"
        )));
    }
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

/// Appends path segments (percent-encoded) to a base URL, keeping any prefix.
pub(crate) fn join(base: &Url, segments: &[&str]) -> Result<Url> {
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|()| Error::Config(format!("base URL {base} cannot have a path")))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

/// `Authorization: Bearer <token>` as a sensitive header value.
fn bearer(token: &str) -> Result<HeaderValue> {
    let mut v = HeaderValue::from_str(&format!("Bearer {}", token.trim()))
        .map_err(|_| Error::Config("token contains characters invalid in a header".into()))?;
    v.set_sensitive(true);
    Ok(v)
}

/// Shared plumbing of both clients.
#[derive(Clone)]
struct Transport {
    http: reqwest::Client,
    base: Url,
    auth: Option<HeaderValue>,
}

impl Transport {
    fn new(base_url: &str, token: Option<&str>, http: Option<reqwest::Client>) -> Result<Self> {
        let base = parse_base_url(base_url)?;
        let auth = token.map(bearer).transpose()?;
        let http = match http {
            Some(h) => h,
            None => default_http_client()?,
        };
        Ok(Transport { http, base, auth })
    }

    fn request(&self, method: Method, segments: &[&str]) -> Result<RequestBuilder> {
        let url = join(&self.base, segments)?;
        let mut rb = self.http.request(method, url);
        if let Some(auth) = &self.auth {
            rb = rb.header(AUTHORIZATION, auth.clone());
        }
        Ok(rb)
    }

    async fn send<T: DeserializeOwned>(&self, rb: RequestBuilder) -> Result<T> {
        let resp = rb.send().await?;
        let status = resp.status();
        let request_id = resp
            .headers()
            .get("request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let retry_after = crate::error::retry_after(
            resp.headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
        );
        let body = resp.bytes().await?;
        if status.is_success() {
            serde_json::from_slice(&body).map_err(|source| Error::Decode {
                source,
                body: crate::types::truncate(&String::from_utf8_lossy(&body), MAX_BODY_IN_ERROR),
            })
        } else {
            let problem = Problem::from_response(status.as_u16(), request_id.as_deref(), &body);
            Err(Error::Api {
                status: status.as_u16(),
                problem: Box::new(problem),
                retry_after,
            })
        }
    }

    async fn get<T: DeserializeOwned>(&self, segments: &[&str]) -> Result<T> {
        self.send(self.request(Method::GET, segments)?).await
    }

    async fn get_query<T: DeserializeOwned, Q: Serialize + ?Sized>(
        &self,
        segments: &[&str],
        query: &Q,
    ) -> Result<T> {
        self.send(self.request(Method::GET, segments)?.query(query))
            .await
    }

    async fn post<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        segments: &[&str],
        body: Option<&B>,
    ) -> Result<T> {
        let mut rb = self.request(Method::POST, segments)?;
        if let Some(body) = body {
            rb = rb.json(body);
        }
        self.send(rb).await
    }
}

/// Typed client of the public API (`/v1/...`), authenticated with a secret
/// key. Cheap to clone (shares the connection pool).
#[derive(Clone)]
pub struct Client {
    t: Transport,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.t.base.as_str())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for the server at `base_url` (e.g. `http://127.0.0.1:8080`,
    /// a path prefix is kept) using the secret key `pd_sk_…`.
    pub fn new(base_url: &str, secret_key: &str) -> Result<Client> {
        Ok(Client {
            t: Transport::new(base_url, Some(secret_key), None)?,
        })
    }

    /// Like [`Client::new`] with a caller-configured `reqwest::Client`
    /// (timeouts, proxies, ...).
    pub fn with_http_client(
        base_url: &str,
        secret_key: &str,
        http: reqwest::Client,
    ) -> Result<Client> {
        Ok(Client {
            t: Transport::new(base_url, Some(secret_key), Some(http))?,
        })
    }

    /// The server base URL.
    pub fn base_url(&self) -> &Url {
        &self.t.base
    }

    /// `POST /v1/agents`.
    pub async fn create_agent(&self, name: &str, email: Option<&str>) -> Result<Agent> {
        let body = CreateAgent {
            name: name.to_owned(),
            email: email.map(str::to_owned),
        };
        self.t.post(&["v1", "agents"], Some(&body)).await
    }

    /// `GET /v1/agents` (first page, server default size).
    pub async fn list_agents(&self) -> Result<List<Agent>> {
        self.list_agents_page(&ListParams::default()).await
    }

    /// `GET /v1/agents` with pagination.
    pub async fn list_agents_page(&self, page: &ListParams) -> Result<List<Agent>> {
        self.t.get_query(&["v1", "agents"], page).await
    }

    /// `GET /v1/agents/{agent_id}`.
    pub async fn get_agent(&self, id: &str) -> Result<Agent> {
        self.t.get(&["v1", "agents", id]).await
    }

    /// `POST /v1/pairing_codes`.
    pub async fn create_pairing_code(&self, agent_id: &str) -> Result<PairingCode> {
        let body = CreatePairingCode {
            agent_id: agent_id.to_owned(),
        };
        self.t.post(&["v1", "pairing_codes"], Some(&body)).await
    }

    /// `GET /v1/devices[?agent_id=…]` (first page).
    pub async fn list_devices(&self, agent_id: Option<&str>) -> Result<List<Device>> {
        self.list_devices_page(agent_id, &ListParams::default())
            .await
    }

    /// `GET /v1/devices[?agent_id=…]` with pagination.
    pub async fn list_devices_page(
        &self,
        agent_id: Option<&str>,
        page: &ListParams,
    ) -> Result<List<Device>> {
        #[derive(Serialize)]
        struct Query<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            agent_id: Option<&'a str>,
            #[serde(flatten)]
            page: &'a ListParams,
        }
        self.t
            .get_query(&["v1", "devices"], &Query { agent_id, page })
            .await
    }

    /// `GET /v1/devices/{device_id}`.
    pub async fn get_device(&self, id: &str) -> Result<Device> {
        self.t.get(&["v1", "devices", id]).await
    }

    /// `DELETE /v1/devices/{device_id}`: revokes the device (its token stops
    /// working); returns the revoked device.
    pub async fn revoke_device(&self, id: &str) -> Result<Device> {
        self.t
            .send(self.t.request(Method::DELETE, &["v1", "devices", id])?)
            .await
    }

    /// `POST /v1/calls`, with an optional `Idempotency-Key` header.
    pub async fn create_call(
        &self,
        call: &CreateCall,
        idempotency_key: Option<&str>,
    ) -> Result<Call> {
        let mut rb = self.t.request(Method::POST, &["v1", "calls"])?.json(call);
        if let Some(key) = idempotency_key {
            rb = rb.header("Idempotency-Key", key);
        }
        self.t.send(rb).await
    }

    /// `GET /v1/calls/{call_id}`.
    pub async fn get_call(&self, id: &str) -> Result<Call> {
        self.t.get(&["v1", "calls", id]).await
    }

    /// `GET /v1/calls?status=…&agent_id=…&limit=…&starting_after=…&ending_before=…`.
    pub async fn list_calls(&self, query: &ListCalls) -> Result<List<Call>> {
        self.t.get_query(&["v1", "calls"], query).await
    }

    /// `GET /v1/calls/{call_id}/events` (oldest first).
    pub async fn call_events(&self, call_id: &str) -> Result<List<CallEvent>> {
        self.t.get(&["v1", "calls", call_id, "events"]).await
    }

    /// `POST /v1/calls/{call_id}/cancel` (409 `call_not_cancelable` once
    /// dialing or terminal).
    pub async fn cancel_call(&self, id: &str) -> Result<Call> {
        self.t
            .post::<_, ()>(&["v1", "calls", id, "cancel"], None)
            .await
    }
}

/// Typed client of the agent API (`/agent/v1/...`), authenticated with a
/// device token: what a phone (or the reference CLI agent) uses. Cheap to clone.
#[derive(Clone)]
pub struct AgentClient {
    t: Transport,
    token: String,
}

impl fmt::Debug for AgentClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentClient")
            .field("base_url", &self.t.base.as_str())
            .finish_non_exhaustive()
    }
}

impl AgentClient {
    /// A client for the server at `base_url` using the device token `pd_dev_…`.
    pub fn new(base_url: &str, token: &str) -> Result<AgentClient> {
        Ok(AgentClient {
            t: Transport::new(base_url, Some(token), None)?,
            token: token.trim().to_owned(),
        })
    }

    /// Like [`AgentClient::new`] with a caller-configured `reqwest::Client`.
    pub fn with_http_client(
        base_url: &str,
        token: &str,
        http: reqwest::Client,
    ) -> Result<AgentClient> {
        Ok(AgentClient {
            t: Transport::new(base_url, Some(token), Some(http))?,
            token: token.trim().to_owned(),
        })
    }

    /// `POST /agent/v1/pair` (no auth): redeems a pairing code — the typed code,
    /// the QR code's token (`pd_pair_…`), or a `pushdial://pair?…` link carrying
    /// either — and returns a client authenticated with the new device token, plus
    /// the raw answer (device id, token, agent id) to persist.
    pub async fn pair(
        base_url: &str,
        code: &str,
        name: &str,
        platform: &str,
    ) -> Result<(AgentClient, PairResponse)> {
        let anon = Transport::new(base_url, None, None)?;
        let secret = pairing_secret(code);
        let (code, token) = if secret.starts_with("pd_pair_") {
            (None, Some(secret))
        } else {
            (Some(secret), None)
        };
        let body = PairRequest {
            code,
            token,
            name: name.to_owned(),
            platform: platform.to_owned(),
        };
        let resp: PairResponse = anon.post(&["agent", "v1", "pair"], Some(&body)).await?;
        let client = AgentClient {
            t: Transport {
                auth: Some(bearer(&resp.token)?),
                ..anon
            },
            token: resp.token.clone(),
        };
        Ok((client, resp))
    }

    /// The server base URL.
    pub fn base_url(&self) -> &Url {
        &self.t.base
    }

    /// The device token (secret).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// `PUT /agent/v1/device`: updates this device's push settings,
    /// version, capabilities, auto-dial flag.
    pub async fn update_device(&self, update: &UpdateDevice) -> Result<Device> {
        let rb = self
            .t
            .request(Method::PUT, &["agent", "v1", "device"])?
            .json(update);
        self.t.send(rb).await
    }

    /// `PUT /agent/v1/device` with `{"push": {provider, token}}`: registers how the server
    /// wakes this device without a live socket (`fcm`, `apns`, `webpush`; for Web Push the
    /// token is the subscription object).
    pub async fn register_push(&self, provider: &str, token: serde_json::Value) -> Result<Device> {
        let body = serde_json::json!({ "push": { "provider": provider, "token": token } });
        let rb = self
            .t
            .request(Method::PUT, &["agent", "v1", "device"])?
            .json(&body);
        self.t.send(rb).await
    }

    /// `POST /agent/v1/heartbeat`: marks the device as seen.
    pub async fn heartbeat(&self) -> Result<HeartbeatResponse> {
        self.t
            .post::<_, ()>(&["agent", "v1", "heartbeat"], None)
            .await
    }

    /// `POST /agent/v1/calls/{call_id}/ack`: takes an offer and gets the
    /// number. 409 `call_expired` / `call_not_active` when it is too late.
    pub async fn ack(&self, call_id: &str) -> Result<AckResponse> {
        self.t
            .post::<_, ()>(&["agent", "v1", "calls", call_id, "ack"], None)
            .await
    }

    /// `POST /agent/v1/calls/{call_id}/events`: reports progress. Repeating
    /// the current status is idempotent; anything after a terminal state is
    /// 409 `invalid_transition`.
    pub async fn report(&self, call_id: &str, report: &Report) -> Result<Call> {
        self.t
            .post(&["agent", "v1", "calls", call_id, "events"], Some(report))
            .await
    }

    /// Opens the agent stream: a WebSocket to `/agent/v1/stream` (`ws://` for
    /// an `http://` base URL, `wss://` for `https://`) with the device token.
    /// A refused handshake (e.g. 401 for a revoked device) is [`Error::Api`].
    pub async fn connect_stream(&self) -> Result<Stream> {
        let mut url = join(&self.t.base, &["agent", "v1", "stream"])?;
        let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
        url.set_scheme(scheme)
            .map_err(|()| Error::Config(format!("cannot derive a WebSocket URL from {url}")))?;
        Stream::connect(url.as_str(), &self.token).await
    }
}

/// The secret to pair with from what the user gave: a `pushdial://pair?…` (or
/// `https://…/agent/?…`) link's `token` or `code`, else the text itself.
fn pairing_secret(input: &str) -> String {
    let input = input.trim();
    if let Ok(url) = reqwest::Url::parse(input) {
        let pick = |name: &str| {
            url.query_pairs()
                .find(|(k, v)| k == name && !v.is_empty())
                .map(|(_, v)| v.trim().to_owned())
        };
        if let Some(secret) = pick("token").or_else(|| pick("code")) {
            return secret;
        }
    }
    input.to_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn joins_paths_under_any_prefix_and_encodes_ids() {
        let base = parse_base_url("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            join(&base, &["v1", "calls", "call_1", "events"])
                .unwrap()
                .as_str(),
            "http://127.0.0.1:8080/v1/calls/call_1/events"
        );
        let base = parse_base_url("https://h.example/pd/?x=1#f").unwrap();
        assert_eq!(
            join(&base, &["v1", "agents", "a/b c"]).unwrap().as_str(),
            "https://h.example/pd/v1/agents/a%2Fb%20c"
        );
        let base = parse_base_url("https://h.example/pd").unwrap();
        assert_eq!(
            join(&base, &["v1"]).unwrap().as_str(),
            "https://h.example/pd/v1"
        );
    }

    #[test]
    fn rejects_bad_base_urls_and_tokens() {
        assert!(matches!(Client::new("ftp://x", "k"), Err(Error::Config(_))));
        let token = format!("pd_pair_{}", "ab".repeat(32));
        assert_eq!(
            pairing_secret(&format!(
                "pushdial://pair?server=https%3A%2F%2Fx&token={token}"
            )),
            token
        );
        assert_eq!(
            pairing_secret("pushdial://pair?code=K7Q2-9XMD"),
            "K7Q2-9XMD"
        );
        assert_eq!(pairing_secret(" K7Q2-9XMD "), "K7Q2-9XMD");
        assert!(matches!(
            Client::new("not a url", "k"),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            AgentClient::new("http://x", "bad\ntoken"),
            Err(Error::Config(_))
        ));
        let c = AgentClient::new("http://x", "pd_dev_secret").unwrap();
        assert!(!format!("{c:?}").contains("pd_dev_secret"));
    }
}
