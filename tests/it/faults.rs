//! Operators' faults under a connected phone: Redis restarting empty, an api killed with
//! SIGKILL, PostgreSQL terminating every connection, and a configuration that would make
//! workers deliver twice. No call is lost, no connected phone is refused, no request is
//! answered 500.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pushdial_sdk::{AgentClient, CreateCall, Report, ServerMessage};

use crate::harness::*;
use crate::replicas::{free_addr, ready, Process};

const BIN: &str = env!("CARGO_BIN_EXE_pushdial");

/// A Redis server of the test's own on a fixed port, which the test stops (SIGKILL, as a
/// crash) and starts again empty, as a restart or a failover to an empty replica does.
struct RestartableRedis {
    port: u16,
    child: Option<Child>,
    url: String,
}

impl RestartableRedis {
    async fn start() -> RestartableRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut redis = RestartableRedis {
            port,
            child: None,
            url: format!("redis://127.0.0.1:{port}"),
        };
        redis.restart().await;
        redis
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server (empty: nothing is saved) and waits until it answers.
    async fn restart(&mut self) {
        self.stop();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
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
        self.child = Some(child);
        let client = redis::Client::open(self.url.as_str()).unwrap();
        eventually(Duration::from_secs(10), "redis to answer", || async {
            let mut conn = client.get_multiplexed_async_connection().await.ok()?;
            redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .ok()
        })
        .await;
    }
}

