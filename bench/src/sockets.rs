//! 5: agent sockets: memory and CPU of one api process holding N sockets with heartbeats,
//! vs the same process idle.

use std::time::Duration;

use anyhow::Result;

use crate::agent::{connect, hold_socket};
use crate::fixtures::{free_port, Bench};
use crate::report::{figure, Figure};
use crate::system::{cpu_seconds, rss_bytes};

pub(crate) async fn sockets(b: &Bench, figures: &mut Vec<Figure>) -> Result<()> {
    let port = free_port();
    let api = b.start("api", port);
    b.ready(port).await?;
    let base = format!("http://127.0.0.1:{port}");
    let n = b.args.sockets;
    let org = b.admin(&["create-org", "--name", "sockets"])?;
    let sk = org["secret_key"].as_str().unwrap().to_owned();
    let org_id = org["org_id"].as_str().unwrap().to_owned();
    b.admin(&[
        "set-limits",
        "--org",
        &org_id,
        "--api-per-second",
        "1000000000",
    ])?;
    // Devices in parallel batches (pairing is three requests each).
    let mut devices = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(64) {
        let made =
            futures::future::join_all(chunk.iter().map(|i| b.device(&base, &sk, format!("s{i}"))))
                .await;
        for d in made {
            devices.push(d?);
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_rss = rss_bytes(api.pid());
    let idle_cpu0 = cpu_seconds(api.pid());
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle_cpu = (cpu_seconds(api.pid()) - idle_cpu0) / 5.0;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut connected = 0;
    for chunk in devices.chunks(200) {
        let socks = futures::future::join_all(chunk.iter().map(|d| connect(&base, &d.token))).await;
        for ws in socks {
            match ws {
                Ok(ws) => {
                    connected += 1;
                    tokio::spawn(hold_socket(ws, |_| {}, stop_rx.clone()));
                }
                Err(e) => eprintln!("  socket not connected: {e}"),
            }
        }
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let cpu0 = cpu_seconds(api.pid());
    let window = Duration::from_secs(b.args.seconds.max(25)); // covers a heartbeat round
    tokio::time::sleep(window).await;
    let cpu = (cpu_seconds(api.pid()) - cpu0) / window.as_secs_f64();
    let rss = rss_bytes(api.pid());
    let _ = stop_tx.send(true);
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let per_socket = (rss.saturating_sub(idle_rss)) as f64 / connected.max(1) as f64;
    println!(
        "  sockets: {connected} held, RSS {:.0} MiB (idle {:.0} MiB, {:.1} KiB/socket), CPU {:.1} % of a core (idle {:.1} %)",
        mib(rss),
        mib(idle_rss),
        per_socket / 1024.0,
        cpu * 100.0,
        idle_cpu * 100.0
    );
    let projected = idle_rss as f64 + per_socket * 20_000.0;
    figures.push(figure(
        "5 agent sockets",
        &format!("RSS with {connected} sockets"),
        mib(rss),
        "MiB",
        "the same process idle",
        mib(idle_rss),
        None,
    ));
    figures.push(figure(
        "5 agent sockets",
        "RSS projected to 20,000 sockets",
        projected / (1024.0 * 1024.0),
        "MiB",
        "the same process idle",
        mib(idle_rss),
        Some(("< 1 GiB", projected < 1024.0 * 1024.0 * 1024.0)),
    ));
    figures.push(figure(
        "5 agent sockets",
        &format!("CPU with {connected} sockets and heartbeats"),
        cpu * 100.0,
        "% of a core",
        "the same process idle",
        idle_cpu * 100.0,
        None,
    ));
    Ok(())
}
