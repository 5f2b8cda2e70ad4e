//! 1: create-call throughput (worker paused) vs pgbench running the same transaction.

use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::Value;

use crate::baseline::{pgbench, pgbench_script, pgbench_tps};
use crate::fixtures::{free_port, sqlx_free_agent, Bench, Device};
use crate::load::run_closed;
use crate::report::{figure, Figure};
use crate::system::{busy_seconds, cpu_by_command, cpu_share, CoreSplit};

pub(crate) async fn throughput(b: &Bench, figures: &mut Vec<Figure>) -> Result<f64> {
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
