//! Waiting before trying again: the reconnect [`Backoff`] (exponential, full jitter),
//! the server's `Retry-After`, and the bounded retry of one request.

use std::future::Future;
use std::time::Duration;

use rand::Rng;
use tracing::debug;

use crate::error::Result;

/// Exponential backoff with full jitter: the n-th delay is uniform in
/// `[0, min(cap, base · 2ⁿ)]`. Exists so thousands of agents losing the same
/// server do not reconnect in lockstep.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    /// The agent's reconnect policy: base 250 ms, cap 30 s.
    pub fn reconnect() -> Backoff {
        Backoff::new(Duration::from_millis(250), Duration::from_secs(30))
    }

    /// A backoff starting at `base` and never exceeding `cap`.
    pub fn new(base: Duration, cap: Duration) -> Backoff {
        Backoff {
            base,
            cap,
            attempt: 0,
        }
    }

    /// Upper bound of the next delay: `min(cap, base · 2^attempt)`.
    pub fn ceiling(&self) -> Duration {
        let factor = 2u32.saturating_pow(self.attempt.min(31));
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The next delay (random in `[0, ceiling]`); grows the ceiling.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        jitter(ceiling)
    }

    /// Back to the first step (after a successful `hello`).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// The delay before retrying after `e`: the backoff's, but never sooner than the server's
/// `Retry-After`, spread over up to half as long again, so that clients refused together
/// do not all come back at the same instant.
pub(super) fn after_refusal(e: &crate::Error, backoff: Duration) -> Duration {
    match e.retry_after() {
        Some(asked) => backoff.max(asked + jitter(asked / 2)),
        None => backoff,
    }
}

/// A uniformly random duration in `[0, max]` (millisecond resolution).
pub(super) fn jitter(max: Duration) -> Duration {
    Duration::from_millis(rand::thread_rng().gen_range(0..=millis(max)))
}

/// Whole milliseconds of `d`, saturating.
pub(super) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Attempts for a request that failed transiently.
const ATTEMPTS: u32 = 3;

/// Runs `op` up to [`ATTEMPTS`] times while it fails transiently.
pub(super) async fn with_retry<T, Fut>(mut op: impl FnMut() -> Fut) -> Result<T>
where
    Fut: Future<Output = Result<T>>,
{
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(2));
    let mut attempt = 1;
    loop {
        match op().await {
            Err(e) if e.is_transient() && attempt < ATTEMPTS => {
                let delay = after_refusal(&e, backoff.next_delay());
                debug!(error = %e.display_chain(), attempt, "transient failure; retrying");
                attempt += 1;
                tokio::time::sleep(delay).await;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[tokio::test(start_paused = true)]
    async fn a_refused_request_is_retried_no_sooner_than_the_server_asked() {
        let overloaded = || crate::Error::Api {
            status: 503,
            problem: Box::new(crate::types::Problem::from_response(503, None, b"")),
            retry_after: crate::error::retry_after(Some("2")),
        };
        let tries = std::sync::atomic::AtomicU32::new(0);
        let started = tokio::time::Instant::now();
        let done = with_retry(|| {
            let n = tries.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                if n == 0 {
                    Err(overloaded())
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(done.ok(), Some(1));
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_secs(2) && waited <= Duration::from_secs(3),
            "{waited:?}"
        );
        // Without Retry-After the backoff alone decides (at most 200 ms the first time).
        let d = after_refusal(
            &crate::Error::Timeout("reading"),
            Duration::from_millis(150),
        );
        assert_eq!(d, Duration::from_millis(150));
    }

    #[test]
    fn backoff_stays_within_bounds_and_resets() {
        let base = Duration::from_millis(250);
        let cap = Duration::from_secs(30);
        let mut b = Backoff::new(base, cap);
        for n in 0..100u32 {
            let ceiling = b.ceiling();
            let expected = base.saturating_mul(2u32.saturating_pow(n.min(31))).min(cap);
            assert_eq!(ceiling, expected, "attempt {n}");
            let d = b.next_delay();
            assert!(d <= ceiling, "attempt {n}: {d:?} > {ceiling:?}");
            assert!(d <= cap);
        }
        assert_eq!(b.ceiling(), cap);
        b.reset();
        assert_eq!(b.ceiling(), base);
        assert!(b.next_delay() <= base);
    }

    #[test]
    fn backoff_jitter_is_spread() {
        let mut seen = HashSet::new();
        for _ in 0..50 {
            let mut b = Backoff::new(Duration::from_secs(10), Duration::from_secs(10));
            seen.insert(b.next_delay());
        }
        assert!(seen.len() > 1, "full jitter should vary");
    }

    #[test]
    fn reconnect_policy_matches_contract() {
        let b = Backoff::reconnect();
        assert_eq!(b.ceiling(), Duration::from_millis(250));
        let mut b = b;
        for _ in 0..20 {
            b.next_delay();
        }
        assert_eq!(b.ceiling(), Duration::from_secs(30));
    }
}
