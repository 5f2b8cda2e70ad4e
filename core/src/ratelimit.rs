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

/// The answer for one request, with what the `RateLimit` headers report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Requests still allowed right now.
    pub remaining: u32,
    /// Until the limit is fully replenished.
    pub reset: Duration,
    /// When refused: until the next request would be allowed.
    pub retry_after: Duration,
}

/// GCRA with Redis time (microseconds), so the clocks of the processes do not matter.
/// Returns {allowed, remaining, reset_us, retry_after_us}.
const SCRIPT: &str = r#"
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allow_at = tat - tolerance
if now < allow_at then
  return {0, 0, tat - now, allow_at - now}
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
local remaining = math.floor((now + tolerance - new_tat) / interval) + 1
if remaining < 0 then remaining = 0 end
return {1, remaining, new_tat - now, 0}
"#;

/// The script, hashed once (EVALSHA on every call, the source only when Redis lacks it).
static GCRA: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(SCRIPT));

/// Several limits at once, all or nothing: every key is checked first, and the request
/// counts against all of them only when each allows it (a refusal by one spends none of
/// the others). Returns per key {allowed, remaining, reset_us, retry_after_us}; ARGV holds
/// (interval, tolerance) per key.
const SCRIPT_ALL: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local out = {}
local tats = {}
local refused = false
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i - 1])
  local tolerance = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  tats[i] = tat
  if now < tat - tolerance then
    refused = true
    out[i] = {0, 0, tat - now, tat - tolerance - now}
  end
end
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i - 1])
  local tolerance = tonumber(ARGV[2 * i])
  if refused then
    if not out[i] then out[i] = {1, 0, tats[i] - now, 0} end
  else
    local new_tat = tats[i] + interval
    redis.call('SET', key, string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
    local remaining = math.floor((now + tolerance - new_tat) / interval) + 1
    if remaining < 0 then remaining = 0 end
    out[i] = {1, remaining, new_tat - now, 0}
  end
end
return out
"#;

static GCRA_ALL: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(SCRIPT_ALL));

/// Checks `limits` (keys already prefixed) in one round trip, all or nothing (see
/// `SCRIPT_ALL`); one decision per limit, in order.
pub async fn check_all(
    conn: &mut redis::aio::ConnectionManager,
    limits: &[(String, Limit)],
) -> redis::RedisResult<Vec<Decision>> {
    let mut invocation = GCRA_ALL.prepare_invoke();
    for (key, limit) in limits {
        let interval = limit.emission_interval_us();
        let tolerance = interval * u64::from(limit.burst.max(1) - 1);
        invocation.key(key).arg(interval).arg(tolerance);
    }
    let rows: Vec<(i64, i64, i64, i64)> = invocation.invoke_async(conn).await?;
    Ok(rows
        .into_iter()
        .map(|(allowed, remaining, reset_us, wait_us)| Decision {
            allowed: allowed == 1,
            remaining: remaining.clamp(0, i64::from(u32::MAX)) as u32,
            reset: Duration::from_micros(reset_us.max(0) as u64),
            retry_after: Duration::from_micros(wait_us.max(0) as u64),
        })
        .collect())
}

/// Checks and counts one request against `limit` under `key` (already prefixed).
pub async fn check(
    conn: &mut redis::aio::ConnectionManager,
    key: &str,
    limit: Limit,
) -> redis::RedisResult<Decision> {
    let interval = limit.emission_interval_us();
    let tolerance = interval * u64::from(limit.burst.max(1) - 1);
    let (allowed, remaining, reset_us, wait_us): (i64, i64, i64, i64) = GCRA
        .key(key)
        .arg(interval)
        .arg(tolerance)
        .invoke_async(conn)
        .await?;
    Ok(Decision {
        allowed: allowed == 1,
        remaining: remaining.clamp(0, i64::from(u32::MAX)) as u32,
        reset: Duration::from_micros(reset_us.max(0) as u64),
        retry_after: Duration::from_micros(wait_us.max(0) as u64),
    })
}
