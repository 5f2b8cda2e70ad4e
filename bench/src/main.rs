//! `pushdial-bench`: how fast pushdial is on this machine, each figure beside a baseline
//! measured in the same run — the physical limit of the same work — as a ratio, since
//! absolute times on a shared machine mean little. Started by `scripts/bench`, which
//! builds everything in release mode and gives this program a database of its own.
//!
//! 1. create-call throughput (worker paused) vs pgbench running the same transaction;
//! 2. create-call latency, open loop at 70 % of that maximum, from each request's intended
//!    start, vs pgbench at the same rate (also from intended start);
//! 3. click to offer: request sent → `call.offer` on the agent's socket (the api offers a
//!    live device in the create transaction, so the offer usually beats the 201), vs a
//!    Redis pub/sub hop;
//! 4. webhook delivery: event committed → signed request received, vs a direct loopback
//!    POST; and the sustained deliveries per second;
//! 5. agent sockets: memory and CPU of one api process holding N sockets with heartbeats,
//!    vs the same process idle.
//! 8. noisy neighbour (`--only noisy`): organization B's click to offer through push at
//!    100 calls/s while organization A floods webhook endpoints that never answer, vs B
//!    alone.
//!
//! Each benchmark is a module of its own (`throughput`, `latency`, `offer`, `webhooks`,
//! `sockets`, `soak`, `hostile`, `noisy`), over shared ones: `fixtures` (processes, orgs,
//! devices), `load` (closed and open loops), `agent` (simulated phones), `loopback` (the
//! servers pushdial talks to), `baseline`, `system` (CPU, memory, cores) and `report`.
//! This file parses the arguments and runs the benchmarks in order.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark stops at the first surprise

mod agent;
mod baseline;
mod fixtures;
mod hostile;
mod latency;
mod load;
mod loopback;
mod noisy;
mod offer;
mod report;
mod soak;
mod sockets;
mod system;
mod throughput;
mod webhooks;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Result;
use clap::Parser;
use serde_json::json;

use crate::fixtures::{free_port, Bench};
use crate::hostile::hostile;
use crate::latency::latency;
use crate::loopback::{start_push, start_receiver, Hooks};
use crate::noisy::noisy;
use crate::offer::click_to_offer;
use crate::report::print_table;
use crate::soak::soak;
use crate::sockets::sockets;
use crate::system::machine;
use crate::throughput::throughput;
use crate::webhooks::webhooks;

#[derive(Parser, Debug, Clone)]
#[command(name = "pushdial-bench")]
struct Args {
    /// The pushdial binary (release).
    #[arg(long, default_value = "target/release/pushdial")]
    pushdial: String,
    /// A database for the benchmark alone (it is written to heavily).
    #[arg(long, env = "BENCH_DATABASE_URL")]
    database_url: String,
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// Where the JSON results go.
    #[arg(long, default_value = "bench/results")]
    out: String,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrencies of the throughput benchmark.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    concurrency: Vec<usize>,
    /// Sockets held in the socket benchmark (each end needs a file descriptor).
    #[arg(long, default_value_t = 5000)]
    sockets: usize,
    /// Calls per second of the click-to-offer benchmark.
    #[arg(long, default_value_t = 500.0)]
    offer_rate: f64,
    /// Length of the soak benchmark (only run when named in --only: `--only soak`).
    #[arg(long, default_value_t = 1800)]
    soak_seconds: u64,
    /// Calls per second of the soak. Each call is three api requests (create, ack,
    /// report) and its jobs. Default: 60 % of the loop's maximum, measured first on the
    /// same processes (the highest rate in a ladder at which every call is created and
    /// completed and creation's p99 stays under 100 ms).
    #[arg(long)]
    soak_rate: Option<f64>,
    /// Arrival rate of the latency benchmark, instead of 70 % of the measured maximum
    /// (to trace the latency curve; the throughput benchmark is then skipped).
    #[arg(long)]
    latency_rate: Option<f64>,
    /// Only these benchmarks (throughput, latency, offer, webhook, sockets, hostile, noisy,
    /// soak).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let hook_port = free_port();
    let hooks = Arc::new(Hooks::default());
    start_receiver(hooks.clone(), hook_port).await?;
    let push_port = free_port();
    let pushed: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    start_push(pushed.clone(), push_port).await?;
    let b = Bench {
        prefix: format!("bench{:x}:", rand::random::<u32>()),
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()?,
        push_url: format!("http://127.0.0.1:{push_port}/push"),
        hook_port,
        hook: hooks,
        pushed,
        args,
    };
    let wants = |name: &str| b.args.only.is_empty() || b.args.only.iter().any(|o| o == name);
    let mut figures = Vec::new();
    let started = chrono::Utc::now();
    println!("pushdial-bench: {} s per measurement", b.args.seconds);
    let mut max_rps = 0.0;
    if let Some(rate) = b.args.latency_rate {
        max_rps = rate / 0.7;
    } else if wants("throughput") || wants("latency") {
        println!("1. create-call throughput");
        max_rps = throughput(&b, &mut figures).await?;
    }
    if wants("latency") {
        println!("2. create-call latency, open loop");
        latency(&b, max_rps, &mut figures).await?;
    }
    if wants("offer") {
        println!("3. click to offer");
        click_to_offer(&b, &mut figures).await?;
    }
    if wants("webhook") {
        println!("4. webhook delivery");
        webhooks(&b, &mut figures).await?;
    }
    if wants("sockets") {
        println!("5. agent sockets");
        sockets(&b, &mut figures).await?;
    }
    if wants("hostile") {
        println!("7. hostile clients");
        hostile(&b, &mut figures).await?;
    }
    if wants("noisy") {
        println!("8. noisy neighbour");
        noisy(&b, &mut figures).await?;
    }
    // The soak takes half an hour by default: only when asked for by name.
    if b.args.only.iter().any(|o| o == "soak") {
        println!("6. soak, {} s", b.args.soak_seconds);
        soak(&b, &mut figures).await?;
    }

    println!();
    print_table(&figures);
    std::fs::create_dir_all(&b.args.out)?;
    let path = format!("{}/{}.json", b.args.out, started.format("%Y%m%dT%H%M%SZ"));
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&json!({
            "started_at": started,
            "seconds_per_measurement": b.args.seconds,
            "machine": machine(&b.args.database_url),
            "figures": figures,
        }))?,
    )?;
    println!("\nresults: {path}");
    Ok(())
}
