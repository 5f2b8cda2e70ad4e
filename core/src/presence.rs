//! Presence and live fan-out through Redis. A device with a live socket has a key
//! `{prefix}presence:{device_id}` holding the id of the api instance that holds the socket,
//! with a TTL of the presence window, refreshed by heartbeats. To reach that socket, anyone
//! (a worker, another api replica) publishes on `{prefix}instance:{instance_id}`; the
//! instance forwards the message to the socket. Redis is never the only copy of anything
//! that matters: a lost message is sent again (the worker retries an offer whose socket it
//! cannot reach, and the api a phone reconnects to sends it its pending offers), and
//! `stream_seen_at` in Postgres stands in for presence keys while Redis is down or after it
//! lost them, until each api re-asserts its sockets (within a second of Redis answering).

use std::time::Duration;

use futures::StreamExt;
use redis::aio::ConnectionManager;

/// How long a single Redis command may take before we treat Redis as unavailable.
const COMMAND_TIMEOUT: Duration = Duration::from_millis(500);
/// After a failed command, commands fail at once for this long instead of each waiting for
/// a reconnect: requests stay fast (on the Postgres fallback) while Redis is down.
const BACKOFF_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// Retries of a lost pub/sub connection start this soon after the loss…
const RESUBSCRIBE_FIRST: Duration = Duration::from_millis(100);
/// …and back off to at most this: until an instance is subscribed again, offers published
/// for its sockets reach no one (they are delivered again once it is, see `api::stream`),
/// so it must be back within a second of Redis.
const RESUBSCRIBE_MAX: Duration = Duration::from_secs(1);

/// Caches a session unless it was revoked meanwhile (a revocation leaves a marker), so a
/// request that read the session just before sign-out cannot bring it back.
static PUT_SESSION: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        "if redis.call('GET', KEYS[1]) == 'revoked' then return 0 end \
         redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1",
    )
});

/// Refreshes an instance's marker and tells whether it was there: a missing marker means
/// Redis lost what the instance wrote (a restart, a failover, a flush), or the instance
/// could not refresh it for a whole presence window.
static MARK_INSTANCE: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        "local old = redis.call('GET', KEYS[1]) \
         redis.call('SET', KEYS[1], '1', 'PX', ARGV[1]) \
         if old then return 1 end return 0",
    )
});

/// Presence keys written per round trip when an instance re-asserts its sockets.
const REASSERT_CHUNK: usize = 500;

/// Deletes a presence key only if it still names the given instance.
static CLEAR_IF_OURS: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new("if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0")
});

/// Handle on the shared Redis: presence keys and the pub/sub channels between processes.
#[derive(Clone)]
pub struct Presence {
    client: redis::Client,
    conn: ConnectionManager,
    prefix: String,
    window: Duration,
    /// Milliseconds since the Unix epoch before which Redis is presumed down.
    down_until: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for Presence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presence")
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl Presence {
    pub async fn connect(url: &str, prefix: &str, window: Duration) -> redis::RedisResult<Self> {
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Duration::from_secs(2))
            .set_response_timeout(COMMAND_TIMEOUT)
            .set_number_of_retries(2)
            .set_max_delay(500);
        let conn = ConnectionManager::new_with_config(client.clone(), config).await?;
        Ok(Self {
            client,
            conn,
            prefix: prefix.to_owned(),
            window,
            down_until: Default::default(),
        })
    }

