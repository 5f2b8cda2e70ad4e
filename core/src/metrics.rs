//! Prometheus metrics of one process, served by the api at `/metrics`. Counters and
//! histograms are recorded where things happen; gauges about shared state (job queue
//! depth and age, pools) are read at scrape time.

use std::sync::LazyLock;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Every metric of the process.
pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub call_transitions: IntCounterVec,
    pub click_to_offer: HistogramVec,
    pub jobs_ready: IntGaugeVec,
    pub job_oldest_age: IntGaugeVec,
    /// Ready jobs and the oldest one's age per lane, and for the organizations (and webhook
    /// endpoints) with the most ready jobs: a tenant's backlog, with bounded labels.
    pub lane_ready: IntGaugeVec,
    pub lane_oldest_age: IntGaugeVec,
    pub org_ready: IntGaugeVec,
    pub org_oldest_age: IntGaugeVec,
    pub endpoint_ready: IntGaugeVec,
    pub jobs_run: IntCounterVec,
    pub push_results: IntCounterVec,
    pub webhook_attempts: IntCounterVec,
    pub agent_sockets: IntGauge,
    pub rate_limit_refusals: IntCounterVec,
    pub dialing_refusals: IntCounterVec,
    pub db_pool: IntGaugeVec,
    pub job_wait: HistogramVec,
    pub job_duration: HistogramVec,
    pub redis_in_flight: IntGauge,
    pub redis_available: IntGauge,
    /// 1 while this process hears key changes (and so may answer keys from memory).
    pub key_cache_listening: IntGauge,
    pub redis_errors: IntCounterVec,
    /// Requests of this api process being served (admitted, not yet answered).
    pub http_in_flight: IntGauge,
    pub requests_shed: IntCounterVec,
    /// Widget callbacks refused by the widget's hourly caps, or because the caps could not
    /// be checked (Redis down: they fail closed).
    pub widget_callbacks_refused: IntCounterVec,
    /// Presence keys this api wrote again for the sockets it holds, after finding that
    /// Redis had lost them (a restart, a failover, a flush) or had been unreachable.
    pub presence_reasserted: IntCounterVec,
    /// Pending offers sent again on a socket: when it opened, or when Redis came back.
    pub offers_resent: IntCounterVec,
    /// Requests answered `503 dependency_unavailable`, by dependency and cause.
    pub dependency_unavailable: IntCounterVec,
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    let _ = registry.register(Box::new(c.clone()));
    c
}

fn gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    let _ = registry.register(Box::new(g.clone()));
    g
}

fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: Vec<f64>,
) -> HistogramVec {
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    let _ = registry.register(Box::new(h.clone()));
    h
}

