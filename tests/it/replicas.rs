//! Scale-out on one machine: two `pushdial api` and two `pushdial worker` processes on one
//! database and one Redis cooperate — offers cross replicas, presence is shared, a killed
//! worker's job is finished by another, a stopping api sends its agents elsewhere.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use pushdial_sdk::{AgentClient, Client, CreateCall, ServerMessage};

use crate::call_loop::next_offer;
use crate::fakes::hanging_push::push_service_that_hangs_once;
use crate::harness::*;

const BIN: &str = env!("CARGO_BIN_EXE_pushdial");

/// A pushdial process, killed when dropped.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Process {
    pub fn sigterm(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
    }

    fn sigkill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }

    /// Waits for the process to exit on its own, at most `limit`.
    pub async fn exit_status(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.0.try_wait() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }
}

struct Cluster {
    database_url: String,
    prefix: String,
    push_url: String,
}

impl Cluster {
    fn start(&self, role: &str, listen: &str) -> Process {
        let mut cmd = Command::new(BIN);
        cmd.arg(role)
            .env("DATABASE_URL", &self.database_url)
            .env(
                "REDIS_URL",
                std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
            )
            .env("PUSHDIAL_REDIS_PREFIX", &self.prefix)
            .env("PUSHDIAL_OFFER_TIMEOUT", "30s")
            .env("PUSHDIAL_PRESENCE_WINDOW", "6s")
            .env("PUSHDIAL_JOB_LEASE", "2s")
            .env("PUSHDIAL_WEBHOOK_TIMEOUT", "1s")
            .env("PUSHDIAL_JOB_POLL_INTERVAL", "200ms")
            .env("PUSHDIAL_SHUTDOWN_GRACE", "2s")
            .env("PUSHDIAL_SHUTDOWN_DRAIN", "3s")
            .env("PUSHDIAL_LISTEN", listen)
            .env("PUSHDIAL_LOOPBACK_PUSH_URL", &self.push_url)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        Process(cmd.spawn().unwrap())
    }
}

pub fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