    /// Runs one command with a deadline, failing fast while Redis is known to be down.
    async fn guarded<T>(
        &self,
        command: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> redis::RedisResult<T> {
        use std::sync::atomic::Ordering;
        let m = &*crate::metrics::METRICS;
        let now = chrono::Utc::now().timestamp_millis().max(0) as u64;
        if now < self.down_until.load(Ordering::Relaxed) {
            m.redis_errors.with_label_values(&["presumed_down"]).inc();
            return Err(redis::RedisError::from((
                redis::ErrorKind::IoError,
                "redis presumed down",
            )));
        }
        let in_flight = InFlight::start(&m.redis_in_flight);
        let result = match tokio::time::timeout(COMMAND_TIMEOUT, command).await {
            Ok(r) => r,
            Err(_) => Err(redis::RedisError::from((
                redis::ErrorKind::IoError,
                "redis command timed out",
            ))),
        };
        drop(in_flight);
        match &result {
            Err(e)
                if e.is_io_error()
                    || e.is_timeout()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal() =>
            {
                m.redis_errors.with_label_values(&["unavailable"]).inc();
                m.redis_available.set(0);
                let until = now + BACKOFF_AFTER_FAILURE.as_millis() as u64;
                self.down_until.store(until, Ordering::Relaxed);
            }
            Err(_) => m.redis_errors.with_label_values(&["command"]).inc(),
            Ok(_) => m.redis_available.set(1),
        }
        result
    }

    fn presence_key(&self, device_id: &str) -> String {
        format!("{}presence:{device_id}", self.prefix)
    }

    fn instance_channel(&self, instance: &str) -> String {
        format!("{}instance:{instance}", self.prefix)
    }

    fn jobs_channel(&self) -> String {
        format!("{}jobs", self.prefix)
    }

    /// Marks a device live on `instance` for one presence window.
    pub async fn mark_live(&self, device_id: &str, instance: &str) -> redis::RedisResult<()> {
        let mut conn = self.conn.clone();
        self.guarded(
            redis::cmd("SET")
                .arg(self.presence_key(device_id))
                .arg(instance)
                .arg("PX")
                .arg(self.window.as_millis() as u64)
                .query_async(&mut conn),
        )
        .await
    }

    /// Refreshes `instance`'s marker (for one presence window); `Ok(false)` when it was
    /// missing, i.e. Redis no longer holds what this instance wrote: its presence keys must
    /// be written again.
    pub async fn keep_instance_marker(&self, instance: &str) -> redis::RedisResult<bool> {
        let mut conn = self.conn.clone();
        let mut invocation = MARK_INSTANCE.key(format!("{}alive:{instance}", self.prefix));
        invocation.arg(self.window.as_millis() as u64);
        self.guarded(invocation.invoke_async::<i64>(&mut conn))
            .await
            .map(|kept| kept == 1)
    }

    /// Marks every given device live on `instance` for one presence window, a few hundred
    /// keys per round trip: an instance re-asserting the sockets it holds.
    pub async fn mark_all_live(
        &self,
        device_ids: &[String],
        instance: &str,
    ) -> redis::RedisResult<()> {
        for chunk in device_ids.chunks(REASSERT_CHUNK) {
            let mut pipe = redis::pipe();
            for device_id in chunk {
                pipe.cmd("SET")
                    .arg(self.presence_key(device_id))
                    .arg(instance)
                    .arg("PX")
                    .arg(self.window.as_millis() as u64)
                    .ignore();
            }
            let mut conn = self.conn.clone();
            self.guarded(pipe.query_async::<()>(&mut conn)).await?;
        }
        Ok(())
    }

    /// Removes the device's presence if it still points at `instance` (a newer socket on
    /// another instance must not be erased by an old one closing).
    pub async fn clear(&self, device_id: &str, instance: &str) -> redis::RedisResult<()> {
        let mut conn = self.conn.clone();
        let script = &*CLEAR_IF_OURS;
        let mut invocation = script.key(self.presence_key(device_id));
        invocation.arg(instance);
        self.guarded(invocation.invoke_async::<i64>(&mut conn))
            .await
            .map(|_| ())
    }

    /// The instance holding each device's live socket, if any.
    pub async fn instances(
        &self,
        device_ids: &[String],
    ) -> redis::RedisResult<Vec<Option<String>>> {
        if device_ids.is_empty() {
            return Ok(vec![]);
        }
        let mut conn = self.conn.clone();
        let keys: Vec<String> = device_ids.iter().map(|d| self.presence_key(d)).collect();
        self.guarded(redis::cmd("MGET").arg(keys).query_async(&mut conn))
            .await
    }

    /// Sends a message to a device's live socket, wherever it is held. `Ok(false)` when no
    /// instance holds a socket for it.
    pub async fn send_to_device(
        &self,
        device_id: &str,
        instance: Option<&str>,
        message: &crate::protocol::ToPhone,
    ) -> redis::RedisResult<bool> {
        let instance = match instance {
            Some(i) => i.to_owned(),
            None => match self
                .instances(&[device_id.to_owned()])
                .await?
                .pop()
                .flatten()
            {
                Some(i) => i,
                None => return Ok(false),
            },
        };
        let envelope = serde_json::json!({ "device_id": device_id, "message": message });
        let mut conn = self.conn.clone();
        let receivers: i64 = self
            .guarded(
                redis::cmd("PUBLISH")
                    .arg(self.instance_channel(&instance))
                    .arg(envelope.to_string())
                    .query_async(&mut conn),
            )
            .await?;
        Ok(receivers > 0)
    }

    /// Tells workers in other processes that jobs were committed.
    pub async fn publish_jobs(&self) -> redis::RedisResult<()> {
        let mut conn = self.conn.clone();
        self.guarded(
            redis::cmd("PUBLISH")
                .arg(self.jobs_channel())
                .arg("1")
                .query_async::<i64>(&mut conn),
        )
        .await
        .map(|_| ())
    }

    /// Checks a shared rate limit (see `ratelimit`); the key is prefixed here.
    pub async fn rate_limit(
        &self,
        key: &str,
        limit: crate::ratelimit::Limit,
    ) -> redis::RedisResult<crate::ratelimit::Decision> {
        let mut conn = self.conn.clone();
        let key = format!("{}rl:{key}", self.prefix);
        self.guarded(crate::ratelimit::check(&mut conn, &key, limit))
            .await
    }

    /// Stores a console session (`value`) under its hash for `ttl` (the idle timeout),
    /// unless it was revoked.
    pub async fn session_put(
        &self,
        id_hash: &str,
        value: &str,
        ttl: Duration,
    ) -> redis::RedisResult<()> {
        let mut conn = self.conn.clone();
        let key = format!("{}session:{id_hash}", self.prefix);
        let mut invocation = PUT_SESSION.key(&key);
        invocation.arg(value).arg(ttl.as_millis().max(1) as u64);
        self.guarded(invocation.invoke_async::<i64>(&mut conn))
            .await
            .map(|_| ())
    }

    /// Reads a console session and extends its idle expiry to `ttl` in the same command.
    pub async fn session_get(
        &self,
        id_hash: &str,
        ttl: Duration,
    ) -> redis::RedisResult<Option<String>> {
        let mut conn = self.conn.clone();
        let key = format!("{}session:{id_hash}", self.prefix);
        self.guarded(
            redis::cmd("GETEX")
                .arg(&key)
                .arg("PX")
                .arg(ttl.as_millis().max(1) as u64)
                .query_async::<Option<String>>(&mut conn),
        )
        .await
    }

    /// Marks console sessions revoked for `keep` (longer than any request that read them
    /// before the revocation may take to cache them again).
    pub async fn session_revoke(
        &self,
        id_hashes: &[String],
        keep: Duration,
    ) -> redis::RedisResult<()> {
        if id_hashes.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        for h in id_hashes {
            pipe.cmd("SET")
                .arg(format!("{}session:{h}", self.prefix))
                .arg("revoked")
                .arg("PX")
                .arg(keep.as_millis() as u64)
                .ignore();
        }
        self.guarded(pipe.query_async::<()>(&mut conn)).await
    }

    /// Where each device's socket is and, when some device can be reached, the call
    /// quotas taken — one round trip (see `ratelimit::reach_and_take`; limit keys are
    /// prefixed here).
    pub async fn reach_and_take(
        &self,
        device_ids: &[String],
        push_ok: &[bool],
        limits: &[(String, crate::ratelimit::Limit)],
    ) -> redis::RedisResult<(Vec<Option<String>>, Vec<crate::ratelimit::Decision>)> {
        let mut conn = self.conn.clone();
        let keys: Vec<String> = device_ids.iter().map(|d| self.presence_key(d)).collect();
        let prefixed: Vec<(String, crate::ratelimit::Limit)> = limits
            .iter()
            .map(|(k, l)| (format!("{}rl:{k}", self.prefix), *l))
            .collect();
        self.guarded(crate::ratelimit::reach_and_take(
            &mut conn, &keys, push_ok, &prefixed,
        ))
        .await
    }

    pub async fn ping(&self) -> redis::RedisResult<()> {
        let mut conn = self.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(|_| ())
    }

    /// Delivers every message published for `instance` as (device_id, message) to `on_message`
    /// until `stop` resolves, resubscribing after a lost connection.
    pub async fn follow_instance<F>(
        &self,
        instance: &str,
        stop: crate::shutdown::Stop,
        on_message: F,
    ) where
        F: Fn(String, serde_json::Value) + Send + Sync,
    {
        let channel = self.instance_channel(instance);
        self.follow(&channel, stop, |payload| {
            #[derive(serde::Deserialize)]
            struct Envelope {
                device_id: String,
                message: serde_json::Value,
            }
            match serde_json::from_str::<Envelope>(&payload) {
                Ok(e) => on_message(e.device_id, e.message),
                Err(e) => tracing::warn!(error = %e, "malformed message on instance channel"),
            }
        })
        .await
    }

    /// Calls `on_wake` whenever jobs were published, until `stop` resolves.
    pub async fn follow_jobs<F>(&self, stop: crate::shutdown::Stop, on_wake: F)
    where
        F: Fn() + Send + Sync,
    {
        let channel = self.jobs_channel();
        self.follow(&channel, stop, |_| on_wake()).await
    }

    async fn follow<F>(&self, channel: &str, stop: crate::shutdown::Stop, on_payload: F)
    where
        F: Fn(String) + Send + Sync,
    {
        let mut delay = RESUBSCRIBE_FIRST;
        loop {
            let session = async {
                let mut pubsub = self.client.get_async_pubsub().await?;
                pubsub.subscribe(channel).await?;
                // Subscribed: the next loss of the connection starts from a short delay.
                delay = RESUBSCRIBE_FIRST;
                let mut messages = pubsub.on_message();
                while let Some(msg) = messages.next().await {
                    match msg.get_payload::<String>() {
                        Ok(payload) => on_payload(payload),
                        Err(e) => tracing::warn!(error = %e, "undecodable pub/sub payload"),
                    }
                }
                Ok::<_, redis::RedisError>(())
            };
            tokio::select! {
                _ = stop.wait() => return,
                result = session => {
                    match result {
                        Ok(()) => tracing::warn!(channel, "pub/sub connection closed; resubscribing"),
                        Err(e) => tracing::warn!(channel, error = %e, "pub/sub unavailable; retrying"),
                    }
                }
            }
            tokio::select! {
                _ = stop.wait() => return,
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(RESUBSCRIBE_MAX);
        }
    }
}

/// Counts a command in flight until it is answered or abandoned (its future dropped).
struct InFlight<'a>(&'a prometheus::IntGauge);

impl<'a> InFlight<'a> {
    fn start(gauge: &'a prometheus::IntGauge) -> Self {
        gauge.inc();
        InFlight(gauge)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}
