//! 3: click to offer: request sent → `call.offer` on the agent's socket, vs a Redis pub/sub
//! hop.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use hdrhistogram::Histogram;

use crate::agent::{connect, hold_socket};
use crate::baseline::redis_hop;
use crate::fixtures::{clear_jobs, create_call, free_port, Bench};
use crate::load::{calls_to, open_loop, WARM_UP};
use crate::report::{figure, ms, Figure};
use crate::system::{cpu_by_command, cpu_share};

pub(crate) async fn click_to_offer(b: &Bench, figures: &mut Vec<Figure>) -> Result<()> {
    clear_jobs(&b.args.database_url)?;
    let (api_port, worker_port) = (free_port(), free_port());
    let _api = b.start("api", api_port);
    let _worker = b.start("worker", worker_port);
    b.ready(api_port).await?;
    b.ready(worker_port).await?;
    let base = format!("http://127.0.0.1:{api_port}");
    let (sk, devices) = b.org(&base, 100).await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    for d in &devices {
        let ws = connect(&base, &d.token).await?;
        let tx = tx.clone();
        let arrived = move |id| {
            let _ = tx.send((id, Instant::now()));
        };
        tokio::spawn(hold_socket(ws, arrived, stop_rx.clone()));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let created: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let rate = b.args.offer_rate;
    let agents: Arc<Vec<String>> = Arc::new(devices.iter().map(|d| d.agent_id.clone()).collect());
    // Warm-up calls: their offers arrive too, but only calls in `created` are counted.
    open_loop(rate, WARM_UP, calls_to(&b.http, &base, &sk, &agents)).await;
    let (http, base2, sk2, created2) = (b.http.clone(), base.clone(), sk.clone(), created.clone());
    let cpu0 = cpu_by_command();
    let t0 = Instant::now();
    let (_, errors) = open_loop(rate, Duration::from_secs(b.args.seconds), move |i| {
        let (http, base, sk, agents, created) = (
            http.clone(),
            base2.clone(),
            sk2.clone(),
            agents.clone(),
            created2.clone(),
        );
        async move {
            // The click: the moment the request leaves (the offer may beat the 201 back).
            let clicked = Instant::now();
            match create_call(&http, &base, &sk, &agents[i as usize % agents.len()]).await {
                Ok(call) => {
                    let at = clicked;
                    created
                        .lock()
                        .unwrap()
                        .insert(call["id"].as_str().unwrap_or("").to_owned(), at);
                    true
                }
                Err(_) => false,
            }
        }
    })
    .await;
    cpu_share(&cpu0, &cpu_by_command(), t0.elapsed());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = stop_tx.send(true);
    // Where the time goes, from the worker's own metrics: queueing vs running.
    let metrics = b
        .http
        .get(format!("http://127.0.0.1:{worker_port}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    for name in ["pushdial_job_wait_seconds", "pushdial_job_duration_seconds"] {
        let value = |suffix: &str| {
            metrics
                .lines()
                .find(|l| l.starts_with(&format!("{name}_{suffix}{{kind=\"call.offer\"}}")))
                .and_then(|l| l.split_whitespace().last())
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        let (sum, count) = (value("sum"), value("count"));
        println!(
            "  worker {name} (call.offer): mean {:.2} ms over {count} jobs",
            if count > 0.0 {
                sum / count * 1000.0
            } else {
                0.0
            }
        );
    }
    let mut hist = Histogram::<u64>::new(3).unwrap();
    let created = created.lock().unwrap().clone();
    let mut offered = 0;
    while let Ok((id, at)) = rx.try_recv() {
        if let Some(c) = created.get(&id) {
            offered += 1;
            let _ = hist.record(at.saturating_duration_since(*c).as_micros().max(1) as u64);
        }
    }
    // Baseline: one Redis pub/sub hop at the same rate.
    let base_hist = redis_hop(&b.args.redis_url, rate, Duration::from_secs(b.args.seconds)).await?;
    println!(
        "  click to offer at {rate}/s: {offered}/{} offered, p50 {:.2} ms p99 {:.2} ms ({errors} errors); redis hop p99 {:.3} ms",
        created.len(),
        ms(&hist, 0.5),
        ms(&hist, 0.99),
        ms(&base_hist, 0.99)
    );
    for (q, name, limit) in [(0.5, "p50", 5.0), (0.99, "p99", 25.0)] {
        figures.push(figure(
            "3 click to offer (request sent → call.offer on the socket)",
            &format!("{name} at {rate}/s, {} sockets", devices.len()),
            ms(&hist, q),
            "ms",
            "Redis PUBLISH → subscriber, same rate",
            ms(&base_hist, q),
            Some((
                if q == 0.5 {
                    "p50 < 5 ms"
                } else {
                    "p99 < 25 ms"
                },
                ms(&hist, q) < limit,
            )),
        ));
    }
    Ok(())
}
