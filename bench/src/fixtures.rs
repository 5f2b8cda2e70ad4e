//! What every benchmark stands on: pushdial processes started and stopped, organizations
//! and paired devices made through the api, calls created, and the database read and
//! cleared with psql.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::loopback::Hooks;
use crate::Args;

/// A pushdial process, killed when dropped.
pub(crate) struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    pub(crate) fn pid(&self) -> u32 {
        self.0.id()
    }
}

pub(crate) struct Bench {
    pub(crate) args: Args,
    pub(crate) prefix: String,
    pub(crate) http: reqwest::Client,
    pub(crate) push_url: String,
    pub(crate) hook_port: u16,
    pub(crate) hook: Arc<Hooks>,
    /// When the loopback push service received each call's wake-up.
    pub(crate) pushed: Arc<Mutex<HashMap<String, Instant>>>,
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Opens an api's `/metrics` on its own listener (`PUSHDIAL_METRICS_TOKEN`).
pub(crate) const BENCH_METRICS_TOKEN: &str = "bench-metrics";

impl Bench {
    pub(crate) fn start(&self, role: &str, port: u16) -> Proc {
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

    pub(crate) async fn ready(&self, port: u16) -> Result<()> {
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

    pub(crate) fn admin(&self, args: &[&str]) -> Result<Value> {
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
    pub(crate) async fn org(&self, base: &str, agents: usize) -> Result<(String, Vec<Device>)> {
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

    pub(crate) async fn device(&self, base: &str, sk: &str, name: String) -> Result<Device> {
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

    pub(crate) async fn post(
        &self,
        base: &str,
        sk: &str,
        path: &str,
        body: Value,
    ) -> Result<Value> {
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
pub(crate) struct Device {
    pub(crate) agent_id: String,
    pub(crate) token: String,
}

fn random_number() -> String {
    format!("+1212555{:04}", rand::random::<u16>() % 9000 + 1000)
}

/// One create-call request; its latency or an error.
pub(crate) async fn create_call(
    http: &reqwest::Client,
    base: &str,
    sk: &str,
    agent: &str,
) -> Result<Value> {
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

/// Drops the jobs earlier phases left queued (calls created with the worker paused), so
/// that a phase with a worker measures its own work, not a backlog.
pub(crate) fn clear_jobs(database_url: &str) -> Result<()> {
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
pub(crate) fn sqlx_free_agent(database_url: &str, org_id: &str) -> Result<Value> {
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

pub(crate) fn psql_value(database_url: &str, sql: &str) -> String {
    Command::new("psql")
        .args(["-X", "-q", "-t", "-A", database_url, "-c", sql])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}
