//! 8: noisy neighbour (`--only noisy`): one organization's calls through push while another
//! floods webhook endpoints that never answer, vs the first alone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use serde_json::json;

use crate::fixtures::{clear_jobs, create_call, free_port, Bench};
use crate::load::{calls_to, open_loop, WARM_UP};
use crate::loopback::tarpit;
use crate::report::{figure, ms, Figure};

/// Calls per second organization B places in the noisy-neighbour benchmark.
const NOISY_RATE: f64 = 100.0;

/// Webhook endpoints of organization A, each on a receiver that never answers.
const NOISY_ENDPOINTS: usize = 50;

/// B's click to offer through push (request sent → wake-up at the push service), over
/// `time` at `NOISY_RATE`; with the number of calls created and of those woken.
async fn push_offers(
    b: &Bench,
    base: &str,
    sk: &str,
    agents: &Arc<Vec<String>>,
    time: Duration,
) -> (Histogram<u64>, usize, usize) {
    let created: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let (http, base2, sk2, agents2, created2) = (
        b.http.clone(),
        base.to_owned(),
        sk.to_owned(),
        agents.clone(),
        created.clone(),
    );
    open_loop(NOISY_RATE, time, move |i| {
        let (http, base, sk, agents, created) = (
            http.clone(),
            base2.clone(),
            sk2.clone(),
            agents2.clone(),
            created2.clone(),
        );
        async move {
            let clicked = Instant::now();
            match create_call(&http, &base, &sk, &agents[i as usize % agents.len()]).await {
                Ok(call) => {
                    let id = call["id"].as_str().unwrap_or("").to_owned();
                    created.lock().unwrap().insert(id, clicked);
                    true
                }
                Err(_) => false,
            }
        }
    })
    .await;
    // Wake-ups still on their way: a few seconds, far less than a call's life.
    let deadline = Instant::now() + Duration::from_secs(5);
    let created = created.lock().unwrap().clone();
    loop {
        let all = {
            let pushed = b.pushed.lock().unwrap();
            created.keys().all(|id| pushed.contains_key(id))
        };
        if all || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pushed = b.pushed.lock().unwrap().clone();
    let mut hist = Histogram::<u64>::new(3).unwrap();
    let mut woken = 0;
    for (id, clicked) in &created {
        if let Some(at) = pushed.get(id) {
            woken += 1;
            let _ = hist.record(at.saturating_duration_since(*clicked).as_micros().max(1) as u64);
        }
    }
    (hist, created.len(), woken)
}

/// Organization B's calls to phones woken by push, alone and then while organization A
/// (its plan allows 50 webhook endpoints, every one on a receiver that never answers,
/// subscribed to everything) sends test events as fast as its API limit lets it and places
/// calls at its calls-per-minute limit, whose events go to all 50 endpoints. The figure
/// is the ratio of B's click-to-offer p99 with A to B's alone: A's load may delay only A.
pub(crate) async fn noisy(b: &Bench, figures: &mut Vec<Figure>) -> Result<()> {
    clear_jobs(&b.args.database_url)?;
    let (api_port, worker_port) = (free_port(), free_port());
    let _api = b.start("api", api_port);
    let _worker = b.start("worker", worker_port);
    b.ready(api_port).await?;
    b.ready(worker_port).await?;
    let base = format!("http://127.0.0.1:{api_port}");
    // B: no plan limit in the way; phones reachable only by push.
    let (sk_b, devices) = b.org(&base, 100).await?;
    let agents_b: Arc<Vec<String>> = Arc::new(devices.iter().map(|d| d.agent_id.clone()).collect());
    // A: the deployment's default limits, but for endpoints (its plan allows 50).
    let org_a = b.admin(&["create-org", "--name", "noisy"])?;
    let a_id = org_a["org_id"].as_str().context("org id")?.to_owned();
    let sk_a = org_a["secret_key"]
        .as_str()
        .context("secret key")?
        .to_owned();
    b.admin(&[
        "set-limits",
        "--org",
        &a_id,
        "--webhook-endpoints",
        &NOISY_ENDPOINTS.to_string(),
    ])?;
    let device_a = b.device(&base, &sk_a, "A's agent".into()).await?;
    let mut endpoints = Vec::new();
    for _ in 0..NOISY_ENDPOINTS {
        let port = tarpit().await?;
        let e = b
            .post(
                &base,
                &sk_a,
                "/v1/webhook_endpoints",
                json!({"url": format!("http://127.0.0.1:{port}/hook")}),
            )
            .await?;
        endpoints.push(e["id"].as_str().context("endpoint id")?.to_owned());
    }
    let time = Duration::from_secs(b.args.seconds);

    open_loop(
        NOISY_RATE,
        WARM_UP,
        calls_to(&b.http, &base, &sk_b, &agents_b),
    )
    .await;
    let (alone, created_alone, woken_alone) = push_offers(b, &base, &sk_b, &agents_b, time).await;

    // A's flood: test events round the endpoints at A's API limit (100/s), and calls.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let answers: Arc<Mutex<HashMap<u16, u64>>> = Arc::default();
    let flood = {
        let (http, base, sk, answers, stop) = (
            b.http.clone(),
            base.clone(),
            sk_a.clone(),
            answers.clone(),
            stop_rx.clone(),
        );
        let endpoints = Arc::new(endpoints.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            let mut i = 0usize;
            while !*stop.borrow() {
                tick.tick().await;
                let path = format!(
                    "{base}/v1/webhook_endpoints/{}/test",
                    endpoints[i % endpoints.len()]
                );
                i += 1;
                let (http, sk, answers) = (http.clone(), sk.clone(), answers.clone());
                tokio::spawn(async move {
                    if let Ok(r) = http.post(path).bearer_auth(&sk).send().await {
                        *answers
                            .lock()
                            .unwrap()
                            .entry(r.status().as_u16())
                            .or_default() += 1;
                    }
                });
            }
        })
    };
    let a_calls = {
        let (http, base, sk, agent, stop) = (
            b.http.clone(),
            base.clone(),
            sk_a.clone(),
            device_a.agent_id.clone(),
            stop_rx.clone(),
        );
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            while !*stop.borrow() {
                tick.tick().await;
                let _ = create_call(&http, &base, &sk, &agent).await;
            }
        })
    };
    // Let A's backlog build: more deliveries due than the worker has slots.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (with_a, created_with, woken_with) = push_offers(b, &base, &sk_b, &agents_b, time).await;
    let _ = stop_tx.send(true);
    let _ = tokio::join!(flood, a_calls);
    let metrics = b
        .http
        .get(format!("http://127.0.0.1:{worker_port}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let bulk_ready = metrics
        .lines()
        .find(|l| l.starts_with("pushdial_lane_jobs_ready{lane=\"bulk\"}"))
        .and_then(|l| l.split_whitespace().last())
        .unwrap_or("?")
        .to_owned();
    let answers = answers.lock().unwrap().clone();
    println!(
        "  B alone: {woken_alone}/{created_alone} woken, p50 {:.2} ms p99 {:.2} ms",
        ms(&alone, 0.5),
        ms(&alone, 0.99)
    );
    println!(
        "  B with A: {woken_with}/{created_with} woken, p50 {:.2} ms p99 {:.2} ms; A's test sends by status {answers:?}, bulk lane ready at the end {bulk_ready}",
        ms(&with_a, 0.5),
        ms(&with_a, 0.99)
    );
    for (q, name) in [(0.5, "p50"), (0.99, "p99")] {
        let (value, baseline) = (ms(&with_a, q), ms(&alone, q));
        figures.push(figure(
            "8 noisy neighbour (B's click → push, A flooding)",
            &format!("{name} at {NOISY_RATE}/s, {woken_with}/{created_with} woken"),
            value,
            "ms",
            "B alone, same rate",
            baseline,
            (q == 0.99).then_some(("p99 ratio ≤ 1.5", value <= 1.5 * baseline)),
        ));
    }
    Ok(())
}
