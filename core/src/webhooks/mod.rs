//! Webhooks: tenant events delivered to their endpoints, signed the Standard Webhooks way.
//! Events and their messages are written in the transaction of the change they report
//! (see `record`); the worker delivers messages in order per call and endpoint.

pub mod signing;

use std::time::Duration;

use rand::Rng;
use sqlx::PgConnection;

use crate::queue;
use crate::store::webhooks as store;

/// Every event type, in the order of the lifecycle.
pub const EVENT_TYPES: [&str; 15] = [
    "call.queued",
    "call.offered",
    "call.delivered",
    "call.accepted",
    "call.declined",
    "call.dialing",
    "call.connected",
    "call.completed",
    "call.failed",
    "call.canceled",
    "call.expired",
    "device.reachable",
    "device.unreachable",
    "endpoint.disabled",
    "webhook.test",
];

/// Records an event and one message (with its delivery job) for every enabled endpoint of
/// the organization that subscribes to its type — in the caller's transaction, so there is
/// no event without its deliveries and no delivery without its event.
pub async fn record(
    conn: &mut PgConnection,
    event_id: &str,
    org_id: &str,
    kind: &str,
    ordering_key: Option<&str>,
    data: &serde_json::Value,
) -> sqlx::Result<()> {
    store::insert_event(conn, event_id, org_id, kind, ordering_key, data).await?;
    let messages = store::fan_out(conn, event_id, org_id, kind, ordering_key, None).await?;
    queue::enqueue_deliveries(conn, &messages).await
}

/// The delay before attempt `attempt + 1` (attempt counts from 1) from `schedule`, with
/// ±20 % jitter; `None` once the schedule is exhausted.
pub fn retry_delay(schedule: &[Duration], attempt: u32, rng: &mut impl Rng) -> Option<Duration> {
    let base = schedule.get(attempt as usize)?;
    let factor = rng.gen_range(0.8..=1.2);
    Some(base.mul_f64(factor))
}

/// The default schedule: immediately, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
pub const DEFAULT_SCHEDULE: &str = crate::config::DEFAULT_WEBHOOK_RETRY_SCHEDULE;

/// Parses a comma-separated schedule (`PUSHDIAL_WEBHOOK_RETRY_SCHEDULE`).
pub fn parse_schedule(s: &str) -> Result<Vec<Duration>, String> {
    let schedule: Vec<Duration> = s
        .split(',')
        .map(|part| crate::config::parse_duration(part.trim()))
        .collect::<Result<_, _>>()?;
    if schedule.is_empty() {
        return Err("the retry schedule needs at least one entry".into());
    }
    Ok(schedule)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn default_schedule_has_eight_attempts_with_bounded_jitter() {
        let schedule = parse_schedule(DEFAULT_SCHEDULE).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let expected = [0u64, 5, 300, 1800, 7200, 18000, 36000, 36000];
        for (attempt, secs) in expected.iter().enumerate().skip(1) {
            for _ in 0..100 {
                let d = retry_delay(&schedule, attempt as u32, &mut rng).unwrap();
                let base = *secs as f64;
                assert!(
                    d.as_secs_f64() >= base * 0.8 - 1e-9 && d.as_secs_f64() <= base * 1.2 + 1e-9,
                    "{attempt}: {d:?}"
                );
            }
        }
        assert_eq!(
            retry_delay(&schedule, 8, &mut rng),
            None,
            "eight attempts in all"
        );
        assert!(parse_schedule("5s,x").is_err());
    }
}