impl Drop for RestartableRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The value of one series of a metric (summed over the series matching `labels`).
fn metric_sum(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn wait_online(client: &pushdial_sdk::Client, agent_id: &str) {
    eventually(Duration::from_secs(5), "the agent to be online", || async {
        client
            .get_agent(agent_id)
            .await
            .ok()
            .filter(|a| a.presence == "online")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarting_empty_neither_refuses_a_connected_phone_nor_loses_its_offers() {
    let mut redis = RestartableRedis::start().await;
    let url = redis.url.clone();
    let app = TestApp::spawn_tuned(move |c| {
        c.redis_url = url;
        // Heartbeats every 20 s, as in production: what Redis forgets, they rewrite late.
        c.presence_window = Duration::from_secs(60);
        c.offer_timeout = Duration::from_secs(8);
    })
    .await;
    let client = app.client();
    let (agent_id, device, _) = app.agent_with_device(&client, "Ann").await;
    let phone = RunningAgent::start(device, Duration::from_millis(100)).await;
    wait_online(&client, &agent_id).await;

    redis.stop();
    // Placed while Redis is down: its offer cannot go through Redis.
    let during = client
        .create_call(&CreateCall::for_agent("+14155550100", &agent_id), None)
        .await
        .expect("a call while Redis is down (PostgreSQL's heartbeat shows the phone)");
    tokio::time::sleep(Duration::from_secs(2)).await;
    redis.restart().await;

    // Redis is back, without a single presence key; the phone held its socket throughout.
    let mut calls = vec![during.id];
    for i in 0..6 {
        let to = format!("+1415555011{i}");
        match client
            .create_call(&CreateCall::for_agent(&to, &agent_id), None)
            .await
        {
            Ok(call) => calls.push(call.id),
            Err(e) => panic!(
                "call {i} after Redis came back refused although the phone is connected: {}",
                e.display_chain()
            ),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for id in &calls {
        let done = eventually(
            Duration::from_secs(20),
            &format!("call {id} to end"),
            || async {
                let call = client.get_call(id).await.ok()?;
                call.is_terminal().then_some(call)
            },
        )
        .await;
        assert_eq!(
            (done.status.as_str(), done.reason.as_deref()),
            ("completed", None),
            "call {id}: {:?}",
            event_trail(&client, id).await
        );
    }
    let metrics = app.metrics().await;
    assert!(
        metric_sum(&metrics, "pushdial_presence_reasserted_total", &[]) >= 1.0,
        "the re-assertion shows in /metrics"
    );
    phone.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_to_a_phone_whose_api_was_killed_reaches_it_on_the_other_api() {
    let app = TestApp::spawn_tuned(|c| {
        c.presence_window = Duration::from_secs(60);
        c.offer_timeout = Duration::from_secs(8);
    })
    .await;
    // A second api, a real process on the same database and Redis, to be killed.
    let b_addr = free_addr();
    let b_url = format!("http://{b_addr}");
    let mut api_b = Process(
        Command::new(BIN)
            .arg("api")
            .env("DATABASE_URL", &app.database_url)
            .env("REDIS_URL", &app.config.redis_url)
            .env("PUSHDIAL_REDIS_PREFIX", &app.config.redis_prefix)
            .env("PUSHDIAL_PRESENCE_WINDOW", "60s")
            .env("PUSHDIAL_OFFER_TIMEOUT", "8s")
            .env("PUSHDIAL_JOB_LEASE", "2s")
            .env("PUSHDIAL_WEBHOOK_TIMEOUT", "1s")
            .env("PUSHDIAL_LISTEN", &b_addr)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    ready(&b_url).await;
    let client = app.client();
    let (agent_id, device, _) = app.agent_with_device(&client, "Ann").await;
    let phone_on_b = AgentClient::new(&b_url, device.token()).unwrap();
    let stream_b = live_stream(&phone_on_b).await;
    wait_online(&client, &agent_id).await;

    // B dies without a word: its sockets drop, its presence keys still name it.
    api_b.0.kill().unwrap();
    api_b.0.wait().unwrap();
    drop(stream_b);
    let call = client
        .create_call(&CreateCall::for_agent("+14155550123", &agent_id), None)
        .await
        .expect("the phone was connected a moment ago");

    // A second later the phone is back, on the surviving api: it gets the offer there.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut stream_a = live_stream(&device).await;
    let offered = next_message(&mut stream_a, Duration::from_secs(6), |m| match m {
        ServerMessage::CallOffer { call_id, .. } if call_id == call.id => Some(()),
        _ => None,
    })
    .await;
    assert_eq!(
        offered,
        Next::Got(()),
        "the pending offer is sent on the new socket: {:?}",
        event_trail(&client, &call.id).await
    );
    assert_eq!(device.ack(&call.id).await.unwrap().to, "+14155550123");
    for status in ["accepted", "dialing"] {
        device.report(&call.id, &Report::new(status)).await.unwrap();
    }
    let completed = Report {
        duration_s: Some(3),
        ..Report::new("completed")
    };
    device.report(&call.id, &completed).await.unwrap();
    let done = client.get_call(&call.id).await.unwrap();
    assert_eq!(done.status, "completed");
    let metrics = app.metrics().await;
    assert!(
        metric_sum(
            &metrics,
            "pushdial_offers_resent_total",
            &["reason=\"socket_opened\""]
        ) >= 1.0,
        "the re-sent offer shows in /metrics"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_cut_off_by_postgresql_terminating_connections_are_503_never_500() {
    let app = TestApp::spawn_tuned(|c| {
        // The load is the test's, from one address: no rate limit in the way.
        c.limit_api_per_second = 100_000;
        c.limit_ip_per_second = 100_000;
        // A phone whose ack is cut off gets a 503 with `Retry-After: 1`, and the reference
        // agent acks again after that second plus up to half of it in jitter (up to three
        // attempts). The calls must complete, so the offer has to wait for that retry: the
        // production default of 10 s does, the harness's 1.5 s does not (the retry lands
        // 1.1 to 1.7 s after the offer, and the offer timeout then fails the call with
        // `not_delivered`, its only device tried, in whichever order the two happen).
        c.offer_timeout = Duration::from_secs(10);
    })
    .await;
    let client = app.client();
    let (agent_id, device, _) = app.agent_with_device(&client, "Ann").await;
    let phone = RunningAgent::start(device, Duration::from_millis(100)).await;
    wait_online(&client, &agent_id).await;
    let database = app.database_url.rsplit('/').next().unwrap().to_owned();
    let admin = sqlx::PgPool::connect(&format!("{}/postgres", server_url()))
        .await
        .unwrap();

    // Four clients read and place calls while every connection to the database is
    // terminated (SQLSTATE 57P01, as when PostgreSQL restarts) five times.
    let statuses = Arc::new(std::sync::Mutex::new(Vec::<(u16, String, bool)>::new()));
    let created = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let numbers = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = vec![];
    for worker in 0..4 {
        let (url, key) = (app.url.clone(), app.org.secret_key.clone());
        let (statuses, created, numbers, stop) = (
            statuses.clone(),
            created.clone(),
            numbers.clone(),
            stop.clone(),
        );
        let agent_id = agent_id.clone();
        load.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let place = worker == 0 && i.is_multiple_of(4);
                let req = if place {
                    let n = numbers.fetch_add(1, Ordering::Relaxed);
                    http.post(format!("{url}/v1/calls"))
                        .json(&serde_json::json!({
                            "to": format!("+1415555{:04}", 2000 + n), "agent_id": agent_id
                        }))
                } else if i.is_multiple_of(2) {
                    http.get(format!("{url}/v1/calls?limit=5"))
                } else {
                    http.get(format!("{url}/v1/agents/{agent_id}"))
                };
                let Ok(resp) = req.bearer_auth(&key).send().await else {
                    continue;
                };
                let status = resp.status().as_u16();
                let retry_after = resp.headers().contains_key("retry-after");
                let body: serde_json::Value = resp.json().await.unwrap_or_default();
                if place && status == 201 {
                    created
                        .lock()
                        .unwrap()
                        .push(body["id"].as_str().unwrap().to_owned());
                }
                let code = body["code"].as_str().unwrap_or_default().to_owned();
                statuses.lock().unwrap().push((status, code, retry_after));
            }
        }));
    }
    // A termination cuts off only the requests in flight at that instant; on a busy machine
    // five of them may all fall between requests. Terminate five times, and then on until a
    // request was cut off (bounded), so that the checks below always have 503s to check.
    let cut_off = || statuses.lock().unwrap().iter().any(|(s, ..)| *s >= 500);
    let mut rounds = 0;
    while rounds < 5 || (!cut_off() && rounds < 50) {
        rounds += 1;
        tokio::time::sleep(Duration::from_millis(400)).await;
        sqlx::query(
            "select pg_terminate_backend(pid) from pg_stat_activity
             where datname = $1 and pid <> pg_backend_pid()",
        )
        .bind(&database)
        .execute(&admin)
        .await
        .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }

    let statuses = statuses.lock().unwrap().clone();
    let server_errors: Vec<_> = statuses.iter().filter(|(s, ..)| *s >= 500).collect();
    assert!(
        !server_errors.is_empty(),
        "requests were cut off (else this test proves nothing)"
    );
    for (status, code, retry_after) in &server_errors {
        assert_eq!(
            (*status, code.as_str(), *retry_after),
            (503, "dependency_unavailable", true),
            "a request cut off by PostgreSQL"
        );
    }
    // The pool recovers by itself: every request succeeds again.
    for _ in 0..20 {
        let (status, body) = app
            .api(reqwest::Method::GET, "/v1/calls?limit=5", None)
            .await;
        assert_eq!(status, 200, "{body}");
    }
    // Every call placed is taken by the phone and completed.
    let created = created.lock().unwrap().clone();
    assert!(!created.is_empty(), "calls were placed during the fault");
    for id in &created {
        let done = eventually(
            Duration::from_secs(20),
            &format!("call {id} to end"),
            || async {
                let call = client.get_call(id).await.ok()?;
                call.is_terminal().then_some(call)
            },
        )
        .await;
        assert_eq!(
            (done.status.as_str(), done.reason.as_deref()),
            ("completed", None),
            "call {id}: {:?}",
            event_trail(&client, id).await
        );
    }
    let metrics = app.metrics().await;
    assert!(
        metric_sum(
            &metrics,
            "pushdial_dependency_unavailable_total",
            &["dependency=\"postgres\""]
        ) >= 1.0,
        "the 503s show in /metrics by cause"
    );
    phone.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_timeout_not_shorter_than_the_job_lease_is_refused_with_the_reason() {
    let out = Command::new(BIN)
        .arg("worker")
        .env("PUSHDIAL_WEBHOOK_TIMEOUT", "30s")
        .env("PUSHDIAL_JOB_LEASE", "30s")
        .env("PUSHDIAL_LISTEN", free_addr())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success(), "the worker refuses to start");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "PUSHDIAL_WEBHOOK_TIMEOUT (30s) must be shorter than PUSHDIAL_JOB_LEASE (30s)"
        ) && stderr.contains("sent twice"),
        "the message names both settings and why: {stderr}"
    );
}
