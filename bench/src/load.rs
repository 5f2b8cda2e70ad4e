//! Load generators: closed loops (clients back to back) and open loops (a constant rate,
//! latency from each request's intended start).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::fixtures::{create_call, Device};

/// `c` clients creating calls back to back for `time`; (successes, errors).
pub(crate) async fn run_closed(
    http: &reqwest::Client,
    base: &str,
    sk: &str,
    devices: &[Device],
    c: usize,
    time: Duration,
) -> (u64, u64) {
    let deadline = Instant::now() + time;
    let mut tasks = Vec::new();
    for i in 0..c {
        let (http, base, sk) = (http.clone(), base.to_owned(), sk.to_owned());
        let agents: Vec<String> = devices.iter().map(|d| d.agent_id.clone()).collect();
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut err) = (0u64, 0u64);
            let mut k = i;
            while Instant::now() < deadline {
                k += 1;
                match create_call(&http, &base, &sk, &agents[k % agents.len()]).await {
                    Ok(_) => ok += 1,
                    Err(e) => {
                        err += 1;
                        if err == 1 {
                            eprintln!("  create call failed: {e}");
                        }
                    }
                }
            }
            (ok, err)
        }));
    }
    let mut total = (0, 0);
    for t in tasks {
        let (ok, err) = t.await.unwrap_or((0, 0));
        total.0 += ok;
        total.1 += err;
    }
    total
}

/// Create-call requests for `open_loop`, spread over `agents`.
pub(crate) fn calls_to(
    http: &reqwest::Client,
    base: &str,
    sk: &str,
    agents: &Arc<Vec<String>>,
) -> impl Fn(u64) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>>
       + Send
       + Sync
       + 'static {
    let (http, base, sk, agents) = (http.clone(), base.to_owned(), sk.to_owned(), agents.clone());
    move |i| {
        let (http, base, sk, agents) = (http.clone(), base.clone(), sk.clone(), agents.clone());
        Box::pin(async move {
            create_call(&http, &base, &sk, &agents[i as usize % agents.len()])
                .await
                .is_ok()
        })
    }
}

/// Load before an open-loop measurement, at its rate, not counted: a fresh api process
/// opens its database connections and prepares its statements under the first requests
/// (about 20 requests of up to 200 ms on the development machine).
pub(crate) const WARM_UP: Duration = Duration::from_secs(2);

/// Requests sent at a constant rate regardless of answers; each latency counted from the
/// request's intended start (so a stall shows in every request it delayed).
pub(crate) async fn open_loop<F, Fut>(rate: f64, time: Duration, one: F) -> (Histogram<u64>, u64)
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    open_loop_windowed(rate, time, None, one).await
}

/// `open_loop`, also recording each success into `window` (which a sampler may empty to
/// see the latency of the last interval rather than of the whole run).
pub(crate) async fn open_loop_windowed<F, Fut>(
    rate: f64,
    time: Duration,
    window: Option<Arc<Mutex<Histogram<u64>>>>,
    one: F,
) -> (Histogram<u64>, u64)
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    let one = Arc::new(one);
    let hist = Arc::new(Mutex::new(Histogram::<u64>::new(3).unwrap()));
    let errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let start = Instant::now();
    let total = (rate * time.as_secs_f64()) as u64;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..total {
        let intended = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(intended.into()).await;
        let (one, hist, errors, window) =
            (one.clone(), hist.clone(), errors.clone(), window.clone());
        tasks.spawn(async move {
            let ok = one(i).await;
            let micros = intended.elapsed().as_micros() as u64;
            if micros > 50_000 && std::env::var_os("BENCH_STALLS").is_some() {
                eprintln!(
                    "stall: request {i} at {:.3} s took {} ms",
                    (intended - start).as_secs_f64(),
                    micros / 1000
                );
            }
            if ok {
                let _ = hist.lock().unwrap().record(micros.max(1));
                if let Some(window) = &window {
                    let _ = window.lock().unwrap().record(micros.max(1));
                }
            } else {
                errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let h = hist.lock().unwrap().clone();
    (h, errors.load(std::sync::atomic::Ordering::Relaxed))
}
