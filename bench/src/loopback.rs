//! The servers on loopback that pushdial talks to during a run: a webhook receiver, a push
//! service, and a tarpit that never answers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Result;
use serde_json::Value;

/// What the loopback webhook receiver saw: arrival time per event id.
#[derive(Default)]
pub(crate) struct Hooks {
    pub(crate) arrived: Mutex<HashMap<String, Instant>>,
}

pub(crate) async fn start_receiver(hooks: Arc<Hooks>, port: u16) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let app = poem::Route::new().at(
        "/hook",
        poem::post(poem::endpoint::make(move |req: poem::Request| {
            let hooks = hooks.clone();
            async move {
                if let Some(id) = req.header("webhook-id") {
                    hooks
                        .arrived
                        .lock()
                        .unwrap()
                        .insert(id.to_owned(), Instant::now());
                }
                poem::http::StatusCode::NO_CONTENT
            }
        })),
    );
    tokio::spawn(async move {
        let acceptor = poem::listener::TcpAcceptor::from_tokio(listener).unwrap();
        let _ = poem::Server::new_with_acceptor(acceptor).run(app).await;
    });
    Ok(())
}

/// The loopback push service: accepts every wake-up, noting when each call's came.
pub(crate) async fn start_push(
    pushed: Arc<Mutex<HashMap<String, Instant>>>,
    port: u16,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let app = poem::Route::new().at(
        "/push",
        poem::post(poem::endpoint::make(move |req: poem::Request| {
            let pushed = pushed.clone();
            async move {
                let at = Instant::now();
                let body: Value = req.into_body().into_json().await.unwrap_or_default();
                if let Some(call) = body["payload"]["call_id"].as_str() {
                    pushed.lock().unwrap().insert(call.to_owned(), at);
                }
                poem::http::StatusCode::OK
            }
        })),
    );
    tokio::spawn(async move {
        let acceptor = poem::listener::TcpAcceptor::from_tokio(listener).unwrap();
        let _ = poem::Server::new_with_acceptor(acceptor).run(app).await;
    });
    Ok(())
}

/// A receiver that accepts connections and never answers: every delivery to it holds its
/// worker slot until the delivery timeout.
pub(crate) async fn tarpit() -> Result<u16> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    Ok(port)
}
