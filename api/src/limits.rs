//! The per-process flood limit: requests per client IP per second, in memory (`governor`),
//! checked before anything else. Its keys are pruned regularly so memory does not grow with
//! the number of distinct addresses. It is the one limit left while Redis is down.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Requests between two prunings of idle keys.
const PRUNE_EVERY: u64 = 10_000;

/// Per-IP request limit of this api process.
pub struct FloodLimit {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
    seen: AtomicU64,
}

impl FloodLimit {
    pub fn new(per_second: u32) -> Self {
        let rate = NonZeroU32::new(per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        FloodLimit {
            limiter: RateLimiter::keyed(Quota::per_second(rate)),
            clock: DefaultClock::default(),
            seen: AtomicU64::new(0),
        }
    }

    /// `Some(wait)` when `ip` is over the limit.
    pub fn check(&self, ip: IpAddr) -> Option<Duration> {
        if self.seen.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        match self.limiter.check_key(&ip) {
            Ok(()) => None,
            Err(not_until) => Some(not_until.wait_time_from(self.clock.now())),
        }
    }

    /// Distinct addresses currently tracked.
    pub fn tracked(&self) -> usize {
        self.limiter.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn limits_per_address_and_prunes() {
        let flood = FloodLimit::new(2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(flood.check(a).is_none());
        assert!(flood.check(a).is_none());
        assert!(flood.check(a).is_some(), "third request in the same second");
        assert!(
            flood.check(b).is_none(),
            "another address has its own budget"
        );
        assert_eq!(flood.tracked(), 2);
        std::thread::sleep(Duration::from_millis(2500));
        flood.limiter.retain_recent();
        assert_eq!(flood.tracked(), 0, "idle keys are pruned");
    }
}
