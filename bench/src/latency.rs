//! 2: create-call latency, open loop at 70 % of the maximum, from each request's intended
//! start, vs pgbench at the same rate (also from intended start).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use hdrhistogram::Histogram;

use crate::baseline::{pgbench, pgbench_script};
use crate::fixtures::{free_port, sqlx_free_agent, Bench, BENCH_METRICS_TOKEN};
use crate::load::{calls_to, open_loop, WARM_UP};
use crate::report::{figure, ms, Figure};

pub(crate) async fn latency(b: &Bench, max_rps: f64, figures: &mut Vec<Figure>) -> Result<()> {
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
