//! Simulated phone agents: a socket held with heartbeats, and the answering agent's
//! requests, retried as the reference agent retries them.

use std::time::Duration;

use anyhow::Result;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

pub(crate) async fn connect(base: &str, token: &str) -> Result<Ws> {
    let url = format!("{}/agent/v1/stream", base.replace("http://", "ws://"));
    let mut req =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)?;
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    let (ws, _) = tokio_tungstenite::connect_async(req).await?;
    Ok(ws)
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Keeps a socket alive with heartbeats, calling `on_offer` with each offered call id.
pub(crate) async fn hold_socket(
    mut ws: Ws,
    on_offer: impl Fn(String) + Send,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut every = Duration::from_secs(20);
    let mut tick = tokio::time::interval(every);
    let mut stop = stop;
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = tick.tick() => {
                if ws.send(Message::Text(r#"{"type":"heartbeat"}"#.into())).await.is_err() {
                    break;
                }
            }
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).unwrap_or_default();
                    match v["type"].as_str() {
                        Some("call.offer") => {
                            if let Some(id) = v["call_id"].as_str() {
                                on_offer(id.to_owned());
                            }
                        }
                        Some("hello") => {
                            if let Some(s) = v["heartbeat_interval_s"].as_u64() {
                                every = Duration::from_secs(s.max(1));
                                tick = tokio::time::interval(every);
                                tick.tick().await;
                            }
                        }
                        _ => {}
                    }
                }
                Some(Ok(_)) => {}
                _ => break,
            }
        }
    }
    let _ = ws.close(None).await;
}

/// What an answering agent does with an offer: ack, then report `completed`.
pub(crate) fn answer_offer(
    http: reqwest::Client,
    base: String,
    token: String,
) -> impl Fn(String) + Send {
    move |id| {
        let (http, base, token) = (http.clone(), base.clone(), token.clone());
        tokio::spawn(async move {
            let ack = format!("{base}/agent/v1/calls/{id}/ack");
            if agent_post(&http, &ack, &token, None).await {
                let report = format!("{base}/agent/v1/calls/{id}/events");
                let done = json!({"status": "completed", "duration_s": 1});
                agent_post(&http, &report, &token, Some(&done)).await;
            }
        });
    }
}

/// One POST of a phone agent, retried as the reference agent does when the server is
/// unreachable, overloaded (503) or limiting (429): after `Retry-After`, else a growing
/// pause, each spread by a random half either way (agents refused together must not all
/// come back together), for up to about a minute. `true` once it succeeded.
async fn agent_post(http: &reqwest::Client, url: &str, token: &str, body: Option<&Value>) -> bool {
    let mut pause = Duration::from_millis(100);
    for _ in 0..12 {
        let mut req = http.post(url).bearer_auth(token);
        if let Some(body) = body {
            req = req.json(body);
        }
        match req.send().await {
            Ok(r) if r.status().is_success() => return true,
            Ok(r) if r.status().as_u16() != 429 && !r.status().is_server_error() => return false,
            Ok(r) => {
                let after = r
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                    .map(Duration::from_secs);
                tokio::time::sleep(jitter(after.unwrap_or(pause))).await;
            }
            Err(_) => tokio::time::sleep(jitter(pause)).await,
        }
        pause = (pause * 2).min(Duration::from_secs(5));
    }
    false
}

/// `d` spread uniformly over [d/2, 3d/2).
fn jitter(d: Duration) -> Duration {
    d.mul_f64(0.5 + rand::random::<f64>())
}
