//! The machine: CPU and memory of its processes, its cores (and PostgreSQL pinned to one of
//! them), and a description for the results file.

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::fixtures::psql_value;

/// PostgreSQL's processes on core 0; the api (`pids`), Redis and this process (its load
/// generators and pgbench, started after) on the other cores. Each process's former
/// affinity comes back when dropped. New PostgreSQL backends fork from the pinned
/// postmaster, so they stay on core 0.
pub(crate) struct CoreSplit {
    /// The cores left to everything but PostgreSQL, as taskset writes them.
    pub(crate) rest: String,
    /// Each pinned process and the cores it was allowed before.
    pub(crate) before: Vec<(u32, String)>,
}

impl CoreSplit {
    pub(crate) fn apply(pids: &[u32]) -> Result<CoreSplit> {
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

pub(crate) fn rss_bytes(pid: u32) -> u64 {
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
pub(crate) fn cpu_by_command() -> HashMap<String, f64> {
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
pub(crate) fn cpu_share(
    before: &HashMap<String, f64>,
    after: &HashMap<String, f64>,
    wall: Duration,
) -> Value {
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
pub(crate) fn busy_seconds() -> f64 {
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
pub(crate) fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 of /proc/PID/stat (utime, stime), counted after the name.
    (ticks(11) + ticks(12)) / 100.0
}

pub(crate) fn machine(database_url: &str) -> Value {
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
