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

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark stops at the first surprise

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

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

/// One figure of the table.
#[derive(Debug, Clone, serde::Serialize)]
struct Figure {
    bench: String,
    metric: String,
    value: f64,
    unit: String,
    baseline: String,
    baseline_value: f64,
    /// `value / baseline_value`.
    ratio: f64,
    target: Option<String>,
    met: Option<bool>,
}

fn figure(
    bench: &str,
    metric: &str,
    value: f64,
    unit: &str,
    baseline: &str,
    baseline_value: f64,
    target: Option<(&str, bool)>,
) -> Figure {
    Figure {
        bench: bench.into(),
        metric: metric.into(),
        value,
        unit: unit.into(),
        baseline: baseline.into(),
        baseline_value,
        ratio: if baseline_value == 0.0 {
            f64::NAN
        } else {
            value / baseline_value
        },
        target: target.map(|t| t.0.to_owned()),
        met: target.map(|t| t.1),
    }
}

/// A pushdial process, killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    fn pid(&self) -> u32 {
        self.0.id()
    }
}

struct Bench {
    args: Args,
    prefix: String,
    http: reqwest::Client,
    push_url: String,
    hook_port: u16,
    hook: Arc<Hooks>,
    /// When the loopback push service received each call's wake-up.
    pushed: Arc<Mutex<HashMap<String, Instant>>>,
}

/// What the loopback webhook receiver saw: arrival time per event id.
#[derive(Default)]
struct Hooks {
    arrived: Mutex<HashMap<String, Instant>>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Opens an api's `/metrics` on its own listener (`PUSHDIAL_METRICS_TOKEN`).
const BENCH_METRICS_TOKEN: &str = "bench-metrics";

impl Bench {
    fn start(&self, role: &str, port: u16) -> Proc {
        self.start_with(role, port, &[])
    }

    /// `start`, with more (or overriding) environment variables.
    fn start_with(&self, role: &str, port: u16, env: &[(&str, &str)]) -> Proc {
        let child = Command::new(&self.args.pushdial)
            .arg(role)
            .env("DATABASE_URL", &self.args.database_url)
            .env("REDIS_URL", &self.args.redis_url)
            .env("PUSHDIAL_REDIS_PREFIX", &self.prefix)
            .env("PUSHDIAL_LISTEN", format!("127.0.0.1:{port}"))
            .env("PUSHDIAL_LIMIT_IP_PER_SECOND", "1000000")
            .env("PUSHDIAL_LIMIT_CALLS_PER_NUMBER_PER_HOUR", "1000000000")
            .env("PUSHDIAL_LIMIT_PAIRING_PER_IP_PER_MINUTE", "1000000")
            .env("PUSHDIAL_LIMIT_PUSH_PER_DEVICE_PER_MINUTE", "1000000")
            .env("PUSHDIAL_LOOPBACK_PUSH_URL", &self.push_url)
            .env("PUSHDIAL_WEBHOOK_ALLOW_SUBNETS", "127.0.0.0/8")
            .env("PUSHDIAL_CALL_EXPIRES_IN", "10m")
            .env("PUSHDIAL_OFFER_TIMEOUT", "10m")
            .env("PUSHDIAL_SHUTDOWN_DRAIN", "0s")
            // The api serves its metrics (read for the server-side latency) to this bearer.
            .env("PUSHDIAL_METRICS_TOKEN", BENCH_METRICS_TOKEN)
            .env("RUST_LOG", "error")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("pushdial starts");
        Proc(child)
    }

