//! pushdial-chaos: calls driven through two `pushdial api` and two `pushdial worker`
//! processes by phones that answer them, while operators' faults happen one after another:
//! a worker killed (SIGKILL), an api killed (SIGKILL), every PostgreSQL connection of the
//! database terminated (SQLSTATE 57P01, what a restart does to sessions), and a Redis
//! restart (killed, down 2 s, back empty). Everything is black-box, through the documented
//! API: calls created with `POST /v1/calls`, phones on `/agent/v1/stream`, webhooks
//! received by a loopback endpoint. It prints what a customer would count — calls created,
//! completed, not completed (by reason), creates refused while their phone was connected,
//! 5xx answers by code, webhook events undelivered, duplicated and out of order — and the
//! recovery time of each fault, and writes them as JSON to `bench/results/`.
//!
//! It starts its own redis-server on a free port (the one it restarts); PostgreSQL is the
//! one given, and only the sessions of the given database are terminated. Run it through
//! `scripts/chaos`, which prepares the database and the release build.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser, Debug)]
#[command(about = "Calls through two apis and two workers while faults are injected")]
struct Args {
    /// The pushdial binary to run.
    #[arg(long)]
    pushdial: String,
    /// The database pushdial uses (migrated; its sessions are the ones terminated).
    #[arg(long, env = "BENCH_DATABASE_URL")]
    database_url: String,
    /// Calls created per second.
    #[arg(long, default_value_t = 12.0)]
    rate: f64,
    /// Answering phones (one agent each).
    #[arg(long, default_value_t = 20)]
    phones: usize,
    /// Seconds of load before the first fault and between faults.
    #[arg(long, default_value_t = 12)]
    phase_seconds: u64,
    /// A name for this run in the results (e.g. `before`, `after`).
    #[arg(long, default_value = "run")]
    label: String,
    /// Where the JSON results go.
    #[arg(long, default_value = "bench/results")]
    out: String,
    /// Where the pushdial processes' logs go.
    #[arg(long, default_value = "target/chaos")]
    logs: String,
}

/// Opens the apis' `/metrics` on their public listener.
const METRICS_TOKEN: &str = "chaos-metrics";
/// How long a phone waits before reconnecting after its socket dropped.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);
/// A create is healthy when its offer reaches the phone within this time of its sending.
const HEALTHY_OFFER: Duration = Duration::from_secs(1);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .map(|l| l.local_addr().map(|a| a.port()).unwrap_or(0))
        .unwrap_or(0)
}

/// A child process, killed when dropped.
struct Proc(Option<Child>);

