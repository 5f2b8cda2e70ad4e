//! An OTLP/HTTP trace collector on loopback.

use std::sync::{Arc, Mutex};

use serde_json::Value;

/// A loopback OTLP/HTTP collector that keeps every body posted to `/v1/traces`.
pub async fn collector() -> (String, Arc<Mutex<Vec<Value>>>) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let kept = received.clone();
    let app = poem::Route::new()
        .at(
            "/push",
            poem::post(poem::endpoint::make(|_req: poem::Request| async {
                poem::http::StatusCode::OK
            })),
        )
        .at(
            "/v1/traces",
            poem::post(poem::endpoint::make(move |req: poem::Request| {
                let kept = kept.clone();
                async move {
                    let json = req
                        .header("content-type")
                        .is_some_and(|t| t.starts_with("application/json"));
                    let body = req.into_body().into_bytes().await.unwrap_or_default();
                    match serde_json::from_slice::<Value>(&body) {
                        Ok(v) if json => {
                            kept.lock().unwrap().push(v);
                            poem::Response::builder()
                                .content_type("application/json")
                                .body("{}")
                        }
                        _ => poem::Response::builder()
                            .status(poem::http::StatusCode::BAD_REQUEST)
                            .finish(),
                    }
                }
            })),
        );
    tokio::spawn(async move {
        let acceptor = poem::listener::TcpAcceptor::from_tokio(listener).unwrap();
        poem::Server::new_with_acceptor(acceptor).run(app).await
    });
    (url, received)
}
