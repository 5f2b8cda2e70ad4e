//! The tenant limits of DESIGN §6, on top of the shared GCRA (`ratelimit`): public-API
//! requests per organization and per key, calls per organization per minute, calls per
//! destination per hour, pairing attempts per IP.
//!
//! When Redis is unavailable every tenant limit **fails open** ([`take`]): requests are
//! served and only the per-IP flood limit of each api process (local, in memory) still
//! applies. A Redis outage must not take the API down; the flood limit and the dialing
//! policy keep the worst abuse out meanwhile.
//!
//! The limits that stand between a stranger and a secret or a phone call — pairing (a
//! typed code is a short secret) and the website widget (anyone may ask it to call a
//! number) — **fail closed** instead ([`take_fail_closed`], [`peek_fail_closed`]): while
//! Redis is down they answer `503 limits_unavailable`, since the per-process flood limit
//! alone would let a distributed guesser through.

use std::net::IpAddr;
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
    match ask(ctx, policy, key, limit).await {
        Ok(decided) => decided.map(Some),
        Err(e) => {
            tracing::warn!(policy, error = %e, "rate limit unavailable; failing open");
            Ok(None)
        }
    }
}

/// Counts one request under `key`: the outer `Err` when Redis could not tell (each caller
/// decides whether that opens or closes), the inner `Err(rate_limited)` when refused.
async fn ask(
    ctx: &Ctx,
    policy: &'static str,
    key: &str,
    limit: Limit,
) -> std::result::Result<Result<Decision>, redis::RedisError> {
    let d = ctx
        .presence
        .rate_limit(&format!("{policy}:{key}"), limit)
        .await?;
    if d.allowed {
        return Ok(Ok(d));
    }
    crate::metrics::METRICS
        .rate_limit_refusals
        .with_label_values(&[policy])
        .inc();
    Ok(Err(refused(policy, &d)))
}

/// The code of the `503` a fail-closed limit answers while Redis is down.
pub const LIMITS_UNAVAILABLE: &str = "limits_unavailable";

/// Failed typed pairing codes per minute across the deployment. A wrong code names no
/// organization (the code is the secret), so the budget is global: once spent, typed codes
/// are locked for [`PAIRING_LOCK`] (`429`, with `Retry-After`), while the QR code's token
/// still pairs. With N codes alive, a guesser's chance per minute is at most 30 · N / 30^8
/// (about 5 · 10⁻⁸ with 1,000 codes alive), however many addresses it has.
pub const PAIRING_FAILURES_PER_MINUTE: u32 = 30;

/// How long typed pairing codes stay refused once the budget of failures is spent.
pub const PAIRING_LOCK: Duration = Duration::from_secs(60);

fn pairing_failures() -> Limit {
    per_minute(PAIRING_FAILURES_PER_MINUTE)
}

/// The lock as a GCRA key: one take holds it for [`PAIRING_LOCK`].
fn pairing_lock() -> Limit {
    Limit {
        rate: 1,
        period: PAIRING_LOCK,
        burst: 1,
    }
}

/// Whether a typed pairing code may be tried now (fails closed): `Err(rate_limited)` while
/// typed codes are locked. Finding the budget of failures spent locks them.
pub async fn typed_pairing_open(ctx: &Ctx) -> Result<()> {
    peek_fail_closed(ctx, "pairing_lock", "typed", pairing_lock()).await?;
    match peek_fail_closed(ctx, "pairing_failures", "typed", pairing_failures()).await {
        Err(Error::RateLimited { .. }) => lock_typed_pairing(ctx).await,
        other => other,
    }
}

/// Counts a failed typed pairing code (fails closed); spending the budget locks typed
/// codes.
pub async fn typed_pairing_failed(ctx: &Ctx) -> Result<()> {
    match take_fail_closed(ctx, "pairing_failures", "typed", pairing_failures()).await {
        Err(Error::RateLimited { .. }) => lock_typed_pairing(ctx).await,
        other => other.map(|_| ()),
    }
}

/// Locks typed pairing codes for [`PAIRING_LOCK`]; answers the refusal to give.
async fn lock_typed_pairing(ctx: &Ctx) -> Result<()> {
    tracing::warn!("typed pairing codes locked: too many failed codes across the deployment");
    match take_fail_closed(ctx, "pairing_lock", "typed", pairing_lock()).await {
        Ok(_) => Err(Error::RateLimited {
            policy: "pairing_lock",
            retry_after: PAIRING_LOCK,
        }),
        Err(e) => Err(e),
    }
}

fn limits_unavailable(policy: &'static str, e: &redis::RedisError) -> Error {
    tracing::warn!(policy, error = %e, "rate limit unavailable; failing closed");
    Error::Unavailable {
        code: LIMITS_UNAVAILABLE,
        message: "this request is rate limited and the limits cannot be checked right now; \
                  retry in a few seconds"
            .into(),
    }
}