impl Proc {
    fn kill(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill(); // SIGKILL
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The deployment under test: its processes and how to start them again.
struct Deployment {
    args: Args,
    prefix: String,
    redis_port: u16,
    redis: Proc,
    /// (role, port, process): api A, api B, worker 1, worker 2.
    procs: Vec<(&'static str, u16, Proc)>,
}

impl Deployment {
    fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.redis_port)
    }

    fn start_redis(&mut self) -> Result<()> {
        self.redis.kill();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.redis_port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("redis-server")?;
        self.redis = Proc(Some(child));
        Ok(())
    }

    async fn wait_redis(&self) -> Result<()> {
        let client = redis::Client::open(self.redis_url())?;
        for _ in 0..200 {
            if let Ok(mut c) = client.get_multiplexed_async_connection().await {
                if redis::cmd("PING")
                    .query_async::<String>(&mut c)
                    .await
                    .is_ok()
                {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        bail!("redis-server did not answer")
    }

    fn spawn(&self, role: &str, port: u16, name: &str) -> Result<Proc> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(format!("{}/{name}.log", self.args.logs))?;
        let child = Command::new(&self.args.pushdial)
            .arg(role)
            .env("DATABASE_URL", &self.args.database_url)
            .env("REDIS_URL", self.redis_url())
            .env("PUSHDIAL_REDIS_PREFIX", &self.prefix)
            .env("PUSHDIAL_LISTEN", format!("127.0.0.1:{port}"))
            .env("PUSHDIAL_LIMIT_IP_PER_SECOND", "1000000")
            .env("PUSHDIAL_LIMIT_CALLS_PER_NUMBER_PER_HOUR", "1000000000")
            .env("PUSHDIAL_LIMIT_PAIRING_PER_IP_PER_MINUTE", "1000000")
            .env("PUSHDIAL_WEBHOOK_ALLOW_SUBNETS", "127.0.0.0/8")
            .env("PUSHDIAL_SHUTDOWN_DRAIN", "0s")
            .env("PUSHDIAL_METRICS_TOKEN", METRICS_TOKEN)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("pushdial starts")?;
        Ok(Proc(Some(child)))
    }

    fn names() -> [&'static str; 4] {
        ["api-a", "api-b", "worker-1", "worker-2"]
    }

    fn restart(&mut self, i: usize) -> Result<()> {
        let (role, port) = (self.procs[i].0, self.procs[i].1);
        let p = self.spawn(role, port, Self::names()[i])?;
        self.procs[i].2 = p;
        Ok(())
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

    /// Terminates every session of the database but the one asking (57P01 to each).
    fn terminate_postgres_sessions(&self) -> Result<u64> {
        let out = Command::new("psql")
            .args(["-X", "-w", "-q", "-t", "-A", &self.args.database_url, "-c"])
            .arg(
                "select count(pg_terminate_backend(pid)) from pg_stat_activity \
                 where datname = current_database() and pid <> pg_backend_pid()",
            )
            .output()?;
        if !out.status.success() {
            bail!("psql: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0))
    }
}

async fn ready(http: &reqwest::Client, port: u16) -> Result<()> {
    for _ in 0..400 {
        if let Ok(r) = http
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

/// Every item of a list endpoint, page by page (through whichever api answers).
async fn list_all(
    http: &reqwest::Client,
    apis: &[String],
    sk: &str,
    path: &str,
) -> Result<Vec<Value>> {
    let mut all = vec![];
    let mut after: Option<String> = None;
    loop {
        let mut url = format!("{path}?limit=100");
        if let Some(a) = &after {
            url.push_str(&format!("&starting_after={a}"));
        }
        let mut page = None;
        for base in apis.iter().cycle().take(6) {
            match http
                .get(format!("{base}{url}"))
                .bearer_auth(sk)
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => {
                    page = Some(r.json::<Value>().await?);
                    break;
                }
                _ => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
        let page = page.with_context(|| format!("GET {url}"))?;
        let data = page["data"].as_array().cloned().unwrap_or_default();
        after = data
            .last()
            .and_then(|v| v["id"].as_str())
            .map(str::to_owned);
        all.extend(data);
        if !page["has_more"].as_bool().unwrap_or(false) || after.is_none() {
            return Ok(all);
        }
    }
}

async fn post(http: &reqwest::Client, url: &str, bearer: &str, body: Value) -> Result<Value> {
    let r = http
        .post(url)
        .bearer_auth(bearer)
        .json(&body)
        .send()
        .await?;
    let status = r.status();
    let v: Value = r.json().await.unwrap_or_default();
    if !status.is_success() {
        bail!("POST {url}: {status} {v}");
    }
    Ok(v)
}

/// One answering phone: an agent with one paired device.
struct Phone {
    agent_id: String,
    token: String,
    /// The api it connects to first (0: A, 1: B).
    home: usize,
    /// Whether it holds a socket the server said hello on.
    connected: AtomicBool,
    /// Bumped at every disconnection: a refusal counts only if the phone stayed connected
    /// from the request's sending to its answer.
    drops: AtomicU64,
}

/// One webhook event as received: how many times, its type, and its call (for `call.*`).
type Hook = (u32, String, Option<String>);

/// What everyone records, read at the end.
#[derive(Default)]
struct Seen {
    /// When each call's first offer reached its phone.
    offered: Mutex<HashMap<String, Instant>>,
    /// Webhook deliveries received: id → (times, type, call id), and their arrival order.
    hooks: Mutex<(HashMap<String, Hook>, Vec<String>)>,
    creates: Mutex<Vec<Create>>,
}

/// One create as the client lived it.
#[derive(Debug, Clone)]
struct Create {
    sent: Instant,
    /// The call id once created.
    call_id: Option<String>,
    /// Answered (finally) at.
    done: Instant,
    /// Refused 409 no_device_reachable while its phone was connected throughout.
    refused_connected: bool,
    /// Every attempt went through at once (no 5xx, no retry, no refusal).
    clean: bool,
    /// 5xx answers on the way, by `status code`.
    server_errors: Vec<String>,
    /// Another final answer (not 201).
    other: Option<String>,
}

async fn connect_ws(base: &str, token: &str) -> Result<Ws> {
    let url = format!("{}/agent/v1/stream", base.replace("http://", "ws://"));
    let mut req =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)?;
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    let (ws, _) = tokio::time::timeout(
        Duration::from_secs(3),
        tokio_tungstenite::connect_async(req),
    )
    .await
    .context("connect timed out")??;
    Ok(ws)
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A phone: holds a socket (its home api first, the other when that one is down),
/// heartbeats, answers every offer (ack, then `completed`), reconnects a second after a
/// drop.
async fn run_phone(
    phone: Arc<Phone>,
    apis: Arc<Vec<String>>,
    seen: Arc<Seen>,
    http: reqwest::Client,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut which = phone.home;
    let mut answered: HashSet<String> = HashSet::new();
    while !*stop.borrow() {
        let base = apis[which].clone();
        let Ok(mut ws) = connect_ws(&base, &phone.token).await else {
            which = 1 - which;
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let mut every = Duration::from_secs(20);
        let mut tick = tokio::time::interval(every);
        let mut stop_rx = stop.clone();
        loop {
            tokio::select! {
                _ = stop_rx.changed() => break,
                _ = tick.tick() => {
                    if ws.send(Message::Text(r#"{"type":"heartbeat"}"#.into())).await.is_err() {
                        break;
                    }
                }
                msg = ws.next() => match msg {
                    Some(Ok(Message::Text(t))) => {
                        let v: Value = serde_json::from_str(&t).unwrap_or_default();
                        match v["type"].as_str() {
                            Some("hello") => {
                                phone.connected.store(true, Ordering::SeqCst);
                                if let Some(s) = v["heartbeat_interval_s"].as_u64() {
                                    every = Duration::from_secs(s.max(1));
                                    tick = tokio::time::interval(every);
                                    tick.tick().await;
                                }
                            }
                            Some("call.offer") => {
                                let Some(id) = v["call_id"].as_str() else { continue };
                                seen.offered.lock().unwrap_or_else(|e| e.into_inner())
                                    .entry(id.to_owned()).or_insert_with(Instant::now);
                                // Duplicates are ignored, as phones do.
                                if answered.insert(id.to_owned()) {
                                    tokio::spawn(answer(http.clone(), base.clone(), phone.token.clone(), id.to_owned()));
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
        phone.connected.store(false, Ordering::SeqCst);
        phone.drops.fetch_add(1, Ordering::SeqCst);
        let _ = ws.close(None).await;
        if *stop.borrow() {
            break;
        }
        tokio::time::sleep(RECONNECT_AFTER).await;
    }
}

/// Takes an offered call and completes it, retrying transient failures as the reference
/// agent does.
async fn answer(http: reqwest::Client, base: String, token: String, id: String) {
    let ack = format!("{base}/agent/v1/calls/{id}/ack");
    if agent_post(&http, &ack, &token, None).await {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let report = format!("{base}/agent/v1/calls/{id}/events");
        let done = json!({"status": "completed", "duration_s": 1});
        agent_post(&http, &report, &token, Some(&done)).await;
    }
}

/// One POST of a phone, retried after `Retry-After` (or a growing pause) on 5xx, 429 and
/// connection failures, for about a minute. `true` once it succeeded.
async fn agent_post(http: &reqwest::Client, url: &str, token: &str, body: Option<&Value>) -> bool {
    let mut pause = Duration::from_millis(200);
    for _ in 0..15 {
        let mut req = http.post(url).bearer_auth(token);
        if let Some(body) = body {
            req = req.json(body);
        }
        match req.send().await {
            Ok(r) if r.status().is_success() => return true,
            Ok(r) if r.status().as_u16() != 429 && !r.status().is_server_error() => return false,
            Ok(r) => {
                let after = retry_after(&r);
                tokio::time::sleep(after.unwrap_or(pause)).await;
            }
            Err(_) => tokio::time::sleep(pause).await,
        }
        pause = (pause * 2).min(Duration::from_secs(5));
    }
    false
}

fn retry_after(r: &reqwest::Response) -> Option<Duration> {
    r.headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// One create, as a client with two api addresses behind it: a connection refused goes to
/// the other api at once; a 5xx or 429 is retried after its `Retry-After` with the same
/// `Idempotency-Key`; a 409 is final.
#[allow(clippy::too_many_arguments)]
async fn create(
    http: reqwest::Client,
    apis: Arc<Vec<String>>,
    sk: String,
    phones: Arc<Vec<Arc<Phone>>>,
    seen: Arc<Seen>,
    n: usize,
) {
    let phone = &phones[n % phones.len()];
    let key = format!("chaos-{n}-{:x}", rand::random::<u64>());
    let body = json!({"to": format!("+1212555{:04}", 1000 + n % 9000), "agent_id": phone.agent_id});
    let sent = Instant::now();
    let mut which = n % 2;
    let mut c = Create {
        sent,
        call_id: None,
        done: sent,
        refused_connected: false,
        clean: true,
        server_errors: vec![],
        other: None,
    };
    for _ in 0..10 {
        let connected = phone.connected.load(Ordering::SeqCst);
        let drops = phone.drops.load(Ordering::SeqCst);
        let r = http
            .post(format!("{}/v1/calls", apis[which]))
            .bearer_auth(&sk)
            .header("idempotency-key", &key)
            .json(&body)
            .timeout(Duration::from_secs(15))
            .send()
            .await;
        let r = match r {
            Ok(r) => r,
            Err(e) if e.is_connect() => {
                which = 1 - which; // that api is down: the other one
                continue;
            }
            Err(e) => {
                c.clean = false;
                c.other = Some(format!("transport: {e}"));
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let status = r.status().as_u16();
        let wait = retry_after(&r);
        let v: Value = r.json().await.unwrap_or_default();
        let code = v["code"].as_str().unwrap_or_default().to_owned();
        match status {
            201 => {
                c.call_id = v["id"].as_str().map(str::to_owned);
                c.other = None;
                break;
            }
            409 if code == "no_device_reachable" => {
                c.clean = false;
                c.refused_connected = connected
                    && phone.connected.load(Ordering::SeqCst)
                    && phone.drops.load(Ordering::SeqCst) == drops;
                c.other = Some(format!("409 {code}"));
                break;
            }
            s if s >= 500 || s == 429 => {
                c.clean = false;
                if s >= 500 {
                    c.server_errors.push(format!("{s} {code}"));
                }
                tokio::time::sleep(wait.unwrap_or(Duration::from_secs(1))).await;
            }
            s => {
                c.clean = false;
                c.other = Some(format!("{s} {code}"));
                break;
            }
        }
    }
    c.done = Instant::now();
    seen.creates
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(c);
}

async fn start_receiver(seen: Arc<Seen>, port: u16) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let app = poem::Route::new().at(
        "/hook",
        poem::post(poem::endpoint::make(move |req: poem::Request| {
            let seen = seen.clone();
            async move {
                let id = req.header("webhook-id").map(str::to_owned);
                let body: Value = req.into_body().into_json().await.unwrap_or_default();
                if let Some(id) = id {
                    let kind = body["type"].as_str().unwrap_or_default().to_owned();
                    let call = kind
                        .starts_with("call.")
                        .then(|| body["data"]["id"].as_str().map(str::to_owned))
                        .flatten();
                    let mut hooks = seen.hooks.lock().unwrap_or_else(|e| e.into_inner());
                    hooks.1.push(id.clone());
                    hooks.0.entry(id).or_insert((0, kind, call)).0 += 1;
                }
                poem::http::StatusCode::NO_CONTENT
            }
        })),
    );
    let acceptor = poem::listener::TcpAcceptor::from_tokio(listener)?;
    tokio::spawn(async move {
        let _ = poem::Server::new_with_acceptor(acceptor).run(app).await;
    });
    Ok(())
}

/// A call event's place in the lifecycle: events of one call must arrive in this order.
fn rank(kind: &str) -> u8 {
    match kind {
        "call.queued" => 0,
        "call.offered" => 1,
        "call.delivered" => 2,
        "call.accepted" => 3,
        "call.dialing" => 4,
        "call.connected" => 5,
        _ => 6,
    }
}

/// A fault, when it was injected, and its name.
struct Fault {
    name: &'static str,
    at: Instant,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.logs)?;
    std::fs::create_dir_all(&args.out)?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    let started_at = chrono::Utc::now();
    let ports = [free_port(), free_port(), free_port(), free_port()];
    let mut d = Deployment {
        prefix: format!("chaos{:x}:", rand::random::<u32>()),
        redis_port: free_port(),
        redis: Proc(None),
        procs: vec![],
        args,
    };
    d.start_redis()?;
    d.wait_redis().await?;
    for (i, role) in ["api", "api", "worker", "worker"].into_iter().enumerate() {
        let p = d.spawn(role, ports[i], Deployment::names()[i])?;
        d.procs.push((role, ports[i], p));
    }
    for port in ports {
        ready(&http, port).await?;
    }
    let apis = Arc::new(vec![
        format!("http://127.0.0.1:{}", ports[0]),
        format!("http://127.0.0.1:{}", ports[1]),
    ]);

    // The organization, its webhook endpoint and its phones.
    let org = d.admin(&["create-org", "--name", "chaos"])?;
    let org_id = org["org_id"].as_str().context("org id")?.to_owned();
    let sk = org["secret_key"].as_str().context("secret key")?.to_owned();
    d.admin(&[
        "set-limits",
        "--org",
        &org_id,
        "--api-per-second",
        "1000000",
        "--calls-per-minute",
        "1000000",
    ])?;
    let seen = Arc::new(Seen::default());
    let hook_port = free_port();
    start_receiver(seen.clone(), hook_port).await?;
    post(
        &http,
        &format!("{}/v1/webhook_endpoints", apis[0]),
        &sk,
        json!({"url": format!("http://127.0.0.1:{hook_port}/hook")}),
    )
    .await?;
    let mut phones = vec![];
    for i in 0..d.args.phones {
        let base = &apis[0];
        let agent = post(
            &http,
            &format!("{base}/v1/agents"),
            &sk,
            json!({"name": format!("agent {i}")}),
        )
        .await?;
        let agent_id = agent["id"].as_str().context("agent id")?.to_owned();
        let code = post(
            &http,
            &format!("{base}/v1/pairing_codes"),
            &sk,
            json!({"agent_id": agent_id}),
        )
        .await?;
        let paired: Value = http
            .post(format!("{base}/agent/v1/pair"))
            .json(&json!({"code": code["code"], "name": "phone", "platform": "cli"}))
            .send()
            .await?
            .json()
            .await?;
        let token = paired["token"].as_str().context("device token")?.to_owned();
        phones.push(Arc::new(Phone {
            agent_id,
            token,
            home: i % 2,
            connected: AtomicBool::new(false),
            drops: AtomicU64::new(0),
        }));
    }
    let phones = Arc::new(phones);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut phone_tasks = vec![];
    for p in phones.iter() {
        phone_tasks.push(tokio::spawn(run_phone(
            p.clone(),
            apis.clone(),
            seen.clone(),
            http.clone(),
            stop_rx.clone(),
        )));
    }
    for _ in 0..200 {
        if phones.iter().all(|p| p.connected.load(Ordering::SeqCst)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "[chaos] {} phones connected; {} calls/s, a fault every {} s",
        phones
            .iter()
            .filter(|p| p.connected.load(Ordering::SeqCst))
            .count(),
        d.args.rate,
        d.args.phase_seconds
    );

    // The load, open loop, until the last phase ends.
    let phase = Duration::from_secs(d.args.phase_seconds);
    let t0 = Instant::now();
    let load_for = phase * 5;
    let load = {
        let (http, apis, sk, phones, seen) = (
            http.clone(),
            apis.clone(),
            sk.clone(),
            phones.clone(),
            seen.clone(),
        );
        let every = Duration::from_secs_f64(1.0 / d.args.rate.max(0.1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            let mut tasks = vec![];
            let mut n = 0usize;
            while t0.elapsed() < load_for {
                tick.tick().await;
                tasks.push(tokio::spawn(create(
                    http.clone(),
                    apis.clone(),
                    sk.clone(),
                    phones.clone(),
                    seen.clone(),
                    n,
                )));
                n += 1;
            }
            for t in tasks {
                let _ = t.await;
            }
        })
    };

    // The faults, one per phase.
    let mut faults = vec![];
    let at = |k: u32| t0 + phase * k;
    tokio::time::sleep_until(at(1).into()).await;
    eprintln!("[chaos] worker 1: SIGKILL (started again after 3 s)");
    faults.push(Fault {
        name: "worker_sigkill",
        at: Instant::now(),
    });
    d.procs[2].2.kill();
    tokio::time::sleep(Duration::from_secs(3)).await;
    d.restart(2)?;

    tokio::time::sleep_until(at(2).into()).await;
    eprintln!("[chaos] api B: SIGKILL (started again after 3 s)");
    faults.push(Fault {
        name: "api_sigkill",
        at: Instant::now(),
    });
    d.procs[1].2.kill();
    tokio::time::sleep(Duration::from_secs(3)).await;
    d.restart(1)?;

    tokio::time::sleep_until(at(3).into()).await;
    eprintln!("[chaos] PostgreSQL: every session of the database terminated (twice, 200 ms apart)");
    faults.push(Fault {
        name: "postgres_sessions_terminated",
        at: Instant::now(),
    });
    let mut terminated = d.terminate_postgres_sessions()?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    terminated += d.terminate_postgres_sessions()?;
    eprintln!("[chaos]   {terminated} sessions terminated");

    tokio::time::sleep_until(at(4).into()).await;
    eprintln!("[chaos] Redis: SIGKILL, down 2 s, back empty");
    faults.push(Fault {
        name: "redis_restart",
        at: Instant::now(),
    });
    d.redis.kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    d.start_redis()?;
    d.wait_redis().await?;

    let _ = load.await;
    eprintln!("[chaos] load done; waiting for every call to end and every event to arrive");

    // Every call must end (the default expiry is 60 s), and every event arrive.
    let creates = seen
        .creates
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let ids: Vec<String> = creates.iter().filter_map(|c| c.call_id.clone()).collect();
    let settle_until = Instant::now() + Duration::from_secs(120);
    let terminal = |s: &str| {
        matches!(
            s,
            "completed" | "declined" | "failed" | "canceled" | "expired"
        )
    };
    let (mut statuses, mut events);
    loop {
        statuses = list_all(&http, &apis, &sk, "/v1/calls")
            .await?
            .into_iter()
            .map(|c| {
                let id = c["id"].as_str().unwrap_or_default().to_owned();
                let status = c["status"].as_str().unwrap_or_default().to_owned();
                (
                    id,
                    (status, c["reason"].as_str().unwrap_or_default().to_owned()),
                )
            })
            .collect::<HashMap<String, (String, String)>>();
        events = list_all(&http, &apis, &sk, "/v1/events")
            .await?
            .into_iter()
            .filter_map(|e| e["id"].as_str().map(str::to_owned))
            .collect::<Vec<String>>();
        let open = ids
            .iter()
            .filter(|id| statuses.get(*id).is_none_or(|(s, _)| !terminal(s)))
            .count();
        let missing = {
            let hooks = seen.hooks.lock().unwrap_or_else(|e| e.into_inner());
            events.iter().filter(|e| !hooks.0.contains_key(*e)).count()
        };
        if (open == 0 && missing == 0) || Instant::now() > settle_until {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let _ = stop_tx.send(true);

    // Calls.
    let mut not_completed: BTreeMap<String, u64> = BTreeMap::new();
    let mut completed = 0u64;
    for id in &ids {
        match statuses.get(id) {
            Some((s, _)) if s == "completed" => completed += 1,
            Some((s, r)) if r.is_empty() => *not_completed.entry(s.clone()).or_default() += 1,
            Some((s, r)) => *not_completed.entry(format!("{s}({r})")).or_default() += 1,
            None => *not_completed.entry("missing".into()).or_default() += 1,
        }
    }
    let mut server_errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut other_answers: BTreeMap<String, u64> = BTreeMap::new();
    for c in &creates {
        for e in &c.server_errors {
            *server_errors.entry(e.clone()).or_default() += 1;
        }
        if c.call_id.is_none() {
            if let Some(o) = &c.other {
                *other_answers.entry(o.clone()).or_default() += 1;
            }
        }
    }
    let refused_connected = creates.iter().filter(|c| c.refused_connected).count();

    // Webhooks: every event of the organization's calls and devices, by id.
    let (received, arrival) = {
        let hooks = seen.hooks.lock().unwrap_or_else(|e| e.into_inner());
        (hooks.0.clone(), hooks.1.clone())
    };
    let undelivered = events.iter().filter(|e| !received.contains_key(*e)).count();
    let duplicated = received.values().filter(|(n, ..)| *n > 1).count();
    let mut last_rank: HashMap<String, u8> = HashMap::new();
    let mut out_of_order_calls: HashSet<String> = HashSet::new();
    let mut first_arrival: HashSet<&String> = HashSet::new();
    for id in &arrival {
        if !first_arrival.insert(id) {
            continue; // a duplicate's place says nothing about order
        }
        if let Some((_, kind, Some(call))) = received.get(id) {
            let r = rank(kind);
            let last = last_rank.entry(call.clone()).or_insert(0);
            if r < *last {
                out_of_order_calls.insert(call.clone());
            }
            *last = (*last).max(r);
        }
    }

    // Recovery per fault: from the injection to the moment the last create of the phase
    // that went wrong (a 5xx, a refusal, a retry, an offer slower than 1 s or none) was
    // made good (its offer reached the phone).
    let offered = seen
        .offered
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let mut fault_rows = vec![];
    for (i, f) in faults.iter().enumerate() {
        let end = faults.get(i + 1).map(|n| n.at).unwrap_or(t0 + load_for);
        let mut worst = Duration::ZERO;
        let mut unhealthy = 0u64;
        let mut unrecovered = 0u64;
        for c in creates.iter().filter(|c| c.sent >= f.at && c.sent < end) {
            let offer = c.call_id.as_ref().and_then(|id| offered.get(id)).copied();
            let healthy =
                c.clean && offer.is_some_and(|o| o.duration_since(c.sent) <= HEALTHY_OFFER);
            if healthy {
                continue;
            }
            unhealthy += 1;
            match offer {
                Some(o) => worst = worst.max(o.duration_since(f.at)),
                None => unrecovered += 1,
            }
        }
        fault_rows.push(json!({
            "fault": f.name,
            "at_s": (f.at - t0).as_secs_f64(),
            "unhealthy_creates": unhealthy,
            "creates_never_offered": unrecovered,
            "recovery_s": if unrecovered > 0 { Value::Null } else { json!((worst.as_secs_f64() * 10.0).round() / 10.0) },
        }));
    }

    // What each process counted about the faults.
    let mut counted: BTreeMap<String, f64> = BTreeMap::new();
    for (_, port, _) in &d.procs {
        let text = http
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .bearer_auth(METRICS_TOKEN)
            .send()
            .await
            .ok();
        let Some(text) = (match text {
            Some(r) => r.text().await.ok(),
            None => None,
        }) else {
            continue;
        };
        for line in text.lines() {
            for name in [
                "pushdial_presence_reasserted_total",
                "pushdial_offers_resent_total",
                "pushdial_dependency_unavailable_total",
            ] {
                if let Some(rest) = line.strip_prefix(name) {
                    let (labels, value) = rest.rsplit_once(' ').unwrap_or(("", "0"));
                    *counted.entry(format!("{name}{labels}")).or_default() +=
                        value.parse::<f64>().unwrap_or(0.0);
                }
            }
        }
    }

    let result = json!({
        "bench": "chaos",
        "label": d.args.label,
        "started_at": started_at.to_rfc3339(),
        "load": {"calls_per_s": d.args.rate, "phones": d.args.phones, "apis": 2, "workers": 2, "phase_s": d.args.phase_seconds},
        "calls": {
            "created": ids.len(),
            "completed": completed,
            "not_completed": not_completed,
            "creates_not_created": other_answers,
        },
        "creates_refused_while_phone_connected": refused_connected,
        "server_errors_5xx": server_errors,
        "webhooks": {
            "events": events.len(),
            "undelivered": undelivered,
            "duplicated": duplicated,
            "calls_out_of_order": out_of_order_calls.len(),
        },
        "faults": fault_rows,
        "metrics_after": counted,
    });
    println!("{}", serde_json::to_string_pretty(&result)?);
    print_table(&result);
    let file = format!(
        "{}/chaos-{}-{}.json",
        d.args.out,
        d.args.label,
        started_at.format("%Y%m%dT%H%M%SZ")
    );
    std::fs::write(&file, serde_json::to_string_pretty(&result)? + "\n")?;
    eprintln!("[chaos] written to {file}");
    for t in phone_tasks {
        t.abort();
    }
    Ok(())
}

fn print_table(r: &Value) {
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let sum = |v: &Value| {
        v.as_object().map_or(0, |m| {
            m.values().map(|x| x.as_u64().unwrap_or(0)).sum::<u64>()
        })
    };
    eprintln!();
    eprintln!("chaos ({})", r["label"].as_str().unwrap_or_default());
    eprintln!(
        "  calls created                          {}",
        n(&r["calls"]["created"])
    );
    eprintln!(
        "  calls completed                        {}",
        n(&r["calls"]["completed"])
    );
    eprintln!(
        "  calls not completed                    {} {}",
        sum(&r["calls"]["not_completed"]),
        r["calls"]["not_completed"]
    );
    eprintln!(
        "  creates refused, phone connected       {}",
        n(&r["creates_refused_while_phone_connected"])
    );
    eprintln!(
        "  5xx answers                            {} {}",
        sum(&r["server_errors_5xx"]),
        r["server_errors_5xx"]
    );
    eprintln!(
        "  webhook events undelivered             {}",
        n(&r["webhooks"]["undelivered"])
    );
    eprintln!(
        "  webhook events duplicated              {}",
        n(&r["webhooks"]["duplicated"])
    );
    eprintln!(
        "  calls with webhooks out of order       {}",
        n(&r["webhooks"]["calls_out_of_order"])
    );
    for f in r["faults"].as_array().into_iter().flatten() {
        let rec = match f["recovery_s"].as_f64() {
            Some(s) => format!("{s:.1} s"),
            None => format!(
                "not recovered ({} creates never offered)",
                n(&f["creates_never_offered"])
            ),
        };
        eprintln!(
            "  recovery {:<30} {rec}  ({} creates affected)",
            f["fault"].as_str().unwrap_or_default(),
            n(&f["unhealthy_creates"])
        );
    }
}