    async fn ready(&self, port: u16) -> Result<()> {
        for _ in 0..200 {
            if let Ok(r) = self
                .http
                .get(format!("http://127.0.0.1:{port}/readyz"))
                .send()
                .await
            {
                if r.status() == 200 {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("pushdial on port {port} did not become ready")
    }

    fn admin(&self, args: &[&str]) -> Result<Value> {
        let out = Command::new(&self.args.pushdial)
            .arg("admin")
            .args(args)
            .env("DATABASE_URL", &self.args.database_url)
            .output()?;
        if !out.status.success() {
            bail!(
                "pushdial admin {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(serde_json::from_slice(&out.stdout)?)
    }

    /// An organization without plan limits in the way, with `agents` agents, each with a
    /// paired device that push can reach (so calls are accepted with no socket).
    async fn org(&self, base: &str, agents: usize) -> Result<(String, Vec<Device>)> {
        let org = self.admin(&["create-org", "--name", "bench"])?;
        let org_id = org["org_id"].as_str().context("org id")?.to_owned();
        let sk = org["secret_key"].as_str().context("secret key")?.to_owned();
        self.admin(&[
            "set-limits",
            "--org",
            &org_id,
            "--api-per-second",
            "1000000000",
            "--calls-per-minute",
            "1000000000",
        ])?;
        let mut devices = Vec::new();
        for i in 0..agents {
            devices.push(self.device(base, &sk, format!("agent {i}")).await?);
        }
        Ok((sk, devices))
    }

    async fn device(&self, base: &str, sk: &str, name: String) -> Result<Device> {
        let agent = self
            .post(base, sk, "/v1/agents", json!({ "name": name }))
            .await?;
        let agent_id = agent["id"].as_str().context("agent id")?.to_owned();
        let code = self
            .post(
                base,
                sk,
                "/v1/pairing_codes",
                json!({ "agent_id": agent_id }),
            )
            .await?;
        let paired: Value = self
            .http
            .post(format!("{base}/agent/v1/pair"))
            .json(&json!({"code": code["code"], "name": "phone", "platform": "cli"}))
            .send()
            .await?
            .json()
            .await?;
        let token = paired["token"].as_str().context("device token")?.to_owned();
        let r = self
            .http
            .put(format!("{base}/agent/v1/device"))
            .bearer_auth(&token)
            .json(&json!({"push": {"provider": "loopback", "token": "bench"}}))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("push registration: {}", r.status());
        }
        Ok(Device { agent_id, token })
    }

    async fn post(&self, base: &str, sk: &str, path: &str, body: Value) -> Result<Value> {
        let r = self
            .http
            .post(format!("{base}{path}"))
            .bearer_auth(sk)
            .json(&body)
            .send()
            .await?;
        let status = r.status();
        let v: Value = r.json().await.unwrap_or_default();
        if !status.is_success() {
            bail!("POST {path}: {status} {v}");
        }
        Ok(v)
    }
}

#[derive(Clone)]
struct Device {
    agent_id: String,
    token: String,
}

fn random_number() -> String {
    format!("+1212555{:04}", rand::random::<u16>() % 9000 + 1000)
}

/// One create-call request; its latency or an error.
async fn create_call(http: &reqwest::Client, base: &str, sk: &str, agent: &str) -> Result<Value> {
    let r = http
        .post(format!("{base}/v1/calls"))
        .bearer_auth(sk)
        .json(&json!({"to": random_number(), "agent_id": agent}))
        .send()
        .await?;
    if r.status() != 201 {
        let status = r.status();
        bail!(
            "create call: {status} {}",
            r.text().await.unwrap_or_default()
        );
    }
    Ok(r.json().await?)
}

// ---------------------------------------------------------------------------------------
// Baselines
// ---------------------------------------------------------------------------------------

/// The transaction one create-call commits, statement for statement (the call, its
/// timeline entry, the event, its webhook messages, the offer and expiry jobs), as a
/// pgbench script. The reads before it (key, policy, devices) are not in the baseline.
fn pgbench_script(org_id: &str, agent_id: &str) -> String {
    format!(
        r#"\set n random(1, 2000000000)
BEGIN;
INSERT INTO calls (id, org_id, agent_id, to_number, confirm, status, metadata, expires_at)
  VALUES ('call_pg' || CAST(:n AS text) || '_' || md5(random()::text), '{org_id}', '{agent_id}', '+12125550100', 'prompt', 'queued', '{{}}', now() + interval '10 minutes')
  RETURNING id \gset c_
INSERT INTO call_events (id, org_id, call_id, status, observed) VALUES ('evt_pg' || md5(random()::text), '{org_id}', CAST(:c_id AS text), 'queued', true);
INSERT INTO events (id, org_id, type, ordering_key, data) VALUES ('evt_pq' || md5(random()::text), '{org_id}', 'call.queued', CAST(:c_id AS text), '{{"id": "x", "status": "queued"}}') RETURNING id \gset e_
INSERT INTO webhook_messages (org_id, endpoint_id, event_id, ordering_key) SELECT '{org_id}', id, CAST(:e_id AS text), CAST(:c_id AS text) FROM webhook_endpoints WHERE org_id = '{org_id}' AND enabled AND (cardinality(event_types) = 0 OR 'call.queued' = any(event_types));
INSERT INTO jobs (kind, payload, run_at) VALUES ('bench.offer', json_build_object('call_id', CAST(:c_id AS text), 'org_id', '{org_id}')::jsonb, now() + interval '1 day'), ('bench.expire', json_build_object('call_id', CAST(:c_id AS text), 'org_id', '{org_id}')::jsonb, now() + interval '1 day');
COMMIT;
"#
    )
}

/// Runs pgbench; returns its stdout (and the transaction log lines with `-l`).
fn pgbench(
    database_url: &str,
    script: &str,
    extra: &[String],
    dir: &std::path::Path,
) -> Result<String> {
    let path = dir.join("create_call.sql");
    std::fs::write(&path, script)?;
    let out = Command::new("pgbench")
        .current_dir(dir)
        .args(["-n", "-M", "prepared", "-f"])
        .arg(&path)
        .args(extra)
        .arg(database_url)
        .output()
        .context("pgbench (from PostgreSQL's client tools) must be installed")?;
    if !out.status.success() {
        bail!("pgbench: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn pgbench_tps(out: &str) -> Result<f64> {
    out.lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow!("no tps in pgbench output:\n{out}"))
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

// ---------------------------------------------------------------------------------------
// 1 and 2: create-call throughput and open-loop latency
// ---------------------------------------------------------------------------------------

async fn throughput(b: &Bench, figures: &mut Vec<Figure>) -> Result<f64> {
    let port = free_port();
    let api = b.start("api", port); // no worker: calls stay queued
    b.ready(port).await?;
    let base = format!("http://127.0.0.1:{port}");
    let (sk, devices) = b.org(&base, 20).await?;
    let org_id = b.admin(&["create-org", "--name", "pgbench"])?["org_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let pg_agent = {
        let v: Value = sqlx_free_agent(&b.args.database_url, &org_id)?;
        v.as_str().unwrap().to_owned()
    };
    let dir = std::env::temp_dir().join(format!("pushdial-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let load = Load {
        base,
        sk,
        devices,
        script: pgbench_script(&org_id, &pg_agent),
        dir: dir.clone(),
    };
    // Warm up both paths.
    run_closed(
        &b.http,
        &load.base,
        &load.sk,
        &load.devices,
        8,
        Duration::from_secs(2),
    )
    .await;
    let mut best = 0.0f64;
    for &c in &b.args.concurrency {
        let pass = throughput_pass(b, &load, c).await?;
        best = best.max(pass.rps);
        figures.push(figure(
            "1 create-call throughput",
            &format!("CPU µs per call at concurrency {c} (all processes)"),
            pass.per_call,
            "µs",
            "CPU µs per pgbench transaction, same concurrency",
            pass.per_tx,
            None,
        ));
        figures.push(figure(
            "1 create-call throughput",
            &format!("calls/s at concurrency {c}"),
            pass.rps,
            "1/s",
            "pgbench, same transaction, same concurrency",
            pass.tps,
            Some(("≥ 0.7× baseline", pass.rps / pass.tps >= 0.7)),
        ));
    }
    // The same with PostgreSQL on a core of its own and everything else on the others: a
    // database with a machine of its own, as in production, where what saturates first is
    // the database's work per call, not the api sharing its cores.
    match CoreSplit::apply(&[api.pid()]) {
        Ok(split) => {
            println!(
                "  with PostgreSQL alone on core 0, the rest on {}:",
                split.rest
            );
            for &c in &b.args.concurrency {
                let pass = throughput_pass(b, &load, c).await?;
                figures.push(figure(
                    "1 create-call throughput, PostgreSQL on a core of its own",
                    &format!("calls/s at concurrency {c}"),
                    pass.rps,
                    "1/s",
                    "pgbench, same transaction, same concurrency, same cores",
                    pass.tps,
                    Some(("≥ 0.7× baseline", pass.rps / pass.tps >= 0.7)),
                ));
            }
        }
        Err(e) => println!("  not measured with PostgreSQL on a core of its own: {e:#}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(best)
}

/// What one throughput pass drives: the api's org and the pgbench script.
struct Load {
    base: String,
    sk: String,
    devices: Vec<Device>,
    script: String,
    dir: std::path::PathBuf,
}

/// One throughput pass at concurrency `c`: the api, then pgbench, each for the run's seconds.
struct Pass {
    rps: f64,
    tps: f64,
    /// The machine's CPU time per call, and per pgbench transaction, in µs.
    per_call: f64,
    per_tx: f64,
}

async fn throughput_pass(b: &Bench, load: &Load, c: usize) -> Result<Pass> {
    let cpu0 = cpu_by_command();
    let busy0 = busy_seconds();
    let t0 = Instant::now();
    let (done, errors) = run_closed(
        &b.http,
        &load.base,
        &load.sk,
        &load.devices,
        c,
        Duration::from_secs(b.args.seconds),
    )
    .await;
    let busy = busy_seconds() - busy0;
    let shares = cpu_share(&cpu0, &cpu_by_command(), t0.elapsed());
    let rps = done as f64 / b.args.seconds as f64;
    // pgbench's connections end with it, and their processes' time with them: the
    // machine's busy time is read while it runs, a second from each end.
    let run = {
        let (url, script, dir) = (
            b.args.database_url.clone(),
            load.script.clone(),
            load.dir.clone(),
        );
        let extra: Vec<String> = vec![
            "-c".into(),
            c.to_string(),
            "-j".into(),
            c.min(2).to_string(),
            "-T".into(),
            b.args.seconds.to_string(),
        ];
        tokio::task::spawn_blocking(move || pgbench(&url, &script, &extra, &dir))
    };
    let window = Duration::from_secs(b.args.seconds.saturating_sub(2).max(1));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pg_busy0 = busy_seconds();
    tokio::time::sleep(window).await;
    let pg_busy = busy_seconds() - pg_busy0;
    let out = run.await??;
    let tps = pgbench_tps(&out)?;
    println!("  throughput c={c}: {rps:.0} calls/s, pgbench {tps:.0} tx/s ({errors} errors)");
    let per_call = busy / done.max(1) as f64 * 1e6;
    let per_tx = pg_busy / (tps * window.as_secs_f64()).max(1.0) * 1e6;
    // PostgreSQL's share is what is left: its backends come and go with the pool, and an
    // exited process's time cannot be read.
    let part =
        |name: &str| shares.get(name).and_then(Value::as_f64).unwrap_or(0.0) / rps.max(1.0) * 1e6;
    let (api, redis, generator) = (
        part("pushdial"),
        part("redis-server"),
        part("pushdial-bench"),
    );
    println!(
        "  CPU per call {per_call:.0} µs (pushdial {api:.0}, redis {redis:.0}, load generator {generator:.0}, postgres and the kernel {:.0}); per pgbench transaction {per_tx:.0} µs",
        per_call - api - redis - generator,
    );
    Ok(Pass {
        rps,
        tps,
        per_call,
        per_tx,
    })
}

/// PostgreSQL's processes on core 0; the api (`pids`), Redis and this process (its load
/// generators and pgbench, started after) on the other cores. Each process's former
/// affinity comes back when dropped. New PostgreSQL backends fork from the pinned
/// postmaster, so they stay on core 0.
struct CoreSplit {
    /// The cores left to everything but PostgreSQL, as taskset writes them.
    rest: String,
    /// Each pinned process and the cores it was allowed before.
    before: Vec<(u32, String)>,
}

impl CoreSplit {
    fn apply(pids: &[u32]) -> Result<CoreSplit> {
        let cores = machine_cores();
        if cores < 2 {
            bail!("this machine has one core");
        }
        let rest = if cores == 2 {
            "1".to_owned()
        } else {
            format!("1-{}", cores - 1)
        };
        let mut split = CoreSplit {
            rest: rest.clone(),
            before: Vec::new(),
        };
        let mut others: Vec<u32> = pids.to_vec();
        others.push(std::process::id());
        others.extend(pids_named("redis-server"));
        let postgres = pids_named("postgres");
        if postgres.is_empty() {
            bail!("no postgres process on this machine (a remote database)");
        }
        let allowed = |pid: u32| {
            std::fs::read_to_string(format!("/proc/{pid}/status"))
                .unwrap_or_default()
                .lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                .map(|v| v.trim().to_owned())
        };
        let plan: Vec<(u32, String, String)> = [(postgres, "0".to_owned()), (others, rest)]
            .into_iter()
            .flat_map(|(group, cpus)| group.into_iter().map(move |pid| (pid, cpus.clone())))
            .filter_map(|(pid, cpus)| allowed(pid).map(|was| (pid, was, cpus)))
            .collect();
        // Written before anything moves, for `scripts/bench` to restore should this
        // process be killed before it does so itself.
        let record: String = plan
            .iter()
            .map(|(pid, was, _)| format!("{pid} {was}\n"))
            .collect();
        std::fs::write(cores_file(), record).context("recording the cores to restore")?;
        for (pid, was, cpus) in plan {
            split.before.push((pid, was));
            taskset(pid, &cpus)?;
        }
        Ok(split)
    }
}

/// Where the cores to restore are recorded while the split lasts (`scripts/bench` reads
/// the same path).
fn cores_file() -> std::path::PathBuf {
    std::env::temp_dir().join("pushdial-bench-cores")
}

impl Drop for CoreSplit {
    fn drop(&mut self) {
        let mut restored = true;
        for (pid, allowed) in &self.before {
            if let Err(e) = taskset(*pid, allowed) {
                restored = false;
                eprintln!("pushdial-bench: the cores of process {pid} were not restored: {e:#}");
            }
        }
        if restored {
            let _ = std::fs::remove_file(cores_file());
        }
    }
}

/// Sets the cores of every thread of `pid` (it may have exited: not an error).
fn taskset(pid: u32, cpus: &str) -> Result<()> {
    let out = Command::new("taskset")
        .args(["-a", "-p", "-c", cpus, &pid.to_string()])
        .output()
        .context("taskset (util-linux)")?;
    if !out.status.success() && std::path::Path::new(&format!("/proc/{pid}")).exists() {
        bail!("taskset: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// The processes whose command is `name`.
fn pids_named(name: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim_end() == name)
        })
        .collect()
}

/// Drops the jobs earlier phases left queued (calls created with the worker paused), so
/// that a phase with a worker measures its own work, not a backlog.
fn clear_jobs(database_url: &str) -> Result<()> {
    let out = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", database_url, "-c"])
        .arg("delete from jobs")
        .output()?;
    if !out.status.success() {
        bail!("psql: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// An agent row for pgbench's inserts (the calls table references agents).
fn sqlx_free_agent(database_url: &str, org_id: &str) -> Result<Value> {
    let id = format!("agt_pgbench{:x}", rand::random::<u64>());
    let out = Command::new("psql")
        .args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", database_url, "-c"])
        .arg(format!(
            "insert into agents (id, org_id, name) values ('{id}', '{org_id}', 'pgbench') returning id"
        ))
        .output()?;
    if !out.status.success() {
        bail!("psql: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(Value::from(id))
}

/// `c` clients creating calls back to back for `time`; (successes, errors).
async fn run_closed(
    http: &reqwest::Client,
    base: &str,
    sk: &str,
    devices: &[Device],
    c: usize,
    time: Duration,
) -> (u64, u64) {
    let deadline = Instant::now() + time;
    let mut tasks = Vec::new();
    for i in 0..c {
        let (http, base, sk) = (http.clone(), base.to_owned(), sk.to_owned());
        let agents: Vec<String> = devices.iter().map(|d| d.agent_id.clone()).collect();
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut err) = (0u64, 0u64);
            let mut k = i;
            while Instant::now() < deadline {
                k += 1;
                match create_call(&http, &base, &sk, &agents[k % agents.len()]).await {
                    Ok(_) => ok += 1,
                    Err(e) => {
                        err += 1;
                        if err == 1 {
                            eprintln!("  create call failed: {e}");
                        }
                    }
                }
            }
            (ok, err)
        }));
    }
    let mut total = (0, 0);
    for t in tasks {
        let (ok, err) = t.await.unwrap_or((0, 0));
        total.0 += ok;
        total.1 += err;
    }
    total
}

/// Create-call requests for `open_loop`, spread over `agents`.
fn calls_to(
    http: &reqwest::Client,
    base: &str,
    sk: &str,
    agents: &Arc<Vec<String>>,
) -> impl Fn(u64) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>>
       + Send
       + Sync
       + 'static {
    let (http, base, sk, agents) = (http.clone(), base.to_owned(), sk.to_owned(), agents.clone());
    move |i| {
        let (http, base, sk, agents) = (http.clone(), base.clone(), sk.clone(), agents.clone());
        Box::pin(async move {
            create_call(&http, &base, &sk, &agents[i as usize % agents.len()])
                .await
                .is_ok()
        })
    }
}

/// Load before an open-loop measurement, at its rate, not counted: a fresh api process
/// opens its database connections and prepares its statements under the first requests
/// (about 20 requests of up to 200 ms on the development machine).
const WARM_UP: Duration = Duration::from_secs(2);

/// Requests sent at a constant rate regardless of answers; each latency counted from the
/// request's intended start (so a stall shows in every request it delayed).
async fn open_loop<F, Fut>(rate: f64, time: Duration, one: F) -> (Histogram<u64>, u64)
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    open_loop_windowed(rate, time, None, one).await
}

/// `open_loop`, also recording each success into `window` (which a sampler may empty to
/// see the latency of the last interval rather than of the whole run).
async fn open_loop_windowed<F, Fut>(
    rate: f64,
    time: Duration,
    window: Option<Arc<Mutex<Histogram<u64>>>>,
    one: F,
) -> (Histogram<u64>, u64)
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    let one = Arc::new(one);
    let hist = Arc::new(Mutex::new(Histogram::<u64>::new(3).unwrap()));
    let errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let start = Instant::now();
    let total = (rate * time.as_secs_f64()) as u64;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..total {
        let intended = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(intended.into()).await;
        let (one, hist, errors, window) =
            (one.clone(), hist.clone(), errors.clone(), window.clone());
        tasks.spawn(async move {
            let ok = one(i).await;
            let micros = intended.elapsed().as_micros() as u64;
            if micros > 50_000 && std::env::var_os("BENCH_STALLS").is_some() {
                eprintln!(
                    "stall: request {i} at {:.3} s took {} ms",
                    (intended - start).as_secs_f64(),
                    micros / 1000
                );
            }
            if ok {
                let _ = hist.lock().unwrap().record(micros.max(1));
                if let Some(window) = &window {
                    let _ = window.lock().unwrap().record(micros.max(1));
                }
            } else {
                errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let h = hist.lock().unwrap().clone();
    (h, errors.load(std::sync::atomic::Ordering::Relaxed))
}

async fn latency(b: &Bench, max_rps: f64, figures: &mut Vec<Figure>) -> Result<()> {
    let port = free_port();
    let _api = b.start("api", port);
    b.ready(port).await?;
    let base = format!("http://127.0.0.1:{port}");
    let (sk, devices) = b.org(&base, 20).await?;
    let rate = (max_rps * 0.7).max(1.0);
    let time = Duration::from_secs(b.args.seconds);
    let agents: Arc<Vec<String>> = Arc::new(devices.iter().map(|d| d.agent_id.clone()).collect());
    // Steady state, as pgbench's (connected before its clock starts): a fresh process
    // first opens its database connections and prepares its statements.
    open_loop(rate, WARM_UP, calls_to(&b.http, &base, &sk, &agents)).await;
    let (hist, errors) = open_loop(rate, time, calls_to(&b.http, &base, &sk, &agents)).await;

    // Where the time went: the api's own view of the same requests (its histogram, from
    // reading the request to writing the answer), beside what the client saw.
    let server = server_side(&b.http, &base, "/v1/calls", "POST").await;
    println!("  the api's own timing of POST /v1/calls: {server}");

    // pgbench at the same rate, latency from scheduled start (time + schedule lag).
    let org_id = b.admin(&["create-org", "--name", "pgbench"])?["org_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let agent = sqlx_free_agent(&b.args.database_url, &org_id)?;
    let dir = std::env::temp_dir().join(format!("pushdial-bench-lat-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    pgbench(
        &b.args.database_url,
        &pgbench_script(&org_id, agent.as_str().unwrap()),
        &[
            "-c".into(),
            "16".into(),
            "-j".into(),
            "2".into(),
            "-R".into(),
            format!("{rate:.0}"),
            "-T".into(),
            b.args.seconds.to_string(),
            "-l".into(),
            "--log-prefix=pgb".into(),
        ],
        &dir,
    )?;
    let mut pg = Histogram::<u64>::new(3).unwrap();
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        if !path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("pgb")
        {
            continue;
        }
        for line in std::fs::read_to_string(&path)?.lines() {
            // client_id transaction_no time script_no time_epoch time_us schedule_lag
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() >= 7 {
                let t: u64 = f[2].parse().unwrap_or(0);
                let lag: u64 = f[6].parse().unwrap_or(0);
                let _ = pg.record((t + lag).max(1));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "  latency at {rate:.0}/s: p50 {:.2} ms p99 {:.2} ms p99.9 {:.2} ms ({errors} errors); pgbench p99 {:.2} ms",
        ms(&hist, 0.5),
        ms(&hist, 0.99),
        ms(&hist, 0.999),
        ms(&pg, 0.99)
    );
    for (q, name) in [(0.5, "p50"), (0.99, "p99"), (0.999, "p99.9")] {
        let target = (q == 0.99).then(|| ("p99 < 15 ms", ms(&hist, q) < 15.0));
        figures.push(figure(
            "2 create-call latency (open loop, 70 % of max)",
            &format!("{name} at {rate:.0}/s"),
            ms(&hist, q),
            "ms",
            "pgbench, same transaction, same rate, from scheduled start",
            ms(&pg, q),
            target,
        ));
    }
    Ok(())
}

/// The share of an api route's requests above each bound of its latency histogram, as the
/// api itself measured them (Prometheus text from `/metrics`).
async fn server_side(http: &reqwest::Client, base: &str, route: &str, method: &str) -> String {
    let Ok(text) = async {
        http.get(format!("{base}/metrics"))
            .bearer_auth(BENCH_METRICS_TOKEN)
            .send()
            .await?
            .text()
            .await
    }
    .await
    else {
        return "unavailable".into();
    };
    let wanted = format!("route=\"{route}\"");
    let mut buckets: Vec<(f64, f64)> = text
        .lines()
        .filter(|l| {
            l.starts_with("pushdial_http_request_duration_seconds_bucket")
                && l.contains(&wanted)
                && l.contains(&format!("method=\"{method}\""))
        })
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            let n: f64 = l.rsplit(' ').next()?.parse().ok()?;
            Some((le, n))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let Some(&(_, total)) = buckets.last() else {
        return "no samples".into();
    };
    buckets
        .iter()
        .filter(|(le, _)| le.is_finite() && *le >= 0.005)
        .map(|(le, n)| {
            format!(
                "{:.2} % over {} ms",
                100.0 * (total - n) / total.max(1.0),
                le * 1000.0
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------------------
// 3: click to offer
// ---------------------------------------------------------------------------------------

async fn connect(base: &str, token: &str) -> Result<Ws> {
    let url = format!("{}/agent/v1/stream", base.replace("http://", "ws://"));
    let mut req =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)?;
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    let (ws, _) = tokio_tungstenite::connect_async(req).await?;
    Ok(ws)
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Keeps a socket alive with heartbeats, calling `on_offer` with each offered call id.
async fn hold_socket(
    mut ws: Ws,
    on_offer: impl Fn(String) + Send,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut every = Duration::from_secs(20);
    let mut tick = tokio::time::interval(every);
    let mut stop = stop;
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = tick.tick() => {
                if ws.send(Message::Text(r#"{"type":"heartbeat"}"#.into())).await.is_err() {
                    break;
                }
            }
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).unwrap_or_default();
                    match v["type"].as_str() {
                        Some("call.offer") => {
                            if let Some(id) = v["call_id"].as_str() {
                                on_offer(id.to_owned());
                            }
                        }
                        Some("hello") => {
                            if let Some(s) = v["heartbeat_interval_s"].as_u64() {
                                every = Duration::from_secs(s.max(1));
                                tick = tokio::time::interval(every);
                                tick.tick().await;
                            }
                        }
                        _ => {}
                    }
                }
                Some(Ok(_)) => {}
                _ => break,
            }
        }
    }
    let _ = ws.close(None).await;
}

async fn click_to_offer(b: &Bench, figures: &mut Vec<Figure>) -> Result<()> {
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

/// Latency of PUBLISH → message on a subscribed connection, at `rate`.
async fn redis_hop(url: &str, rate: f64, time: Duration) -> Result<Histogram<u64>> {
    let client = redis::Client::open(url)?;
    let mut pubsub = client.get_async_pubsub().await?;
    let channel = format!("pushdial-bench-{}", rand::random::<u32>());
    pubsub.subscribe(&channel).await?;
    let sent: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let hist = Arc::new(Mutex::new(Histogram::<u64>::new(3).unwrap()));
    let (s2, h2) = (sent.clone(), hist.clone());
    let reader = tokio::spawn(async move {
        let mut stream = pubsub.on_message();
        while let Some(msg) = stream.next().await {
            let n: u64 = msg
                .get_payload::<String>()
                .unwrap_or_default()
                .parse()
                .unwrap_or(0);
            if let Some(at) = s2.lock().unwrap().get(&n) {
                let _ = h2
                    .lock()
                    .unwrap()
                    .record(at.elapsed().as_micros().max(1) as u64);
            }
        }
    });
    let mut conn = client.get_multiplexed_async_connection().await?;
    let start = Instant::now();
    let total = (rate * time.as_secs_f64()) as u64;
    for i in 0..total {
        tokio::time::sleep_until((start + Duration::from_secs_f64(i as f64 / rate)).into()).await;
        sent.lock().unwrap().insert(i, Instant::now());
        let _: () = redis::cmd("PUBLISH")
            .arg(&channel)
            .arg(i.to_string())
            .query_async(&mut conn)
            .await?;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    reader.abort();
    let h = hist.lock().unwrap().clone();
    Ok(h)
}

// ---------------------------------------------------------------------------------------
// 4: webhook delivery
// ---------------------------------------------------------------------------------------

async fn start_receiver(hooks: Arc<Hooks>, port: u16) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let app = poem::Route::new().at(
        "/hook",
        poem::post(poem::endpoint::make(move |req: poem::Request| {
            let hooks = hooks.clone();
            async move {
                if let Some(id) = req.header("webhook-id") {
                    hooks
                        .arrived
                        .lock()
                        .unwrap()
                        .insert(id.to_owned(), Instant::now());
                }
                poem::http::StatusCode::NO_CONTENT
            }
        })),
    );
    tokio::spawn(async move {
        let acceptor = poem::listener::TcpAcceptor::from_tokio(listener).unwrap();
        let _ = poem::Server::new_with_acceptor(acceptor).run(app).await;
    });
    Ok(())
}

async fn webhooks(b: &Bench, figures: &mut Vec<Figure>) -> Result<()> {
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

// ---------------------------------------------------------------------------------------
// 6: soak
// ---------------------------------------------------------------------------------------

/// What an answering agent does with an offer: ack, then report `completed`.
fn answer_offer(http: reqwest::Client, base: String, token: String) -> impl Fn(String) + Send {
    move |id| {
        let (http, base, token) = (http.clone(), base.clone(), token.clone());
        tokio::spawn(async move {
            let ack = format!("{base}/agent/v1/calls/{id}/ack");
            if agent_post(&http, &ack, &token, None).await {
                let report = format!("{base}/agent/v1/calls/{id}/events");
                let done = json!({"status": "completed", "duration_s": 1});
                agent_post(&http, &report, &token, Some(&done)).await;
            }
        });
    }
}

/// One POST of a phone agent, retried as the reference agent does when the server is
/// unreachable, overloaded (503) or limiting (429): after `Retry-After`, else a growing
/// pause, each spread by a random half either way (agents refused together must not all
/// come back together), for up to about a minute. `true` once it succeeded.
async fn agent_post(http: &reqwest::Client, url: &str, token: &str, body: Option<&Value>) -> bool {
    let mut pause = Duration::from_millis(100);
    for _ in 0..12 {
        let mut req = http.post(url).bearer_auth(token);
        if let Some(body) = body {
            req = req.json(body);
        }
        match req.send().await {
            Ok(r) if r.status().is_success() => return true,
            Ok(r) if r.status().as_u16() != 429 && !r.status().is_server_error() => return false,
            Ok(r) => {
                let after = r
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                    .map(Duration::from_secs);
                tokio::time::sleep(jitter(after.unwrap_or(pause))).await;
            }
            Err(_) => tokio::time::sleep(jitter(pause)).await,
        }
        pause = (pause * 2).min(Duration::from_secs(5));
    }
    false
}

/// `d` spread uniformly over [d/2, 3d/2).
fn jitter(d: Duration) -> Duration {
    d.mul_f64(0.5 + rand::random::<f64>())
}

fn psql_value(database_url: &str, sql: &str) -> String {
    Command::new("psql")
        .args(["-X", "-q", "-t", "-A", database_url, "-c", sql])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

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

async fn soak(b: &Bench, figures: &mut Vec<Figure>) -> Result<()> {
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

// ---------------------------------------------------------------------------------------
// 5: agent sockets
// ---------------------------------------------------------------------------------------

fn rss_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

/// CPU seconds used so far by every process, summed by command name (pushdial, postgres,
/// redis-server, pushdial-bench …): what saturates first shows in the difference of two
/// readings.
fn cpu_by_command() -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let comm = stat
            .split_once('(')
            .and_then(|(_, rest)| rest.rsplit_once(')'))
            .map(|(c, _)| c.to_owned())
            .unwrap_or_default();
        if let Ok(pid) = name.to_string_lossy().parse::<u32>() {
            *out.entry(comm).or_insert(0.0) += cpu_seconds(pid);
        }
    }
    out
}

/// The CPU each command used between two readings, as a share of the machine.
fn cpu_share(before: &HashMap<String, f64>, after: &HashMap<String, f64>, wall: Duration) -> Value {
    let cores = machine_cores() as f64;
    let mut used: Vec<(String, f64)> = after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v > 0.01)
        .collect();
    used.sort_by(|a, b| b.1.total_cmp(&a.1));
    let total: f64 = used.iter().map(|(_, v)| v).sum();
    println!(
        "  CPU: {:.0} % of {cores} cores busy — {}",
        total / wall.as_secs_f64() / cores * 100.0,
        used.iter()
            .take(5)
            .map(|(k, v)| format!("{k} {:.0} %", v / wall.as_secs_f64() * 100.0))
            .collect::<Vec<_>>()
            .join(", ")
    );
    json!(used
        .iter()
        .map(|(k, v)| (k.clone(), json!(v / wall.as_secs_f64())))
        .collect::<serde_json::Map<String, Value>>())
}

/// The machine's cores (not this process's: the core split narrows those).
fn machine_cores() -> usize {
    std::fs::read_to_string("/proc/stat")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count()
        .max(1)
}

/// CPU time the whole machine has spent busy (not idle or waiting for I/O), in seconds.
fn busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: all but idle and iowait.
    let busy: f64 = ticks
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| v)
        .sum();
    busy / 100.0
}

/// CPU seconds (user + system) the process used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 of /proc/PID/stat (utime, stime), counted after the name.
    (ticks(11) + ticks(12)) / 100.0
}

async fn sockets(b: &Bench, figures: &mut Vec<Figure>) -> Result<()> {
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

/// Hostile clients against one api: four bodies of 50 MiB streamed at `POST
/// /agent/v1/pair` with an `Upgrade:` header (which once skipped the body limit: the api's
/// RSS grew by 150 MiB each and kept it), and a hundred connections trickling their request
/// heads a byte at a time. Baseline: the same process idle just before.
async fn hostile(b: &Bench, figures: &mut Vec<Figure>) -> Result<()> {
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

// ---------------------------------------------------------------------------------------

fn machine(database_url: &str) -> Value {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let mem = read("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal"))
        .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_owned())
        .unwrap_or_default();
    let cmd = |c: &str, a: &[&str]| {
        Command::new(c)
            .args(a)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    json!({
        "cpus": machine_cores(),
        "cpu_model": cpu,
        "memory_kib": mem.parse::<u64>().unwrap_or(0),
        "kernel": cmd("uname", &["-r"]),
        "postgres": cmd("psql", &["--version"]),
        "redis": cmd("redis-server", &["--version"]),
        "rustc": cmd("rustc", &["--version"]),
        // Dead tuples in the soak depend on it (the jobs table is tuned for autovacuum).
        "postgres_autovacuum": psql_value(database_url, "show autovacuum"),
    })
}

// ---------------------------------------------------------------------------------------
// 8: noisy neighbour
// ---------------------------------------------------------------------------------------

/// Calls per second organization B places in the noisy-neighbour benchmark.
const NOISY_RATE: f64 = 100.0;

/// Webhook endpoints of organization A, each on a receiver that never answers.
const NOISY_ENDPOINTS: usize = 50;

/// A receiver that accepts connections and never answers: every delivery to it holds its
/// worker slot until the delivery timeout.
async fn tarpit() -> Result<u16> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    Ok(port)
}

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
async fn noisy(b: &Bench, figures: &mut Vec<Figure>) -> Result<()> {
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

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let hook_port = free_port();
    let hooks = Arc::new(Hooks::default());
    start_receiver(hooks.clone(), hook_port).await?;
    // The loopback push service: accepts every wake-up, noting when each call's came.
    let push_port = free_port();
    let pushed: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", push_port)).await?;
        let pushed = pushed.clone();
        let app = poem::Route::new().at(
            "/push",
            poem::post(poem::endpoint::make(move |req: poem::Request| {
                let pushed = pushed.clone();
                async move {
                    let at = Instant::now();
                    let body: Value = req.into_body().into_json().await.unwrap_or_default();
                    if let Some(call) = body["payload"]["call_id"].as_str() {
                        pushed.lock().unwrap().insert(call.to_owned(), at);
                    }
                    poem::http::StatusCode::OK
                }
            })),
        );
        tokio::spawn(async move {
            let acceptor = poem::listener::TcpAcceptor::from_tokio(listener).unwrap();
            let _ = poem::Server::new_with_acceptor(acceptor).run(app).await;
        });
    }
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
    println!(
        "{:<52} {:<34} {:>12} {:>12} {:>8}  target",
        "benchmark", "metric", "value", "baseline", "ratio"
    );
    for f in &figures {
        println!(
            "{:<52} {:<34} {:>9.2} {:<2} {:>12.2} {:>8.2}  {}",
            f.bench.chars().take(52).collect::<String>(),
            f.metric.chars().take(34).collect::<String>(),
            f.value,
            f.unit.chars().take(2).collect::<String>(),
            f.baseline_value,
            f.ratio,
            match (&f.target, f.met) {
                (Some(t), Some(true)) => format!("{t}: met"),
                (Some(t), _) => format!("{t}: NOT met"),
                _ => String::new(),
            }
        );
    }
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