/// As [`take`], but **fails closed**: while Redis cannot tell, the request is refused with
/// `503 limits_unavailable` (the api adds `Retry-After`). For limits that guard a secret or
/// a stranger's way to make us call someone: pairing, the widget.
pub async fn take_fail_closed(
    ctx: &Ctx,
    policy: &'static str,
    key: &str,
    limit: Limit,
) -> Result<Decision> {
    ask(ctx, policy, key, limit)
        .await
        .unwrap_or_else(|e| Err(limits_unavailable(policy, &e)))
}

/// Whether `limit` under `key` is spent, without counting a request (fails closed like
/// [`take_fail_closed`]): `Err(rate_limited)` when the next [`take_fail_closed`] would be
/// refused. For budgets that count only failures, checked before the attempt.
///
/// GCRA refuses when `now < tat - tolerance`; asking with the same tolerance but an
/// emission interval of 1 µs applies the very same test and moves the key's time by 1 µs
/// only, which is as good as not counting.
pub async fn peek_fail_closed(
    ctx: &Ctx,
    policy: &'static str,
    key: &str,
    limit: Limit,
) -> Result<()> {
    let period_us = limit.period.as_micros().clamp(1, u128::from(u32::MAX)) as u32;
    let interval_us = u64::from(period_us) / u64::from(limit.rate.max(1));
    let tolerance_us = interval_us.max(1) * u64::from(limit.burst.max(1) - 1);
    let look = Limit {
        rate: period_us,
        period: Duration::from_micros(u64::from(period_us)),
        burst: u32::try_from(tolerance_us + 1).unwrap_or(u32::MAX),
    };
    take_fail_closed(ctx, policy, key, look).await.map(|_| ())
}

/// The key of an address in the pairing limits: IPv6 clients get a /48 each (what one
/// site is routinely given, so an attacker's whole allocation shares one budget), IPv4
/// clients their address.
pub fn ip_key_48(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let mut seg = v6.segments();
            seg[3..].fill(0);
            IpAddr::V6(std::net::Ipv6Addr::from(seg))
        }
    }
}

/// The keys of `limits` as Redis knows them (before the deployment's prefix).
pub fn keyed(limits: &[(&'static str, String, Limit)]) -> Vec<(String, Limit)> {
    limits
        .iter()
        .map(|(policy, key, limit)| (format!("{policy}:{key}"), *limit))
        .collect()
}

/// Refused by the first limit that refused, if any.
pub fn judge(limits: &[(&'static str, String, Limit)], decisions: &[Decision]) -> Result<()> {
    for ((policy, _, _), d) in limits.iter().zip(decisions) {
        if !d.allowed {
            crate::metrics::METRICS
                .rate_limit_refusals
                .with_label_values(&[policy])
                .inc();
            return Err(refused(policy, d));
        }
    }
    Ok(())
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

/// The client of a request: the peer, unless the peer is a trusted proxy — then the
/// right-most address of `X-Forwarded-For` that is not itself a trusted proxy.
pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    forwarded_for
        .into_iter()
        .flat_map(|h| h.rsplit(','))
        .filter_map(|part| part.trim().parse::<IpAddr>().ok())
        .find(|ip| !is_trusted(ip))
        .unwrap_or(peer)
}

/// The key of an address in per-IP limits: IPv6 clients get a /64 each (one host usually
/// holds the whole /64), IPv4 clients their address.
pub fn ip_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let mut seg = v6.segments();
            seg[4..].fill(0);
            IpAddr::V6(std::net::Ipv6Addr::from(seg))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::parse_proxies;

    #[test]
    fn client_behind_trusted_proxies() {
        let trusted = parse_proxies("10.0.0.0/8, 192.0.2.7").unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // Untrusted peer: the header is ignored (anyone can write it).
        assert_eq!(
            client_ip(ip("203.0.113.9"), Some("1.2.3.4"), &trusted),
            ip("203.0.113.9")
        );
        // Trusted peer: the right-most untrusted hop is the client.
        assert_eq!(
            client_ip(
                ip("10.1.1.1"),
                Some("1.2.3.4, 198.51.100.5, 10.2.2.2"),
                &trusted
            ),
            ip("198.51.100.5")
        );
        assert_eq!(client_ip(ip("192.0.2.7"), None, &trusted), ip("192.0.2.7"));
        assert_eq!(ip_key(ip("2001:db8:1:2:3:4:5:6")), ip("2001:db8:1:2::"));
        assert_eq!(ip_key_48(ip("2001:db8:1:2:3:4:5:6")), ip("2001:db8:1::"));
        assert_eq!(ip_key_48(ip("2001:db8:1:ffff::1")), ip("2001:db8:1::"));
        assert_eq!(ip_key_48(ip("198.51.100.7")), ip("198.51.100.7"));
        assert_eq!(ip_key_48(ip("::ffff:198.51.100.7")), ip("198.51.100.7"));
        assert!(parse_proxies("10.0.0.0/33").is_err());
    }
}