/// The metrics of this process (names and labels are fixed, so building them cannot fail
/// at run time; a mistake would show at the first test).
#[allow(clippy::expect_used)]
pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let r = Registry::new();
    let latency = vec![
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
    ];
    let agent_sockets = IntGauge::new(
        "pushdial_agent_sockets",
        "Live agent WebSockets held by this process",
    )
    .expect("agent_sockets gauge");
    let _ = r.register(Box::new(agent_sockets.clone()));
    let redis_in_flight = IntGauge::new(
        "pushdial_redis_commands_in_flight",
        "Redis commands sent and not yet answered (one multiplexed connection per process)",
    )
    .expect("redis_in_flight gauge");
    let _ = r.register(Box::new(redis_in_flight.clone()));
    let redis_available = IntGauge::new(
        "pushdial_redis_available",
        "1 while Redis answers, 0 while it is presumed down and commands fail fast",
    )
    .expect("redis_available gauge");
    redis_available.set(1);
    let _ = r.register(Box::new(redis_available.clone()));
    let key_cache_listening = IntGauge::new(
        "pushdial_key_cache_listening",
        "1 while this process hears changes of API keys, so that it may answer them from memory",
    )
    .expect("key_cache_listening gauge");
    let _ = r.register(Box::new(key_cache_listening.clone()));
    let http_in_flight = IntGauge::new(
        "pushdial_http_requests_in_flight",
        "Requests this api process admitted and has not answered yet",
    )
    .expect("http_in_flight gauge");
    let _ = r.register(Box::new(http_in_flight.clone()));
    Metrics {
        http_requests: counter(
            &r,
            "pushdial_http_requests_total",
            "HTTP requests by route, method and status",
            &["route", "method", "status"],
        ),
        http_duration: histogram(
            &r,
            "pushdial_http_request_duration_seconds",
            "HTTP request latency",
            &["route", "method"],
            latency.clone(),
        ),
        call_transitions: counter(
            &r,
            "pushdial_call_transitions_total",
            "Call transitions by status and reason",
            &["status", "reason"],
        ),
        click_to_offer: histogram(
            &r,
            "pushdial_click_to_offer_seconds",
            "From the call's creation to its offer handed to a device",
            &["channel"],
            latency.clone(),
        ),
        jobs_ready: gauge(
            &r,
            "pushdial_jobs_ready",
            "Jobs due and not leased, by kind (read at scrape)",
            &["kind"],
        ),
        job_oldest_age: gauge(
            &r,
            "pushdial_job_oldest_age_seconds",
            "Age of the oldest due job, by kind (read at scrape)",
            &["kind"],
        ),
        lane_ready: gauge(
            &r,
            "pushdial_lane_jobs_ready",
            "Jobs due and not leased, by lane (call, bulk; read at scrape)",
            &["lane"],
        ),
        lane_oldest_age: gauge(
            &r,
            "pushdial_lane_oldest_age_seconds",
            "Age of the oldest due job, by lane (read at scrape)",
            &["lane"],
        ),
        org_ready: gauge(
            &r,
            "pushdial_org_jobs_ready",
            "Jobs due and not leased, by lane, for the 10 organizations with the most in each lane (read at scrape)",
            &["lane", "org_id"],
        ),
        org_oldest_age: gauge(
            &r,
            "pushdial_org_oldest_age_seconds",
            "Age of the oldest due job, by lane, for the organizations of pushdial_org_jobs_ready (read at scrape)",
            &["lane", "org_id"],
        ),
        endpoint_ready: gauge(
            &r,
            "pushdial_webhook_endpoint_deliveries_ready",
            "Deliveries due and not leased, for the 10 webhook endpoints with the most (read at scrape)",
            &["org_id", "endpoint_id"],
        ),
        jobs_run: counter(
            &r,
            "pushdial_jobs_total",
            "Jobs run by kind and outcome",
            &["kind", "outcome"],
        ),
        push_results: counter(
            &r,
            "pushdial_push_results_total",
            "Push sends by provider, result and the provider's reason",
            &["provider", "result", "reason"],
        ),
        webhook_attempts: counter(
            &r,
            "pushdial_webhook_attempts_total",
            "Webhook delivery attempts by result",
            &["result"],
        ),
        agent_sockets,
        rate_limit_refusals: counter(
            &r,
            "pushdial_rate_limit_refusals_total",
            "Requests refused by a rate limit, by policy",
            &["policy"],
        ),
        dialing_refusals: counter(
            &r,
            "pushdial_dialing_refusals_total",
            "Destinations refused by the dialing policy, by code",
            &["code"],
        ),
        db_pool: gauge(
            &r,
            "pushdial_db_pool_connections",
            "PostgreSQL pool connections by state (read at scrape)",
            &["state"],
        ),
        job_wait: histogram(
            &r,
            "pushdial_job_wait_seconds",
            "From a job falling due to a worker claiming it, by kind",
            &["kind"],
            latency.clone(),
        ),
        job_duration: histogram(
            &r,
            "pushdial_job_duration_seconds",
            "Time a job ran, by kind",
            &["kind"],
            latency.clone(),
        ),
        redis_in_flight,
        redis_available,
        key_cache_listening,
        redis_errors: counter(
            &r,
            "pushdial_redis_errors_total",
            "Redis commands that failed, by cause",
            &["cause"],
        ),
        http_in_flight,
        requests_shed: counter(
            &r,
            "pushdial_requests_shed_total",
            "Requests answered 503 at once because the process was at its limit of requests in progress, by route",
            &["route"],
        ),
        widget_callbacks_refused: counter(
            &r,
            "pushdial_widget_callbacks_refused_total",
            "Widget callbacks refused by the widget's hourly caps (callbacks_cap, scheduled_cap) or while the caps cannot be checked (limits_unavailable)",
            &["reason"],
        ),
        presence_reasserted: counter(
            &r,
            "pushdial_presence_reasserted_total",
            "Sockets whose presence this api wrote again at once because Redis had lost it or had been unreachable (reason: redis_returned)",
            &["reason"],
        ),
        offers_resent: counter(
            &r,
            "pushdial_offers_resent_total",
            "Pending offers sent again on a socket (reason: socket_opened, redis_returned, redis_down: sent from PostgreSQL while Redis does not answer) or whose delivery waits for the phone's socket (waiting_for_socket)",
            &["reason"],
        ),
        dependency_unavailable: counter(
            &r,
            "pushdial_dependency_unavailable_total",
            "Requests answered 503 dependency_unavailable, by dependency (postgres, redis) and cause",
            &["dependency", "cause"],
        ),
        registry: r,
    }
});

impl Metrics {
    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "metrics not encoded");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Shortest time between two reads of the job queue's aggregate by one process.
