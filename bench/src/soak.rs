//! 6: soak (`--only soak`): calls created, offered, acked and completed by simulated agents
//! for half an hour, at 60 % of the loop's maximum.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::agent::{answer_offer, connect, hold_socket};
use crate::fixtures::{clear_jobs, create_call, free_port, psql_value, Bench};
use crate::load::{open_loop_windowed, WARM_UP};
use crate::report::{figure, ms, Figure};
use crate::system::rss_bytes;

/// Calls created, failures by status and problem code, and creation latency, of one
/// open-loop run against the soak's agents.
struct Drive {
    latency: Histogram<u64>,
    created: u64,
    errors: u64,
    failures: HashMap<String, u64>,
}

async fn drive(
    http: &reqwest::Client,
    base: &str,
    sk: &str,
    agents: &Arc<Vec<String>>,
    rate: f64,
    time: Duration,
    window: Option<Arc<Mutex<Histogram<u64>>>>,
) -> Drive {
    let failures: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    let created = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (http, base, sk, agents) = (http.clone(), base.to_owned(), sk.to_owned(), agents.clone());
    let (failures2, created2) = (failures.clone(), created.clone());
    let (latency, errors) = open_loop_windowed(rate, time, window, move |i| {
        let (http, base, sk, agents, created, failures) = (
            http.clone(),
            base.clone(),
            sk.clone(),
            agents.clone(),
            created2.clone(),
            failures2.clone(),
        );
        async move {
            match create_call(&http, &base, &sk, &agents[i as usize % agents.len()]).await {
                Ok(_) => {
                    created.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    true
                }
                Err(e) => {
                    // "create call: 503 Service Unavailable {…"code":"overloaded"…}"
                    let text = e.to_string();
                    let code = text
                        .split("\"code\":\"")
                        .nth(1)
                        .and_then(|rest| rest.split('"').next())
                        .unwrap_or("");
                    let kind = format!("{} {code}", text.chars().take(16).collect::<String>());
                    *failures.lock().unwrap().entry(kind).or_insert(0) += 1;
                    false
                }
            }
        }
    })
    .await;
    let failures = failures.lock().unwrap().clone();
    Drive {
        latency,
        created: created.load(std::sync::atomic::Ordering::Relaxed),
        errors,
        failures,
    }
}

fn completed_calls(database_url: &str) -> u64 {
    psql_value(
        database_url,
        "select count(*) from calls where status = 'completed'",
    )
    .parse()
    .unwrap_or(0)
}

