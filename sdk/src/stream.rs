//! The agent stream: the WebSocket at `/agent/v1/stream` over which the
//! server offers calls. Owns the [`Stream`] connection wrapper; the messages in both
//! directions ([`ServerMessage`], [`AgentMessage`]) are the `pushdial-protocol` crate's,
//! shared with the server that writes them.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
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

/// A message from the server on the agent stream: the protocol's [`ToPhone`], under the
/// SDK's name. Unknown `type`s decode as [`ServerMessage::Unknown`] and unknown cancel
/// reasons as [`CancelReason::Unknown`](pushdial_protocol::CancelReason::Unknown), so
/// that new server messages never break old agents.
pub use pushdial_protocol::ToPhone as ServerMessage;

/// A message from the agent to the server on the agent stream: the protocol's
/// [`FromPhone`](pushdial_protocol::FromPhone), under the SDK's name.
pub use pushdial_protocol::FromPhone as AgentMessage;

/// Heartbeat interval used when the server's `hello` does not say.
pub use pushdial_protocol::DEFAULT_HEARTBEAT_INTERVAL_S;

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
    use pushdial_protocol::CancelReason;

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
                reason: Some(CancelReason::Expired)
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
