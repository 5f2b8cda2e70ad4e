//! The agent stream: the WebSocket at `/agent/v1/stream` over which the
//! server offers calls. Owns the typed messages in both directions
//! ([`ServerMessage`], [`AgentMessage`]) and the [`Stream`] connection wrapper.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::header::AUTHORIZATION;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::error::{Error, Result};
use crate::types::{truncate, Problem};

/// How long the TCP + TLS + WebSocket handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Heartbeat interval used when the server's `hello` does not say.
pub const DEFAULT_HEARTBEAT_INTERVAL_S: u64 = 20;

fn default_heartbeat() -> u64 {
    DEFAULT_HEARTBEAT_INTERVAL_S
}

/// A message from the server on the agent stream (`{"type": ...}` JSON text
/// frames). Unknown `type`s decode as [`ServerMessage::Unknown`] so that new
/// server messages never break old agents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ServerMessage {
    /// First message after connecting.
    #[serde(rename = "hello")]
    Hello {
        /// The device the token belongs to.
        device_id: String,
        /// Send a heartbeat this often (20 when absent).
        #[serde(default = "default_heartbeat")]
        heartbeat_interval_s: u64,
    },
    /// A call is offered to this device: ack it to get the number.
    #[serde(rename = "call.offer")]
    CallOffer {
        /// The call.
        call_id: String,
        /// Do not dial after this.
        expires_at: DateTime<Utc>,
    },
    /// A previously offered call was canceled: do not dial it.
    #[serde(rename = "call.canceled")]
    CallCanceled {
        /// The call.
        call_id: String,
        /// Why, when the server says: `expired` (absent when canceled through the API).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The device was revoked: the server closes the socket next, and refuses its token
    /// from then on (pair again).
    #[serde(rename = "device.revoked")]
    DeviceRevoked,
    /// The server is going away: reconnect soon.
    #[serde(rename = "reconnect")]
    Reconnect,
    /// A message type this SDK does not know (ignored by the agent).
    #[serde(other, rename = "unknown")]
    Unknown,
}

/// A message from the agent to the server on the agent stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum AgentMessage {
    /// `{"type":"heartbeat"}`, sent every `heartbeat_interval_s`.
    #[serde(rename = "heartbeat")]
    Heartbeat,
}

/// An open agent stream. Obtain one with
/// [`AgentClient::connect_stream`](crate::AgentClient::connect_stream).
///
/// [`Stream::recv`] is cancel-safe, so it can sit in a `tokio::select!` next
/// to a heartbeat timer.
pub struct Stream {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    last_rx: Instant,
    pong_seen: bool,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("last_rx", &self.last_rx)
            .field("pong_seen", &self.pong_seen)
            .finish_non_exhaustive()
    }
}

impl Stream {
    /// Connects to the `ws://`/`wss://` URL with `Authorization: Bearer <token>`.
    pub(crate) async fn connect(url: &str, token: &str) -> Result<Stream> {
        let mut request = url.into_client_request()?;
        let mut auth = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| Error::Config("token contains characters invalid in a header".into()))?;
        auth.set_sensitive(true);
        request.headers_mut().insert(AUTHORIZATION, auth);

