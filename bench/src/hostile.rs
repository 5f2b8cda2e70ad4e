//! 7: hostile clients: huge bodies and trickled request heads against one api, vs the same
//! process idle.

use std::time::{Duration, Instant};

use anyhow::Result;

use crate::fixtures::{free_port, Bench};
use crate::report::{figure, Figure};
use crate::system::rss_bytes;

/// Hostile clients against one api: four bodies of 50 MiB streamed at `POST
/// /agent/v1/pair` with an `Upgrade:` header (which once skipped the body limit: the api's
/// RSS grew by 150 MiB each and kept it), and a hundred connections trickling their request
/// heads a byte at a time. Baseline: the same process idle just before.
pub(crate) async fn hostile(b: &Bench, figures: &mut Vec<Figure>) -> Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let port = free_port();
    let api = b.start("api", port);
    b.ready(port).await?;
    // Warm the process with a few ordinary requests, then read its resting RSS.
    for _ in 0..20 {
        let _ = b
            .http
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss = rss_bytes(api.pid());
    let addr = format!("127.0.0.1:{port}");
    let bodies = (0..4).map(|_| {
        let addr = addr.clone();
        async move {
            let mut socket = tokio::net::TcpStream::connect(&addr).await?;
            let head = format!(
                "POST /agent/v1/pair HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
                 Connection: upgrade\r\nUpgrade: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            );
            socket.write_all(head.as_bytes()).await?;
            let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, " ".repeat(64 * 1024));
            let mut sent = 0usize;
            while sent < 50 * 1024 * 1024 {
                if socket.write_all(chunk.as_bytes()).await.is_err() {
                    break;
                }
                sent += 64 * 1024;
            }
            anyhow::Ok(sent)
        }
    });
    let trickles = (0..100).map(|_| {
        let addr = addr.clone();
        async move {
            let mut socket = tokio::net::TcpStream::connect(&addr).await?;
            let mut closed_after = 0;
            for byte in b"GET /healthz HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter()
            {
                if socket.write_all(&[*byte]).await.is_err() {
                    break;
                }
                closed_after += 1;
                tokio::time::sleep(Duration::from_millis(500)).await;
                let mut buf = [0u8; 64];
                if let Ok(Ok(0)) =
                    tokio::time::timeout(Duration::from_millis(1), socket.read(&mut buf)).await
                {
                    break;
                }
            }
            anyhow::Ok(closed_after)
        }
    });
    let started = Instant::now();
    let (sent, held) = tokio::join!(
        futures::future::join_all(bodies),
        futures::future::join_all(trickles)
    );
    let sent: usize = sent.into_iter().filter_map(|r| r.ok()).sum();
    let held = held.into_iter().filter_map(|r| r.ok()).max().unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after_rss = rss_bytes(api.pid());
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!(
        "  {:.0} MiB sent in {:.1} s by four bodies of 50 MiB; slowest trickled head cut off after {held} bytes",
        sent as f64 / (1024.0 * 1024.0),
        started.elapsed().as_secs_f64()
    );
    figures.push(figure(
        "7 hostile clients (4 × 50 MiB bodies, 100 slow heads)",
        "api RSS after",
        mib(after_rss),
        "MiB",
        "the same process idle",
        mib(idle_rss),
        Some(("< idle + 32 MiB", after_rss < idle_rss + 32 * 1024 * 1024)),
    ));
    Ok(())
}
