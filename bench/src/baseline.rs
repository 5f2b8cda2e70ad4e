//! Baselines: the physical limit of the same work, measured in the same run — pgbench
//! running create-call's transaction, and a Redis pub/sub hop.

use std::collections::HashMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures::StreamExt;
use hdrhistogram::Histogram;

/// The transaction one create-call commits, statement for statement (the call, its
/// timeline entry, the event, its webhook messages, the offer and expiry jobs), as a
/// pgbench script. The reads before it (key, policy, devices) are not in the baseline.
pub(crate) fn pgbench_script(org_id: &str, agent_id: &str) -> String {
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
pub(crate) fn pgbench(
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

pub(crate) fn pgbench_tps(out: &str) -> Result<f64> {
    out.lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow!("no tps in pgbench output:\n{out}"))
}

/// Latency of PUBLISH → message on a subscribed connection, at `rate`.
pub(crate) async fn redis_hop(url: &str, rate: f64, time: Duration) -> Result<Histogram<u64>> {
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