/// Waits (at most `within`) until `n` more calls than `before` have completed; how many did.
async fn await_completed(database_url: &str, before: u64, n: u64, within: Duration) -> u64 {
    let deadline = Instant::now() + within;
    loop {
        let done = completed_calls(database_url).saturating_sub(before);
        if done >= n || Instant::now() > deadline {
            return done;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The highest rate of a ladder at which the whole loop keeps up: every call created
/// (no error), every one completed by its agent within 10 s of the run's end, and
/// creation's p99 under 100 ms (a queue that does not grow). 8 s per step.
async fn loop_max(b: &Bench, base: &str, sk: &str, agents: &Arc<Vec<String>>) -> f64 {
    // Not counted: a fresh process's first requests open connections and load data.
    drive(&b.http, base, sk, agents, 100.0, WARM_UP, None).await;
    let mut best = 0.0;
    for rate in [
        100.0, 150.0, 200.0, 250.0, 300.0, 400.0, 500.0, 600.0, 800.0, 1000.0,
    ] {
        let before = completed_calls(&b.args.database_url);
        let run = drive(
            &b.http,
            base,
            sk,
            agents,
            rate,
            Duration::from_secs(8),
            None,
        )
        .await;
        let done = await_completed(
            &b.args.database_url,
            before,
            run.created,
            Duration::from_secs(10),
        )
        .await;
        let p99 = ms(&run.latency, 0.99);
        println!(
            "  loop at {rate}/s: {} created, {} errors {:?}, {done} completed, create p99 {p99:.1} ms",
            run.created, run.errors, run.failures
        );
        if run.errors > 0 || done < run.created || p99 >= 100.0 {
            break;
        }
        best = rate;
    }
    best
}

pub(crate) async fn soak(b: &Bench, figures: &mut Vec<Figure>) -> Result<()> {
    clear_jobs(&b.args.database_url)?;
    if psql_value(&b.args.database_url, "show autovacuum") != "on" {
        println!("  note: autovacuum is off on this PostgreSQL: dead tuples of jobs can only grow");
    }
    let (api_port, worker_port) = (free_port(), free_port());
    let api = b.start("api", api_port);
    let worker = b.start("worker", worker_port);
    b.ready(api_port).await?;
    b.ready(worker_port).await?;
    let base = format!("http://127.0.0.1:{api_port}");
    let (sk, devices) = b.org(&base, 100).await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    for d in &devices {
        let ws = connect(&base, &d.token).await?;
        let answer = answer_offer(b.http.clone(), base.clone(), d.token.clone());
        tokio::spawn(hold_socket(ws, answer, stop_rx.clone()));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let agents: Arc<Vec<String>> = Arc::new(devices.iter().map(|d| d.agent_id.clone()).collect());
    let rate = match b.args.soak_rate {
        Some(rate) => rate,
        None => {
            let max = loop_max(b, &base, &sk, &agents).await;
            if max == 0.0 {
                bail!("the loop did not keep up even at the ladder's lowest rate");
            }
            figures.push(figure(
                "6 soak: the loop's maximum (create, offer, ack, complete)",
                "highest rate kept up with",
                max,
                "calls/s",
                "the soak's rate (60 %)",
                (max * 0.6).round(),
                None,
            ));
            (max * 0.6).round()
        }
    };
    // The ladder's last step overloaded the loop on purpose: let it drain first.
    tokio::time::sleep(Duration::from_secs(10)).await;
    clear_jobs(&b.args.database_url)?;
    println!("  soak at {rate}/s");
    let time = Duration::from_secs(b.args.soak_seconds);
    // Samples every 30 s: queue depth, dead tuples of jobs and calls, RSS of api and
    // worker, and creation's latency over the last interval.
    let samples: Arc<Mutex<Vec<Value>>> = Arc::default();
    let window = Arc::new(Mutex::new(Histogram::<u64>::new(3).unwrap()));
    let sampler = {
        let (db, samples, api_pid, worker_pid, window) = (
            b.args.database_url.clone(),
            samples.clone(),
            api.pid(),
            worker.pid(),
            window.clone(),
        );
        let started = Instant::now();
        tokio::spawn(async move {
            loop {
                let depth = psql_value(
                    &db,
                    "select count(*) from jobs where run_at <= now() and lease_owner is null",
                );
                let dead = psql_value(
                    &db,
                    "select n_dead_tup from pg_stat_user_tables where relname = 'jobs'",
                );
                let calls_dead = psql_value(
                    &db,
                    "select n_dead_tup from pg_stat_user_tables where relname = 'calls'",
                );
                let last = std::mem::replace(
                    &mut *window.lock().unwrap(),
                    Histogram::<u64>::new(3).unwrap(),
                );
                let sample = json!({
                    "t_s": started.elapsed().as_secs(),
                    "create_p50_ms": (ms(&last, 0.5) * 10.0).round() / 10.0,
                    "create_p99_ms": (ms(&last, 0.99) * 10.0).round() / 10.0,
                    "ready_jobs": depth.parse::<i64>().unwrap_or(-1),
                    "jobs_dead_tuples": dead.parse::<i64>().unwrap_or(-1),
                    "calls_dead_tuples": calls_dead.parse::<i64>().unwrap_or(-1),
                    "api_rss_mib": rss_bytes(api_pid) / (1024 * 1024),
                    "worker_rss_mib": rss_bytes(worker_pid) / (1024 * 1024),
                });
                println!("  soak {sample}");
                samples.lock().unwrap().push(sample);
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
        })
    };
    let before = completed_calls(&b.args.database_url);
    let run = drive(
        &b.http,
        &base,
        &sk,
        &agents,
        rate,
        time,
        Some(window.clone()),
    )
    .await;
    let completed = await_completed(
        &b.args.database_url,
        before,
        run.created,
        Duration::from_secs(60),
    )
    .await;
    sampler.abort();
    let _ = stop_tx.send(true);
    println!(
        "  soak: {} calls created at {rate}/s for {} s ({} errors: {:?}); {completed} completed; create p50 {:.1} ms, p99 {:.1} ms",
        run.created,
        time.as_secs(),
        run.errors,
        run.failures,
        ms(&run.latency, 0.5),
        ms(&run.latency, 0.99),
    );
    figures.push(figure(
        "6 soak (calls completed by simulated agents)",
        &format!("calls completed of {} created at {rate}/s", run.created),
        completed as f64,
        "calls",
        "calls created",
        run.created as f64,
        Some(("nothing lost", completed == run.created)),
    ));
    figures.push(figure(
        "6 soak",
        "creations refused or failed",
        run.errors as f64,
        "requests",
        "creations attempted",
        (run.created + run.errors) as f64,
        None,
    ));
    let samples = samples.lock().unwrap().clone();
    let max = |k: &str| {
        samples
            .iter()
            .filter_map(|s| s[k].as_i64())
            .max()
            .unwrap_or(0) as f64
    };
    let first = |k: &str| samples.first().and_then(|s| s[k].as_i64()).unwrap_or(0) as f64;
    for (k, unit) in [
        ("ready_jobs", "jobs"),
        ("jobs_dead_tuples", "tuples"),
        ("api_rss_mib", "MiB"),
        ("worker_rss_mib", "MiB"),
    ] {
        figures.push(figure(
            "6 soak",
            &format!("max {k} over the run"),
            max(k),
            unit,
            "first sample",
            first(k),
            None,
        ));
    }
    Ok(())
}
