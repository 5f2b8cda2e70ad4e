//! The per-process limits, in memory. The flood limit: requests per client IP per second
//! (`governor`), checked before anything else; its keys are pruned regularly so memory does
//! not grow with the number of distinct addresses, and it is the one limit left while Redis
//! is down besides the fail-closed ones (pairing, widgets), which then refuse outright. Bounded admission (`Admission`): requests in progress at once. `retry_later`:
//! the `Retry-After` of a fail-closed shared limit refused for want of Redis.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use pushdial_core::limits::LIMITS_UNAVAILABLE;
use pushdial_core::Error;

/// When to come back after `503 limits_unavailable`: Redis is usually back within seconds.
const LIMITS_RETRY_AFTER: Duration = Duration::from_secs(5);

/// A fail-closed limit's answer (`pushdial_core::limits::take_fail_closed` or
/// `peek_fail_closed`), with `Retry-After` on its `503 limits_unavailable`. Every
/// fail-closed call site of a handler goes through this.
pub fn retry_later<T>(taken: Result<T, Error>) -> Result<T, Error> {
    if let Err(Error::Unavailable { code, .. }) = &taken {
        if *code == LIMITS_UNAVAILABLE {
            let _ = crate::request::RATE
                .try_with(|r| r.borrow_mut().retry_after = Some(LIMITS_RETRY_AFTER));
        }
    }
    taken
}

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

/// Bounded admission: at most `limit` requests of this process in progress at once.
/// Past it, a request is refused at once (503) rather than queued: under overload a queue
/// only grows (each waiter holds memory and, soon, a timed-out database acquire), while a
/// fast refusal keeps the requests already admitted fast and tells clients to come back.
pub struct Admission {
    limit: usize,
    in_flight: AtomicUsize,
}

/// A request's place among those in progress, given back when dropped.
pub struct Admitted<'a>(&'a Admission);

impl Admission {
    pub fn new(limit: usize) -> Self {
        Admission {
            limit: limit.max(1),
            in_flight: AtomicUsize::new(0),
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// A place, or `None` when `limit` requests are already in progress.
    pub fn try_admit(&self) -> Option<Admitted<'_>> {
        let admitted = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.limit).then_some(n + 1)
            })
            .is_ok();
        admitted.then(|| {
            pushdial_core::metrics::METRICS.http_in_flight.inc();
            Admitted(self)
        })
    }
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        pushdial_core::metrics::METRICS.http_in_flight.dec();
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

    #[test]
    fn admits_up_to_the_limit_and_frees_places_when_done() {
        let admission = Admission::new(2);
        let first = admission.try_admit().unwrap();
        let second = admission.try_admit().unwrap();
        assert!(
            admission.try_admit().is_none(),
            "a third at once is refused"
        );
        drop(first);
        let third = admission.try_admit();
        assert!(third.is_some(), "a finished request frees its place");
        drop((second, third));
        assert_eq!(admission.in_flight.load(Ordering::Acquire), 0);
    }
}
