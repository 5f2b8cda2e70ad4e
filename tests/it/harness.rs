//! Starts pushdial (api + worker by default) on `127.0.0.1:0` against its own database and
//! Redis prefix, and offers the helpers the tests share.

use std::future::Future;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use pushdial_core::shutdown::{self, Trigger};
use pushdial_core::tenants::NewOrg;
use pushdial_core::Config;
use pushdial_sdk::agent::{self, RunOptions};
use pushdial_sdk::{AgentClient, Client};
use rand::Rng;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[path = "contract.rs"]
pub mod contract;

/// The server URL without a database name, from `DATABASE_URL` (any database on it).
pub fn server_url() -> String {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let (base, _) = url
        .rsplit_once('/')
        .expect("DATABASE_URL has a database name");
    base.to_owned()
}

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn migrations_fingerprint() -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for m in pushdial_core::MIGRATOR.iter() {
        h.update(m.version.to_be_bytes());
        h.update(&*m.checksum);
    }
    hex::encode(&h.finalize()[..6])
}

/// Creates a fresh database for one test from a migrated template (made once per schema).
pub async fn fresh_database() -> String {
    let admin_url = format!("{}/postgres", server_url());
    let mut admin = PgConnection::connect(&admin_url)
        .await
        .expect("connect to PostgreSQL");
    let template = format!("pushdial_tpl_{}", migrations_fingerprint());
    // One test process creates the template; the others wait on the lock.
    sqlx::query("select pg_advisory_lock(727001)")
        .execute(&mut admin)
        .await
        .unwrap();
    let exists: bool =
        sqlx::query_scalar("select exists(select 1 from pg_database where datname = $1)")
            .bind(&template)
            .fetch_one(&mut admin)
            .await
            .unwrap();
    if !exists {
        let building = format!("{template}_building");
        sqlx::query(&format!("drop database if exists {building}"))
            .execute(&mut admin)
            .await
            .unwrap();
        sqlx::query(&format!("create database {building}"))
            .execute(&mut admin)
            .await
            .unwrap();
        let pool = PgPool::connect(&format!("{}/{building}", server_url()))
            .await
            .unwrap();
        pushdial_core::MIGRATOR
            .run(&pool)
            .await
            .expect("migrate template");
        pool.close().await;
        // The pool's backends may take a moment to go away; a rename needs none left.
        let mut tries = 0;
        while let Err(e) = sqlx::query(&format!("alter database {building} rename to {template}"))
            .execute(&mut admin)
            .await
        {
            tries += 1;
            assert!(tries < 100, "rename template: {e}");
            sqlx::query(
                "select pg_terminate_backend(pid) from pg_stat_activity where datname = $1",
            )
            .bind(&building)
            .execute(&mut admin)
            .await
            .unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    sqlx::query("select pg_advisory_unlock(727001)")
        .execute(&mut admin)
        .await
        .unwrap();
    let name = format!("pushdial_test_{:016x}", rand::thread_rng().gen::<u64>());
    let mut tries = 0;
    loop {
        match sqlx::query(&format!("create database {name} template {template}"))
            .execute(&mut admin)
            .await
        {
            Ok(_) => break,
            // Another test is copying the template at this instant.
            Err(e) if tries < 50 && e.to_string().contains("being accessed by other users") => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("create test database: {e}"),
        }
    }
    format!("{}/{name}", server_url())
}

/// The configuration of a test server: short timeouts so tests run in seconds.
pub fn test_config(database_url: &str, prefix: &str) -> Config {
    let mut c = Config::local();
    c.database_url = database_url.to_owned();
    c.redis_url = redis_url();
    c.redis_prefix = prefix.to_owned();
    c.listen = "127.0.0.1:0".parse().unwrap();
    c.public_url = None;
    // Short, so failover tests run quickly. A test whose phone may be refused a 503 (a
    // fault, a restart) or that keeps a call offered while it works must set a longer one:
    // the reference agent waits at least the 1 s `Retry-After` before acking again, and a
    // loaded machine adds more, so the offer would time out under it (`not_delivered`).
    c.offer_timeout = Duration::from_millis(1500);
    c.presence_window = Duration::from_secs(6);
    c.job_lease = Duration::from_secs(2);
    c.webhook_timeout = Duration::from_secs(1);
    c.job_poll_interval = Duration::from_millis(200);
    c.db_max_connections = 10;
    c.db_min_connections = 1;
    c.shutdown_grace = Duration::from_secs(2);
    c.shutdown_drain = Duration::ZERO;
    c.metrics_token = Some(METRICS_TOKEN.to_owned());
    c
}

/// The bearer token that opens a test api's `/metrics` on its own listener.
pub const METRICS_TOKEN: &str = "test-metrics-token";

/// A running pushdial with its own database and Redis prefix.
pub struct TestApp {
    pub url: String,
    pub database_url: String,
    pub config: Config,
    pub db: PgPool,
    /// A fresh organization with its keys.
    pub org: NewOrg,
    stop: Option<Trigger>,
    server: Option<JoinHandle<Result<(), String>>>,
    /// Addresses of this app's api processes (itself and its replicas), whose answers the
    /// contract check claims.
    apis: std::sync::Mutex<Vec<String>>,
}

impl TestApp {
    /// api + worker in one process, as `pushdial serve` runs them.
    pub async fn spawn() -> TestApp {
        Self::spawn_tuned(|_| {}).await
    }

    /// api + worker in one process, with `tune` applied to the configuration.
    pub async fn spawn_tuned(tune: impl FnOnce(&mut Config)) -> TestApp {
        Self::spawn_with(
            tune,
            pushdial::Roles {
                api: true,
                worker: true,
            },
        )
        .await
    }

    pub async fn spawn_with(tune: impl FnOnce(&mut Config), roles: pushdial::Roles) -> TestApp {
        let database_url = fresh_database().await;
        let prefix = format!(
            "t{:012x}:",
            rand::thread_rng().gen::<u64>() & 0xffff_ffff_ffff
        );
        let mut config = test_config(&database_url, &prefix);
        // Bound first, so that `tune` knows the address (for redirect URIs, say).
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        config.listen = addr;
        tune(&mut config);
        let url = format!("http://{addr}");
        contract::install();
        let (trigger, stop) = shutdown::channel();
        let server = tokio::spawn(pushdial::run(config.clone(), Some(listener), roles, stop));
        let db = PgPoolOptions::new()
            .max_connections(4)
            .connect(&database_url)
            .await
            .unwrap();
        let org = Self::create_org_in(&db, "Acme").await;
        let app = TestApp {
            url,
            database_url,
            config,
            db,
            org,
            stop: Some(trigger),
            server: Some(server),
            apis: std::sync::Mutex::new(vec![addr.to_string()]),
        };
        app.wait_ready().await;
        app
    }

    async fn wait_ready(&self) {
        let http = reqwest::Client::new();
        for _ in 0..100 {
            if let Ok(r) = http.get(format!("{}/readyz", self.url)).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("server did not become ready");
    }

    async fn create_org_in(db: &PgPool, name: &str) -> NewOrg {
        let mut conn = db.acquire().await.unwrap();
        pushdial_core::tenants::create_org(&mut conn, name, "US")
            .await
            .unwrap()
    }

    /// A second api process on the same database and Redis (a replica); stops when the
    /// returned trigger is dropped.
    pub async fn spawn_api_replica(&self) -> (String, Trigger) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut config = self.config.clone();
        config.listen = listener.local_addr().unwrap();
        let url = format!("http://{}", config.listen);
        self.apis
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(config.listen.to_string());
        let (trigger, stop) = shutdown::channel();
        tokio::spawn(pushdial::run(
            config,
            Some(listener),
            pushdial::Roles {
                api: true,
                worker: false,
            },
            stop,
        ));
        let http = reqwest::Client::new();
        eventually(
            Duration::from_secs(10),
            "the replica to be ready",
            || async {
                let r = http.get(format!("{url}/readyz")).send().await.ok()?;
                (r.status() == 200).then_some(())
            },
        )
        .await;
        (url, trigger)
    }

    /// Another organization in the same deployment.
    pub async fn other_org(&self) -> NewOrg {
        Self::create_org_in(&self.db, "Other").await
    }

    /// The api's `/metrics` text, read as the operator's scraper reads it (with the metrics
    /// token; the public listener serves them to no one else).
    pub async fn metrics(&self) -> String {
        let resp = reqwest::Client::new()
            .get(format!("{}/metrics", self.url))
            .bearer_auth(METRICS_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.text().await.unwrap()
    }

    /// An sdk client with the organization's secret key.
    pub fn client(&self) -> Client {
        Client::new(&self.url, &self.org.secret_key).unwrap()
    }

    pub fn client_for(&self, org: &NewOrg) -> Client {
        Client::new(&self.url, &org.secret_key).unwrap()
    }

    /// A JSON request with the organization's secret key: (status, body).
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut req = reqwest::Client::new()
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.org.secret_key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or_default())
    }

    /// Creates an agent and pairs a device to it; returns (agent_id, device client, device id).
    pub async fn agent_with_device(
        &self,
        client: &Client,
        name: &str,
    ) -> (String, AgentClient, String) {
        let agent = client.create_agent(name, None).await.unwrap();
        let (device, id) = self
            .pair_device(client, &agent.id, &format!("{name}'s phone"))
            .await;
        (agent.id, device, id)
    }

    pub async fn pair_device(
        &self,
        client: &Client,
        agent_id: &str,
        name: &str,
    ) -> (AgentClient, String) {
        let code = client.create_pairing_code(agent_id).await.unwrap();
        self.pair_device_with_code(&code.code, name).await
    }

    /// Pairs a device (the reference agent's client) with a pairing code.
    pub async fn pair_device_with_code(&self, code: &str, name: &str) -> (AgentClient, String) {
        let (device, paired) = AgentClient::pair(&self.url, code, name, "cli")
            .await
            .unwrap();
        (device, paired.id)
    }

    /// Number of rows in a table (to prove that nothing was written).
    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("select count(*) from {table}"))
            .fetch_one(&self.db)
            .await
            .unwrap()
    }

    /// Row counts of every table in the schema, read from the catalog so that a table added
    /// by a migration is counted without anyone remembering to list it here. Only
    /// `_sqlx_migrations` is left out: no request writes it, and it changes only when the
    /// schema does. `jobs`, `sessions`, `sign_ins` and `idempotency_keys` are counted too: a
    /// refused request must not leave a job, a session or a key behind (tests that run
    /// background work call `settle` before taking their first count).
    pub async fn counts(&self) -> Vec<(String, i64)> {
        let tables: Vec<String> = sqlx::query_scalar(
            "select table_name::text from information_schema.tables \
             where table_schema = current_schema() and table_type = 'BASE TABLE' \
             and table_name <> '_sqlx_migrations' order by table_name",
        )
        .fetch_all(&self.db)
        .await
        .unwrap();
        let mut out = vec![];
        for t in tables {
            let n = self.count(&format!("\"{t}\"")).await;
            out.push((t, n));
        }
        assert!(
            out.iter().any(|(t, _)| t == "calls"),
            "the catalog lists the schema's tables: {out:?}"
        );
        out
    }

    /// Stops the server (SIGTERM-like) and waits for it.
    pub async fn shutdown(mut self) {
        if let Some(t) = self.stop.take() {
            t.stop();
        }
        if let Some(s) = self.server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), s).await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(t) = self.stop.take() {
            t.stop();
        }
        // Every answer this test received must be one the published document allows. Under
        // nextest a process runs one test, so every server it started is this test's.
        let mine = if std::env::var_os("NEXTEST").is_some() {
            None
        } else {
            let mut apis = self.apis.lock().unwrap_or_else(|e| e.into_inner()).clone();
            apis.push(contract::WEBHOOKS.to_owned());
            Some(apis)
        };
        let mismatches = contract::take_mismatches(mine.as_deref());
        if !mismatches.is_empty() && contract::enforced() && !std::thread::panicking() {
            panic!(
                "{} answer(s) the OpenAPI document does not allow:\n{}",
                mismatches.len(),
                mismatches.join("\n")
            );
        }
    }
}

