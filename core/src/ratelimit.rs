//! Rate limits shared by every process through Redis: GCRA (the generic cell rate
//! algorithm) in one atomic script and one round trip, so N replicas enforce a limit once,
//! not N times. The state of a key is one timestamp (the theoretical arrival time), kept
//! only as long as it matters.

use std::time::Duration;

/// A limit: `rate` requests per `period`, with bursts of up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub rate: u32,
    pub period: Duration,
    pub burst: u32,
}

impl Limit {
    /// `rate` per second, bursting to `rate`.
    pub fn per_second(rate: u32) -> Self {
        Limit {
            rate,
            period: Duration::from_secs(1),
            burst: rate,
        }
    }

    fn emission_interval_us(&self) -> u64 {
        (self.period.as_micros() as u64 / u64::from(self.rate.max(1))).max(1)
    }
}

/// The answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// Refused; the next request would be allowed after this long.
    Limited(Duration),
}

/// GCRA with Redis time (microseconds), so the clocks of the processes do not matter.
const SCRIPT: &str = r#"
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allow_at = tat - tolerance
if now < allow_at then
  return {0, allow_at - now}
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return {1, 0}
"#;

/// Checks and counts one request against `limit` under `key` (already prefixed).
pub async fn check(
    conn: &mut redis::aio::ConnectionManager,
    key: &str,
    limit: Limit,
) -> redis::RedisResult<Decision> {
    let interval = limit.emission_interval_us();
    let tolerance = interval * u64::from(limit.burst.max(1) - 1);
    let (allowed, wait_us): (i64, i64) = redis::Script::new(SCRIPT)
        .key(key)
        .arg(interval)
        .arg(tolerance)
        .invoke_async(conn)
        .await?;
    Ok(if allowed == 1 {
        Decision::Allowed
    } else {
        Decision::Limited(Duration::from_micros(wait_us.max(1) as u64))
    })
}
