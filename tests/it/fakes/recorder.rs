//! A loopback service that records the JSON bodies POSTed to it and answers a fixed status.

use std::sync::{Arc, Mutex};

use serde_json::Value;

/// A loopback HTTP service that records the JSON bodies POSTed to it, in order, and answers
/// `status` at once: a push service, or a webhook receiver that need not check signatures.
pub async fn recorder(status: u16) -> (String, Arc<Mutex<Vec<Value>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/in", listener.local_addr().unwrap());
    let record = seen.clone();
    let app = poem::Route::new().at(
        "/in",
        poem::post(poem::endpoint::make(move |req: poem::Request| {
            let record = record.clone();
            async move {
                let body: Value = req.into_body().into_json().await.unwrap_or_default();
                record.lock().unwrap().push(body);
                poem::http::StatusCode::from_u16(status).unwrap()
            }
        })),
    );
    tokio::spawn(async move {
        let acceptor = poem::listener::TcpAcceptor::from_tokio(listener).unwrap();
        poem::Server::new_with_acceptor(acceptor).run(app).await
    });
    (url, seen)
}
