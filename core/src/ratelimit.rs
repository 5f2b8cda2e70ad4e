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
/// the others). `take_all(k, a)` checks KEYS[k..] with (interval, tolerance) pairs from
/// ARGV[a..], and returns per key {allowed, remaining, reset_us, retry_after_us}.
const TAKE_ALL_FN: &str = r#"
local function take_all(first_key, first_arg)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local out = {}
  local tats = {}
  local refused = false
  for i = first_key, #KEYS do
    local j = first_arg + 2 * (i - first_key)
    local tolerance = tonumber(ARGV[j + 1])
    local tat = tonumber(redis.call('GET', KEYS[i]) or now)
    if tat < now then tat = now end
    tats[i] = tat
    if now < tat - tolerance then
      refused = true
      out[i - first_key + 1] = {0, 0, tat - now, tat - tolerance - now}
    end
  end
  for i = first_key, #KEYS do
    local j = first_arg + 2 * (i - first_key)
    local interval = tonumber(ARGV[j])
    local tolerance = tonumber(ARGV[j + 1])
    local n = i - first_key + 1
    if refused then
      if not out[n] then out[n] = {1, 0, tats[i] - now, 0} end
    else
      local new_tat = tats[i] + interval
      redis.call('SET', KEYS[i], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
      local remaining = math.floor((now + tolerance - new_tat) / interval) + 1
      if remaining < 0 then remaining = 0 end
      out[n] = {1, remaining, new_tat - now, 0}
    end
  end
  return out
end
"#;

/// Where each of n devices' sockets are (KEYS[1..n], their presence keys), and the limits
/// in KEYS[n+1..] taken all or nothing as `take_all` does — but only when some device can
/// be reached: live, or its push flag (ARGV[1 + i]) set. ARGV[1] is n. Returns {instances
/// ('' for none), decisions (empty when nothing was reachable)}.
const REACH_AND_TAKE: &str = r#"
local n = tonumber(ARGV[1])
local live = {}
local any = false
for i = 1, n do
  local v = redis.call('GET', KEYS[i])
  if v then
    live[i] = v
    any = true
  else
    live[i] = ''
    if ARGV[1 + i] == '1' then any = true end
  end
end
if not any then return {live, {}} end
return {live, take_all(n + 1, n + 2)}
"#;

static GCRA_REACH: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(&format!("{TAKE_ALL_FN}{REACH_AND_TAKE}")));

fn push_limits(invocation: &mut redis::ScriptInvocation<'_>, limits: &[(String, Limit)]) {
    for (key, limit) in limits {
        let interval = limit.emission_interval_us();
        let tolerance = interval * u64::from(limit.burst.max(1) - 1);
        invocation.key(key).arg(interval).arg(tolerance);
    }
}

/// A decision as the scripts return it: {allowed, remaining, reset_us, retry_after_us}.
type Row = (i64, i64, i64, i64);

fn decisions(rows: Vec<Row>) -> Vec<Decision> {
    rows.into_iter()
        .map(|(allowed, remaining, reset_us, wait_us)| Decision {
            allowed: allowed == 1,
            remaining: remaining.clamp(0, i64::from(u32::MAX)) as u32,
            reset: Duration::from_micros(reset_us.max(0) as u64),
            retry_after: Duration::from_micros(wait_us.max(0) as u64),
        })
        .collect()
}

/// In one round trip: which instance holds each device's socket (`presence_keys`, in
/// order), and — only when some device is live or has `push_ok` — `limits` taken all or
/// nothing. The decisions are empty when no device could be reached (nothing was taken).
pub async fn reach_and_take(
    conn: &mut redis::aio::ConnectionManager,
    presence_keys: &[String],
    push_ok: &[bool],
    limits: &[(String, Limit)],
) -> redis::RedisResult<(Vec<Option<String>>, Vec<Decision>)> {
    let mut invocation = GCRA_REACH.prepare_invoke();
    invocation.arg(presence_keys.len());
    for (key, push) in presence_keys.iter().zip(push_ok) {
        invocation.key(key).arg(if *push { "1" } else { "0" });
    }
    push_limits(&mut invocation, limits);
    let (live, rows): (Vec<String>, Vec<Row>) = invocation.invoke_async(conn).await?;
    let live = live
        .into_iter()
        .map(|i| (!i.is_empty()).then_some(i))
        .collect();
    Ok((live, decisions(rows)))
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
