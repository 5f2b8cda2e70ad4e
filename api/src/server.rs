//! The HTTP/1.1 server loop under poem's endpoints, with the bounds a public listener needs.
//!
//! poem's own `Server` sets no deadline on a request's head: a client sending its headers one
//! byte a second, or nothing at all, kept its connection for as long as it liked (and an idle
//! kept-alive connection stayed open forever). Here hyper's header-read timer runs from the
//! connection's opening and again from the end of every response, so a request head must be
//! complete within `header_timeout`, and a kept-alive connection with no next request is
//! closed after the same time. Bodies are bounded (size, time) by the request middleware.
//!
//! Only HTTP/1.1 is spoken (with WebSocket upgrades): cleartext HTTP/2 (prior knowledge) has
//! no header deadline in hyper, and the deployment's TLS terminator speaks HTTP/1.1 to us.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use poem::endpoint::BoxEndpoint;
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Addr, Endpoint, EndpointExt, Response};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Bounds of every connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// Time to send a request head, from the connection's opening or the previous
    /// response's end.
    pub header_timeout: Duration,
}

type Body = http_body_util::combinators::BoxBody<bytes::Bytes, std::io::Error>;

/// Serves `ep` on `listener` until `stop` completes; then stops accepting, asks every
/// connection to close once its request in progress is answered, and after `grace` drops
/// whatever is still open.
pub async fn serve<E>(
    listener: tokio::net::TcpListener,
    ep: E,
    limits: ConnLimits,
    stop: impl Future<Output = ()>,
    grace: Duration,
) -> std::io::Result<()>
where
    E: Endpoint + 'static,
{
    let ep: Arc<BoxEndpoint<'static, Response>> = Arc::new(ep.map_to_response().boxed());
    let local = listener.local_addr()?;
    tracing::info!(addr = %local, "listening");
    // Connections finish their request and close when `closing` fires; `dropped` ends
    // those still open when the grace is over.
    let closing = CancellationToken::new();
    let dropped = CancellationToken::new();
    let tracker = TaskTracker::new();
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => accepted,
        };
        let (socket, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of file descriptors, or a connection reset before it was accepted:
                // pause briefly rather than spin, and keep serving the others.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        tracker.spawn(connection(
            socket,
            local,
            peer,
            ep.clone(),
            limits,
            closing.clone(),
            dropped.clone(),
        ));
    }
    drop(listener);
    closing.cancel();
    tracker.close();
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        tracing::info!(
            open = tracker.len(),
            "grace over: closing the connections still open"
        );
        dropped.cancel();
        tracker.wait().await;
    }
    Ok(())
}

async fn connection(
    socket: tokio::net::TcpStream,
    local: SocketAddr,
    peer: SocketAddr,
    ep: Arc<BoxEndpoint<'static, Response>>,
    limits: ConnLimits,
    closing: CancellationToken,
    dropped: CancellationToken,
) {
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let ep = ep.clone();
        async move {
            let req: poem::Request = (
                req,
                LocalAddr(Addr::SocketAddr(local)),
                RemoteAddr(Addr::SocketAddr(peer)),
                poem::http::uri::Scheme::HTTP,
            )
                .into();
            let resp = ep.get_response(req).await;
            Ok::<hyper::Response<Body>, Infallible>(resp.into())
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true)
        .serve_connection(TokioIo::new(socket), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = closing.cancelled() => {}
    }
    conn.as_mut().graceful_shutdown();
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = dropped.cancelled() => {}
    }
}