pub async fn ready(url: &str) {
    let http = reqwest::Client::new();
    eventually(
        Duration::from_secs(20),
        &format!("{url} to be ready"),
        || async {
            let r = http.get(format!("{url}/readyz")).send().await.ok()?;
            (r.status() == 200).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_apis_and_two_workers_cooperate() {
    let database_url = fresh_database().await;
    let (push_url, pushes) = push_service_that_hangs_once().await;
    let cluster = Cluster {
        database_url: database_url.clone(),
        prefix: format!("rep{:x}:", rand::random::<u32>()),
        push_url,
    };
    let (a_addr, b_addr) = (free_addr(), free_addr());
    let (a_url, b_url) = (format!("http://{a_addr}"), format!("http://{b_addr}"));
    let _api_a = cluster.start("api", &a_addr);
    let api_b = cluster.start("api", &b_addr);
    let mut worker_1 = cluster.start("worker", &free_addr());
    let w2_addr = free_addr();
    let w2_url = format!("http://{w2_addr}");
    ready(&a_url).await;
    ready(&b_url).await;

    let db = sqlx::PgPool::connect(&database_url).await.unwrap();
    let org = {
        let mut conn = db.acquire().await.unwrap();
        pushdial_core::tenants::create_org(&mut conn, "Acme", "US")
            .await
            .unwrap()
    };
    let via_a = Client::new(&a_url, &org.secret_key).unwrap();
    let agent = via_a.create_agent("Ann", None).await.unwrap();
    let code = via_a.create_pairing_code(&agent.id).await.unwrap();
    let (phone, _) = AgentClient::pair(&a_url, &code.code, "phone", "cli")
        .await
        .unwrap();

    // The phone holds its socket on api B; api A sees it present.
    let phone_on_b = AgentClient::new(&b_url, phone.token()).unwrap();
    let mut stream = live_stream(&phone_on_b).await;
    eventually(Duration::from_secs(5), "presence through A", || async {
        via_a
            .get_agent(&agent.id)
            .await
            .ok()
            .filter(|a| a.presence == "online")
    })
    .await;

    // A call created through A reaches the socket held by B, offered once.
    let call = via_a
        .create_call(&CreateCall::for_agent("+12125551234", &agent.id), None)
        .await
        .unwrap();
    assert_eq!(next_offer(&mut stream).await, call.id);
    let again = next_message(&mut stream, Duration::from_secs(2), |m| match m {
        ServerMessage::CallOffer { call_id, .. } if call_id == call.id => Some(()),
        _ => None,
    })
    .await;
    assert_ne!(again, Next::Got(()), "the offer was not sent twice");
    assert_eq!(phone_on_b.ack(&call.id).await.unwrap().to, "+12125551234");

    // A second phone that only has push: worker 1 hangs sending its wake-up and is killed.
    let code = via_a.create_pairing_code(&agent.id).await.unwrap();
    let (sleeper, sleeper_pair) = AgentClient::pair(&a_url, &code.code, "sleeper", "android")
        .await
        .unwrap();
    use_loopback_push(&sleeper, "tok").await;
    let pushed = via_a
        .create_call(
            &CreateCall::for_device("+12125551235", &sleeper_pair.id),
            None,
        )
        .await
        .unwrap();
    eventually(
        Duration::from_secs(10),
        "worker 1 to be inside the push",
        || async { (pushes.load(Ordering::SeqCst) >= 1).then_some(()) },
    )
    .await;
    worker_1.sigkill();
    let _worker_2 = cluster.start("worker", &w2_addr);
    eventually(
        Duration::from_secs(15),
        "worker 2 to finish the job after the lease",
        || async { (pushes.load(Ordering::SeqCst) >= 2).then_some(()) },
    )
    .await;
    assert_eq!(sleeper.ack(&pushed.id).await.unwrap().to, "+12125551235");
    // The worker process serves its own health checks and metrics: the push it sent shows.
    ready(&w2_url).await;
    let http = reqwest::Client::new();
    eventually(
        Duration::from_secs(5),
        "worker 2's metrics to count its push",
        || async {
            let text = http
                .get(format!("{w2_url}/metrics"))
                .send()
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            text.lines()
                .any(|l| {
                    l.starts_with("pushdial_push_results_total{")
                        && l.contains("result=\"accepted\"")
                })
                .then_some(())
        },
    )
    .await;

    // Api B stops: readiness fails first while it still serves (the drain), then its
    // agents are told to reconnect, and are reachable through A.
    // The first socket went quiet during the worker part (and may have been closed for
    // that): the phone connects to B afresh, and B has recorded it once it says hello.
    drop(stream);
    let mut stream = phone_on_b.connect_stream().await.unwrap();
    let hello = next_message(&mut stream, Duration::from_secs(5), |m| {
        matches!(m, ServerMessage::Hello { .. }).then_some(())
    })
    .await;
    assert_eq!(hello, Next::Got(()));
    api_b.sigterm();
    eventually(Duration::from_secs(3), "B's readiness to fail", || async {
        let r = http.get(format!("{b_url}/readyz")).send().await.ok()?;
        (r.status() == 503).then_some(())
    })
    .await;
    let alive = http.get(format!("{b_url}/healthz")).send().await.unwrap();
    assert_eq!(alive.status(), 200, "B still serves while draining");
    let told = next_message(&mut stream, Duration::from_secs(5), |m| {
        matches!(m, ServerMessage::Reconnect).then_some(())
    })
    .await;
    assert_eq!(
        told,
        Next::Got(()),
        "a reconnect hint before the socket closes"
    );
    let phone_on_a = AgentClient::new(&a_url, phone.token()).unwrap();
    let mut stream_a = live_stream(&phone_on_a).await;
    eventually(
        Duration::from_secs(5),
        "the phone reachable through A again",
        || async {
            let devices = via_a.list_devices(Some(&agent.id)).await.ok()?;
            devices
                .data
                .iter()
                .find(|d| d.name == "phone")
                .filter(|d| d.presence == "online")
                .map(|_| ())
        },
    )
    .await;
    let next = via_a
        .create_call(&CreateCall::for_agent("+12125551236", &agent.id), None)
        .await
        .unwrap();
    assert_eq!(next.status, "offered");
    assert_eq!(next_offer(&mut stream_a).await, next.id);
}