/// A reference agent running in this process.
pub struct RunningAgent {
    pub connected: watch::Receiver<bool>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl RunningAgent {
    /// Starts the reference agent (auto-dial, built-in dialer that "talks" for `talk`);
    /// a call it must ask about (`confirm: required`, a widget's) its person accepts.
    pub async fn start(device: AgentClient, talk: Duration) -> RunningAgent {
        Self::start_with(
            device,
            RunOptions {
                auto: true,
                call_duration: talk,
                confirm: Some(std::sync::Arc::new(|_: &str| true)),
                ..Default::default()
            },
        )
        .await
    }

    pub async fn start_with(device: AgentClient, mut opts: RunOptions) -> RunningAgent {
        let (tx, mut rx) = watch::channel(false);
        opts.connected = Some(tx);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = agent::run(device, opts, async {
                let _ = stop_rx.await;
            })
            .await;
        });
        tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|c| *c))
            .await
            .expect("agent connected in time")
            .unwrap();
        RunningAgent {
            connected: rx,
            stop: Some(stop_tx),
            task,
        }
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.task).await;
    }
}

/// A hand-held agent stream, once the server has said hello: it has marked the device
/// live by then, so a call made next finds the socket.
pub async fn live_stream(device: &AgentClient) -> pushdial_sdk::Stream {
    let mut stream = device.connect_stream().await.unwrap();
    let hello = next_message(&mut stream, Duration::from_secs(5), |m| {
        matches!(m, pushdial_sdk::ServerMessage::Hello { .. }).then_some(())
    })
    .await;
    assert_eq!(hello, Next::Got(()), "the server's hello");
    stream
}

