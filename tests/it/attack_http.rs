//! Attacks of issue 17 on the HTTP server itself, each kept as a test written as the attack:
//! bodies smuggled past the limits by an `Upgrade` header, and connections held open by
//! request heads that never finish.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::*;

/// Reads what the server sends until it closes the connection (or `within` passes, which
/// fails the test: the server was supposed to close it).
async fn read_until_closed(socket: &mut TcpStream, within: Duration) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, socket.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return got,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => panic!(
                "the server kept the connection open for {within:?}; it sent {:?}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
}

/// The attack: a chunked 50 MiB `POST /agent/v1/pair` carrying `Upgrade:` was read whole,
/// past the 64 KiB limit. Now the body is refused with 413 once it passes the limit, and the
/// server stops reading long before the sender is done.
#[tokio::test]
async fn a_body_claiming_an_upgrade_is_limited_like_any_other() {
    let app = TestApp::spawn().await;
    let addr = app.url.trim_start_matches("http://").to_owned();
    for upgrade in ["x", "websocket"] {
        let mut socket = TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "POST /agent/v1/pair HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Connection: upgrade\r\nUpgrade: {upgrade}\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
        socket.write_all(head.as_bytes()).await.unwrap();
        let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, " ".repeat(64 * 1024));
        let total: usize = 50 * 1024 * 1024;
        let mut sent = 0usize;
        let (mut reader, mut writer) = socket.into_split();
        let sender = tokio::spawn(async move {
            while sent < total {
                if writer.write_all(chunk.as_bytes()).await.is_err() {
                    break;
                }
                sent += 64 * 1024;
            }
            sent
        });
        let mut answer = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(20), reader.read(&mut answer))
            .await
            .expect("the server answers before the body is done")
            .unwrap();
        let answer = String::from_utf8_lossy(&answer[..n]).to_string();
        assert!(
            answer.starts_with("HTTP/1.1 413"),
            "Upgrade: {upgrade}: {answer}"
        );
        assert!(answer.contains("payload_too_large"), "{answer}");
        drop(reader);
        let sent = sender.await.unwrap();
        assert!(
            sent < total / 2,
            "Upgrade: {upgrade}: the server read {sent} bytes of a body it refused"
        );
    }
    // An honest client is unaffected: a pairing attempt with a bad code is answered as
    // before, and the agents' stream still upgrades.
    let resp = reqwest::Client::new()
        .post(format!("{}/agent/v1/pair", app.url))
        .json(&serde_json::json!({"code": "AAAA-AAAA"}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_client_error(), "{}", resp.status());
    let (_, device, _) = app.agent_with_device(&app.client(), "Ada").await;
    let _stream = live_stream(&device).await;
}

/// The attack: a client sent its request head one byte a second and kept its connection for
/// as long as it liked (still open after 150 s). Now the head must be complete within the
/// header timeout, counted from the connection's opening, whatever trickles in.
#[tokio::test]
async fn a_request_head_sent_a_byte_at_a_time_is_cut_off() {
    let app = TestApp::spawn_tuned(|c| c.header_timeout = Duration::from_secs(1)).await;
    let addr = app.url.trim_start_matches("http://").to_owned();
    let socket = TcpStream::connect(&addr).await.unwrap();
    let (mut reader, mut writer) = socket.into_split();
    let head = format!(
        "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nX-Slow: {}",
        "a".repeat(200)
    );
    let written = Arc::new(AtomicUsize::new(0));
    let trickle = {
        let written = written.clone();
        tokio::spawn(async move {
            for byte in head.bytes() {
                if writer.write_all(&[byte]).await.is_err() {
                    break;
                }
                written.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(Duration::from_secs(15), reader.read(&mut buf)).await;
    let n = closed
        .expect("the server closed the connection of a head that never finished")
        .unwrap_or(0);
    assert!(
        !String::from_utf8_lossy(&buf[..n]).contains("200 OK"),
        "an unfinished head was served"
    );
    // Cut off by the head's deadline (1 s, about 10 bytes at 10 a second), not by some
    // longer one: the head is 230 bytes, and 60 leaves room for a slow machine.
    let sent = written.load(Ordering::SeqCst);
    assert!(
        sent < 60,
        "the connection stayed open for {sent} trickled bytes"
    );
    trickle.abort();
}

/// The attack: a client connected and sent nothing, holding a connection (and a task) for
/// ever. Now the connection is closed when the header timeout passes.
#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed() {
    let app = TestApp::spawn_tuned(|c| c.header_timeout = Duration::from_secs(1)).await;
    let mut socket = TcpStream::connect(app.url.trim_start_matches("http://"))
        .await
        .unwrap();
    let got = read_until_closed(&mut socket, Duration::from_secs(15)).await;
    assert!(got.is_empty() || String::from_utf8_lossy(&got).starts_with("HTTP/1.1 408"));
}

/// A kept-alive connection serves the next request that comes in time, and is closed once
/// it has stayed idle for the header timeout.
#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed() {
    let app = TestApp::spawn_tuned(|c| c.header_timeout = Duration::from_secs(2)).await;
    let addr = app.url.trim_start_matches("http://").to_owned();
    let mut socket = TcpStream::connect(&addr).await.unwrap();
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    for _ in 0..2 {
        socket.write_all(request.as_bytes()).await.unwrap();
        let mut buf = [0u8; 1024];
        let n = socket.read(&mut buf).await.unwrap();
        let answer = String::from_utf8_lossy(&buf[..n]).to_string();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("ok"), "{answer}");
    }
    let got = read_until_closed(&mut socket, Duration::from_secs(15)).await;
    assert!(
        got.is_empty() || String::from_utf8_lossy(&got).starts_with("HTTP/1.1 408"),
        "{got:?}"
    );
}