        let connected =
            tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(request))
                .await
                .map_err(|_| Error::Timeout("connecting the agent stream"))?;
        match connected {
            Ok((ws, _response)) => Ok(Stream {
                ws,
                last_rx: Instant::now(),
                pong_seen: false,
            }),
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                let status = resp.status().as_u16();
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
                let body = resp.body().as_deref().unwrap_or_default();
                let problem = Problem::from_response(status, request_id.as_deref(), body);
                Err(Error::Api {
                    status,
                    problem: Box::new(problem),
                    retry_after,
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The next server message. `None` once the connection is closed.
    ///
    /// Control frames are handled transparently (pings are answered by the
    /// WebSocket layer); binary frames are ignored. A text frame that is not a
    /// valid message yields `Some(Err(Error::Decode { .. }))` and the stream
    /// stays usable.
    pub async fn recv(&mut self) -> Option<Result<ServerMessage>> {
        loop {
            let msg = match self.ws.next().await? {
                Ok(msg) => msg,
                Err(e) => return Some(Err(e.into())),
            };
            self.last_rx = Instant::now();
            match msg {
                Message::Text(text) => {
                    return Some(serde_json::from_str(&text).map_err(|source| Error::Decode {
                        source,
                        body: truncate(&text, 2000),
                    }));
                }
                Message::Pong(_) => self.pong_seen = true,
                Message::Close(frame) => {
                    tracing::debug!(?frame, "agent stream closed by server");
                    return None;
                }
                Message::Binary(_) | Message::Ping(_) | Message::Frame(_) => {}
            }
        }
    }

    /// Sends a message to the server.
    pub async fn send(&mut self, msg: &AgentMessage) -> Result<()> {
        let text = serde_json::to_string(msg).map_err(|source| Error::Decode {
            source,
            body: String::new(),
        })?;
        self.ws.send(Message::Text(text)).await?;
        Ok(())
    }

    /// Sends `{"type":"heartbeat"}`.
    pub async fn send_heartbeat(&mut self) -> Result<()> {
        self.send(&AgentMessage::Heartbeat).await
    }

    /// Sends a WebSocket ping frame (the server's pong shows in
    /// [`Stream::pong_seen`] / [`Stream::last_activity`]).
    pub async fn ping(&mut self) -> Result<()> {
        self.ws.send(Message::Ping(Vec::new())).await?;
        Ok(())
    }

    /// When the last frame (of any kind) arrived.
    pub fn last_activity(&self) -> Instant {
        self.last_rx
    }

    /// Whether the server ever answered one of our pings on this connection.
    pub fn pong_seen(&self) -> bool {
        self.pong_seen
    }

    /// Closes the connection politely.
    pub async fn close(&mut self) -> Result<()> {
        self.ws.close(None).await?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn parse(s: &str) -> ServerMessage {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn decodes_every_server_message() {
        assert_eq!(
            parse(r#"{"type":"hello","device_id":"dev_1","heartbeat_interval_s":15}"#),
            ServerMessage::Hello {
                device_id: "dev_1".into(),
                heartbeat_interval_s: 15
            }
        );
        assert_eq!(
            parse(r#"{"type":"hello","device_id":"dev_1"}"#),
            ServerMessage::Hello {
                device_id: "dev_1".into(),
                heartbeat_interval_s: DEFAULT_HEARTBEAT_INTERVAL_S
            }
        );
        let offer = parse(
            r#"{"type":"call.offer","call_id":"call_1","expires_at":"2030-01-02T03:04:05Z","extra":1}"#,
        );
        match offer {
            ServerMessage::CallOffer {
                call_id,
                expires_at,
            } => {
                assert_eq!(call_id, "call_1");
                assert_eq!(expires_at.to_rfc3339(), "2030-01-02T03:04:05+00:00");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            parse(r#"{"type":"call.canceled","call_id":"call_1"}"#),
            ServerMessage::CallCanceled {
                call_id: "call_1".into(),
                reason: None
            }
        );
        assert_eq!(
            parse(r#"{"type":"call.canceled","call_id":"call_1","reason":"expired"}"#),
            ServerMessage::CallCanceled {
                call_id: "call_1".into(),
                reason: Some("expired".into())
            }
        );
        assert_eq!(
            parse(r#"{"type":"device.revoked"}"#),
            ServerMessage::DeviceRevoked
        );
        assert_eq!(parse(r#"{"type":"reconnect"}"#), ServerMessage::Reconnect);
    }

    #[test]
    fn unknown_types_do_not_break_old_agents() {
        assert_eq!(
            parse(r#"{"type":"device.renamed","name":"x"}"#),
            ServerMessage::Unknown
        );
        assert_eq!(parse(r#"{"type":"future"}"#), ServerMessage::Unknown);
    }

    #[test]
    fn malformed_known_messages_are_errors() {
        assert!(serde_json::from_str::<ServerMessage>(r#"{"type":"call.offer"}"#).is_err());
        assert!(serde_json::from_str::<ServerMessage>(r#"{"call_id":"x"}"#).is_err());
    }

    #[test]
    fn heartbeat_wire_form() {
        assert_eq!(
            serde_json::to_string(&AgentMessage::Heartbeat).unwrap(),
            r#"{"type":"heartbeat"}"#
        );
    }
}