/// How waiting on a hand-held agent stream ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Next<T> {
    /// The first message `pick` accepted.
    Got(T),
    /// The stream closed (or failed) first.
    Ended,
    TimedOut,
}

/// Reads a hand-held stream until `pick` accepts a message, the stream ends, or `within`
/// passes; other messages are skipped.
pub async fn next_message<T>(
    stream: &mut pushdial_sdk::Stream,
    within: Duration,
    mut pick: impl FnMut(pushdial_sdk::ServerMessage) -> Option<T>,
) -> Next<T> {
    let read = async {
        loop {
            match stream.recv().await {
                Some(Ok(message)) => {
                    if let Some(t) = pick(message) {
                        return Next::Got(t);
                    }
                }
                _ => return Next::Ended,
            }
        }
    };
    tokio::time::timeout(within, read)
        .await
        .unwrap_or(Next::TimedOut)
}

/// Gives a device the loopback push channel with `token` (as a phone registering for
/// push does); returns the device as the API now shows it.
pub async fn use_loopback_push(device: &AgentClient, token: &str) -> pushdial_sdk::Device {
    let update = pushdial_sdk::UpdateDevice {
        push_channel: Some(Some("loopback".into())),
        push_token: Some(Some(token.into())),
        ..Default::default()
    };
    device.update_device(&update).await.unwrap()
}