const QUEUE_SAMPLE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Most ready jobs one sample reads (half from each lane's oldest); depths beyond it are
/// reported as this many.
const QUEUE_SAMPLE_CAP: i64 = 50_000;

/// Organizations (and endpoints) named in the per-tenant gauges, per lane: the ones with
/// the most ready jobs, so that the labels stay few however many tenants there are.
const TOP_TENANTS: usize = 10;

/// When this process last sampled the queue (held while a sample is being taken).
static QUEUE_SAMPLED: tokio::sync::Mutex<Option<std::time::Instant>> =
    tokio::sync::Mutex::const_new(None);

/// Refreshes the gauges read from shared state: the pool's (`max_connections` is the
/// configured size) and the queue's.
pub async fn refresh(db: &sqlx::PgPool, max_connections: u32) {
    let m = &*METRICS;
    let size = db.size() as i64;
    let idle = db.num_idle() as i64;
    m.db_pool.with_label_values(&["idle"]).set(idle);
    m.db_pool.with_label_values(&["used"]).set(size - idle);
    m.db_pool
        .with_label_values(&["max"])
        .set(i64::from(max_connections));
    // The queue's aggregate costs a read of the ready jobs: taken at most once per
    // `QUEUE_SAMPLE_EVERY` per process however often anyone scrapes (a scrape in between
    // serves the last sample), one at a time, and over at most `QUEUE_SAMPLE_CAP` jobs, the
    // oldest first through the claim index, so a backlog of millions costs what 50,000 do.
    let Ok(mut last) = QUEUE_SAMPLED.try_lock() else {
        return;
    };
    if last.is_some_and(|at| at.elapsed() < QUEUE_SAMPLE_EVERY) {
        return;
    }
    *last = Some(std::time::Instant::now());
    let rows = sqlx::query!(
        r#"select lane as "lane!", kind as "kind!", org_id as "org_id!", lane_key as "lane_key!",
                  count(*) as "ready!",
                  coalesce(extract(epoch from now() - min(run_at)), 0)::float8 as "age!"
           from ((select lane, kind, org_id, lane_key, run_at from jobs
                  where lane = 0 and lease_owner is null and dead_at is null and run_at <= now()
                  order by run_at limit $1)
                 union all
                 (select lane, kind, org_id, lane_key, run_at from jobs
                  where lane = 1 and lease_owner is null and dead_at is null and run_at <= now()
                  order by run_at limit $1)) oldest
           group by lane, kind, org_id, lane_key"#,
        QUEUE_SAMPLE_CAP / 2
    )
    .fetch_all(db)
    .await;
    match rows {
        Ok(rows) => {
            let samples: Vec<Sample> = rows
                .into_iter()
                .map(|r| Sample {
                    lane: if r.lane == 0 { "call" } else { "bulk" },
                    kind: r.kind,
                    org_id: r.org_id,
                    lane_key: r.lane_key,
                    ready: r.ready,
                    age: r.age,
                })
                .collect();
            publish_queue(m, &samples);
        }
        Err(e) => tracing::warn!(error = %e, "job queue metrics not read"),
    }
}

/// Ready jobs of one (lane, kind, organization, lane key) in a sample of the queue.
struct Sample {
    lane: &'static str,
    kind: String,
    org_id: String,
    lane_key: String,
    ready: i64,
    age: f64,
}

/// Sets the queue gauges from a sample: by kind, by lane, and for the organizations and
/// endpoints with the most ready jobs.
fn publish_queue(m: &Metrics, samples: &[Sample]) {
    use std::collections::HashMap;
    fn add<K: std::hash::Hash + Eq>(to: &mut HashMap<K, (i64, f64)>, key: K, s: &Sample) {
        let e = to.entry(key).or_insert((0, 0.0));
        e.0 += s.ready;
        e.1 = e.1.max(s.age);
    }
    let mut kinds = HashMap::new();
    let mut lanes = HashMap::new();
    let mut orgs = HashMap::new();
    let mut endpoints = HashMap::new();
    for s in samples {
        add(&mut kinds, s.kind.as_str(), s);
        add(&mut lanes, s.lane, s);
        add(&mut orgs, (s.lane, s.org_id.as_str()), s);
        if s.kind == <crate::queue::jobs::WebhookDeliver as crate::queue::JobKind>::KIND {
            add(&mut endpoints, (s.org_id.as_str(), s.lane_key.as_str()), s);
        }
    }
    m.jobs_ready.reset();
    m.job_oldest_age.reset();
    for (kind, (ready, age)) in &kinds {
        m.jobs_ready.with_label_values(&[kind]).set(*ready);
        m.job_oldest_age.with_label_values(&[kind]).set(*age as i64);
    }
    m.lane_ready.reset();
    m.lane_oldest_age.reset();
    for lane in ["call", "bulk"] {
        let (ready, age) = lanes.get(lane).copied().unwrap_or((0, 0.0));
        m.lane_ready.with_label_values(&[lane]).set(ready);
        m.lane_oldest_age.with_label_values(&[lane]).set(age as i64);
    }
    m.org_ready.reset();
    m.org_oldest_age.reset();
    for lane in ["call", "bulk"] {
        let mut top: Vec<_> = orgs.iter().filter(|((l, _), _)| *l == lane).collect();
        top.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.0 .1.cmp(b.0 .1)));
        for ((lane, org), (ready, age)) in top.into_iter().take(TOP_TENANTS) {
            m.org_ready.with_label_values(&[lane, org]).set(*ready);
            m.org_oldest_age
                .with_label_values(&[lane, org])
                .set(*age as i64);
        }
    }
    m.endpoint_ready.reset();
    let mut top: Vec<_> = endpoints.iter().collect();
    top.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.0.cmp(b.0)));
    for ((org, endpoint), (ready, _)) in top.into_iter().take(TOP_TENANTS) {
        m.endpoint_ready
            .with_label_values(&[org, endpoint])
            .set(*ready);
    }
}
