//! A push service that hangs on its first request: a worker killed or stalled mid-send.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A push service whose first request never gets an answer (the worker sending it hangs
/// there); later requests are accepted. Returns its URL and the number of requests seen.
pub async fn push_service_that_hangs_once() -> (String, Arc<AtomicUsize>) {
    let seen = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/push", listener.local_addr().unwrap());
    let counter = seen.clone();
    let app = poem::Route::new().at(
        "/push",
        poem::post(poem::endpoint::make(move |_req: poem::Request| {
            let counter = counter.clone();
            async move {
                if counter.fetch_add(1, Ordering::SeqCst) == 0 {
                    std::future::pending::<()>().await;
                }
                poem::http::StatusCode::OK
            }
        })),
    );
    tokio::spawn(async move {
        let acceptor = poem::listener::TcpAcceptor::from_tokio(listener).unwrap();
        poem::Server::new_with_acceptor(acceptor).run(app).await
    });
    (url, seen)
}