/// Polls `check` until it returns `Some`, or panics after `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until no job is running and no offer is waiting to be sent, so that row counts
/// change only through the requests a test makes.
pub async fn settle(app: &TestApp) {
    eventually(Duration::from_secs(10), "background work to settle", || async {
        let busy: i64 = sqlx::query_scalar(
            "select count(*) from jobs where lease_owner is not null or kind = 'call.deliver' or run_at <= now()",
        )
        .fetch_one(&app.db)
        .await
        .ok()?;
        (busy == 0).then_some(())
    })
    .await;
}

/// Waits until a call reaches `status`.
pub async fn wait_for_status(
    client: &Client,
    call_id: &str,
    status: &str,
    within: Duration,
) -> pushdial_sdk::Call {
    eventually(
        within,
        &format!("call {call_id} to become {status}"),
        || async {
            let call = client.get_call(call_id).await.ok()?;
            (call.status == status).then_some(call)
        },
    )
    .await
}

/// The statuses of a call's events, in order, with `~` marking inferred ones.
pub async fn event_trail(client: &Client, call_id: &str) -> Vec<String> {
    client
        .call_events(call_id)
        .await
        .unwrap()
        .data
        .into_iter()
        .filter(|e| e.kind == "status")
        .map(|e| {
            if e.observed {
                e.status
            } else {
                format!("~{}", e.status)
            }
        })
        .collect()
}

/// A private Redis server on a free port, killed on drop.
pub struct PrivateRedis {
    child: Child,
    pub url: String,
}

impl PrivateRedis {
    pub async fn start() -> PrivateRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/test installs it)");
        let url = format!("redis://127.0.0.1:{port}");
        let client = redis::Client::open(url.as_str()).unwrap();
        eventually(
            Duration::from_secs(10),
            "private redis to answer",
            || async {
                let mut conn = client.get_multiplexed_async_connection().await.ok()?;
                redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .ok()
            },
        )
        .await;
        PrivateRedis { child, url }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
