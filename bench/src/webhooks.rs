//! 4: webhook delivery: event committed → signed request received, vs a direct loopback
//! POST; and the sustained deliveries per second.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::fixtures::{clear_jobs, free_port, Bench};
use crate::load::{open_loop, WARM_UP};
use crate::report::{figure, ms, Figure};

pub(crate) async fn webhooks(b: &Bench, figures: &mut Vec<Figure>) -> Result<()> {
    clear_jobs(&b.args.database_url)?;
    let (api_port, worker_port) = (free_port(), free_port());
    let _api = b.start("api", api_port);
    let _worker = b.start("worker", worker_port);
    b.ready(api_port).await?;
    b.ready(worker_port).await?;
    let base = format!("http://127.0.0.1:{api_port}");
    let (sk, _) = b.org(&base, 0).await?;
    let endpoint = b
        .post(
            &base,
            &sk,
            "/v1/webhook_endpoints",
            json!({"url": format!("http://127.0.0.1:{}/hook", b.hook_port)}),
        )
        .await?;
    let endpoint_id = endpoint["id"].as_str().context("endpoint id")?.to_owned();
    let rate = 1000.0;
    let time = Duration::from_secs(b.args.seconds);
    // Test events of the endpoint, each noted in `committed` with the time its 202 came.
    let test_events = |committed: Arc<Mutex<HashMap<String, Instant>>>| {
        let (http, base, sk, ep) = (
            b.http.clone(),
            base.clone(),
            sk.clone(),
            endpoint_id.clone(),
        );
        move |_| {
            let (http, base, sk, committed, ep) = (
                http.clone(),
                base.clone(),
                sk.clone(),
                committed.clone(),
                ep.clone(),
            );
            async move {
                let r = http
                    .post(format!("{base}/v1/webhook_endpoints/{ep}/test"))
                    .bearer_auth(&sk)
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 202 => {
                        let at = Instant::now();
                        let v: Value = r.json().await.unwrap_or_default();
                        committed
                            .lock()
                            .unwrap()
                            .insert(v["event_id"].as_str().unwrap_or("").to_owned(), at);
                        true
                    }
                    _ => false,
                }
            }
        }
    };
    // Warm-up: the same load, delivered and then forgotten.
    let warm: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    open_loop(rate, WARM_UP, test_events(warm.clone())).await;
    let warm_sent = warm.lock().unwrap().len();
    let warm_start = Instant::now();
    while b.hook.arrived.lock().unwrap().len() < warm_sent
        && warm_start.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    b.hook.arrived.lock().unwrap().clear();
    let committed: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let (_, errors) = open_loop(rate, time, test_events(committed.clone())).await;
    // Let the queue drain, timing the sustained delivery rate at the same time.
    let sent = committed.lock().unwrap().len();
    let drain_start = Instant::now();
    let first_arrival = loop {
        let arrived = b.hook.arrived.lock().unwrap().len();
        if arrived >= sent || drain_start.elapsed() > Duration::from_secs(120) {
            break arrived;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let arrived = b.hook.arrived.lock().unwrap().clone();
    let committed = committed.lock().unwrap().clone();
    let mut hist = Histogram::<u64>::new(3).unwrap();
    let (mut earliest, mut latest) = (None::<Instant>, None::<Instant>);
    for (id, at) in &arrived {
        if let Some(c) = committed.get(id) {
            let _ = hist.record(at.saturating_duration_since(*c).as_micros().max(1) as u64);
        }
        earliest = Some(earliest.map_or(*at, |e: Instant| e.min(*at)));
        latest = Some(latest.map_or(*at, |l: Instant| l.max(*at)));
    }
    let span = match (earliest, latest) {
        (Some(e), Some(l)) => l.duration_since(e).as_secs_f64().max(0.001),
        _ => 1.0,
    };
    let delivered_rate = arrived.len() as f64 / span;
    // Baseline: the same request straight from here to the receiver.
    let direct = {
        let url = format!("http://127.0.0.1:{}/hook", b.hook_port);
        let http = b.http.clone();
        let (h, _) = open_loop(
            rate,
            Duration::from_secs(b.args.seconds.min(5)),
            move |_| {
                let (http, url) = (http.clone(), url.clone());
                async move {
                    http.post(&url)
                        .header("content-type", "application/json")
                        .body(r#"{"type":"webhook.test"}"#)
                        .send()
                        .await
                        .is_ok()
                }
            },
        )
        .await;
        h
    };
    println!(
        "  webhooks at {rate}/s: {first_arrival}/{sent} delivered, p50 {:.2} ms p99 {:.2} ms, {delivered_rate:.0}/s sustained ({errors} errors); direct POST p99 {:.2} ms",
        ms(&hist, 0.5),
        ms(&hist, 0.99),
        ms(&direct, 0.99)
    );
    for (q, name) in [(0.5, "p50"), (0.99, "p99")] {
        figures.push(figure(
            "4 webhook delivery (event committed → request received)",
            &format!("{name} at {rate}/s"),
            ms(&hist, q),
            "ms",
            "a direct loopback POST to the same receiver, same rate",
            ms(&direct, q),
            (q == 0.99).then(|| ("p99 < 100 ms", ms(&hist, q) < 100.0)),
        ));
    }
    figures.push(figure(
        "4 webhook delivery",
        "deliveries/s while events arrive at 1,000/s",
        delivered_rate,
        "1/s",
        "event arrival rate",
        rate,
        None,
    ));
    Ok(())
}
