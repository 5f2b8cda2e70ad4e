//! The tenant limits of DESIGN §6, on top of the shared GCRA (`ratelimit`): public-API
//! requests per organization and per key, calls per organization per minute, calls per
//! destination per hour, pairing attempts per IP.
//!
//! When Redis is unavailable every tenant limit **fails open**: requests are served and
//! only the per-IP flood limit of each api process (local, in memory) still applies. A
//! Redis outage must not take the API down; the flood limit and the dialing policy keep
//! the worst abuse out meanwhile.

use std::time::Duration;

use crate::ratelimit::{Decision, Limit};
use crate::{Ctx, Error, Result};

/// A refusal, as the caller reports it.
fn refused(policy: &'static str, d: &Decision) -> Error {
    Error::RateLimited {
        policy,
        retry_after: d.retry_after.max(Duration::from_millis(1)),
    }
}

/// Counts one request under `key` against `limit`; `Ok(None)` when Redis could not tell
/// (fail open), `Err(rate_limited)` when refused.
pub async fn take(
    ctx: &Ctx,
    policy: &'static str,
    key: &str,
    limit: Limit,
) -> Result<Option<Decision>> {
    match ctx
        .presence
        .rate_limit(&format!("{policy}:{key}"), limit)
        .await
    {
        Ok(d) if !d.allowed => {
            crate::metrics::METRICS
                .rate_limit_refusals
                .with_label_values(&[policy])
                .inc();
            Err(refused(policy, &d))
        }
        Ok(d) => Ok(Some(d)),
        Err(e) => {
            tracing::warn!(policy, error = %e, "rate limit unavailable; failing open");
            Ok(None)
        }
    }
}

/// `rate` per minute, bursting to `rate`.
pub fn per_minute(rate: u32) -> Limit {
    Limit {
        rate: rate.max(1),
        period: Duration::from_secs(60),
        burst: rate.max(1),
    }
}

/// `rate` per hour, bursting to `rate`.
pub fn per_hour(rate: u32) -> Limit {
    Limit {
        rate: rate.max(1),
        period: Duration::from_secs(3600),
        burst: rate.max(1),
    }
}
