//! What secret keys resolve to, kept in memory by each api process so that an
//! authenticated request costs no database round trip.
//!
//! Correctness comes from Postgres, not from the clock: every change that can alter what a
//! key resolves to (revoked, rolled, deleted, handed over, its organization's plan limit,
//! its creator's membership: a key acts with its creator's role) notifies `pushdial_keys`
//! from the changing transaction (the triggers of migrations 0012 and 20261207000200), and
//! [`follow`] drops the affected entries when the notification arrives. Nothing is cached
//! while this process is not listening (before the first `LISTEN`, and from a lost
//! connection until a new one listens), and an entry read from the database is not stored
//! when a change arrived while it was being read. Entries also expire after [`TTL`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::store::keys::KeyRecord;

/// The channel migration 0012's triggers notify.
pub const CHANNEL: &str = "pushdial_keys";

/// How long an entry is trusted without a notification.
pub const TTL: Duration = Duration::from_secs(60);

/// At most this many entries; a full cache starts over.
const CAPACITY: usize = 50_000;

/// Key hash → what it resolved to and when.
#[derive(Debug, Default)]
pub struct KeyCache {
    entries: Mutex<HashMap<Vec<u8>, (KeyRecord, Instant)>>,
    /// Whether notifications are being received.
    listening: AtomicBool,
    /// Counts notifications (and listening changes): a read that saw another value before it
    /// began may be stale.
    generation: AtomicU64,
}

impl KeyCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, (KeyRecord, Instant)>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The generation to hand back to [`KeyCache::put`] after reading the database.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The cached record of a key hash, when fresh and while listening.
    pub fn get(&self, hash: &[u8]) -> Option<KeyRecord> {
        if !self.listening.load(Ordering::Acquire) {
            return None;
        }
        let entries = self.lock();
        let (record, at) = entries.get(hash)?;
        (at.elapsed() < TTL).then(|| record.clone())
    }

    /// Stores what a hash resolved to, read from the database after `generation` was taken:
    /// not if anything changed since, or while not listening.
    pub fn put(&self, hash: &[u8], record: &KeyRecord, generation: u64) {
        let mut entries = self.lock();
        // Checked under the lock that `forget` also takes, so a change cannot slip between.
        if !self.listening.load(Ordering::Acquire) || self.generation() != generation {
            return;
        }
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert(hash.to_vec(), (record.clone(), Instant::now()));
    }

    /// Applies a notification: `key:{id}` drops that key, `org:{id}` the organization's
    /// keys, `member:{org_id}:{user_id}` the keys that member made; anything else drops
    /// everything.
    pub fn forget(&self, payload: &str) {
        let mut entries = self.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        match payload.split_once(':') {
            Some(("key", id)) => entries.retain(|_, (r, _)| r.id != id),
            Some(("org", id)) => entries.retain(|_, (r, _)| r.org_id != id),
            Some(("member", rest)) => match rest.split_once(':') {
                Some((org, user)) => entries
                    .retain(|_, (r, _)| r.org_id != org || r.created_by.as_deref() != Some(user)),
                None => entries.clear(),
            },
            _ => entries.clear(),
        }
    }

    /// Starts or stops trusting the cache; either way it starts empty.
    fn set_listening(&self, on: bool) {
        let mut entries = self.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.clear();
        self.listening.store(on, Ordering::Release);
        crate::metrics::METRICS
            .key_cache_listening
            .set(i64::from(on));
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Listens for key changes and applies them to `cache` until `stop` resolves, listening
/// again (with an emptied cache) after a lost connection.
pub async fn follow(cache: &KeyCache, database_url: &str, stop: crate::shutdown::Stop) {
    let mut delay = Duration::from_millis(100);
    loop {
        let session = async {
            let mut listener = sqlx::postgres::PgListener::connect(database_url).await?;
            // A lost connection must not reconnect quietly (changes made meanwhile would be
            // missed): it ends this session, and the next one starts with an empty cache.
            listener.eager_reconnect(false);
            listener.listen(CHANNEL).await?;
            cache.set_listening(true);
            delay = Duration::from_millis(100);
            while let Some(n) = listener.try_recv().await? {
                cache.forget(n.payload());
            }
            Ok::<_, sqlx::Error>(())
        };
        let result = tokio::select! {
            _ = stop.wait() => {
                cache.set_listening(false);
                return;
            }
            result = session => result,
        };
        cache.set_listening(false);
        match result {
            Ok(()) => tracing::warn!("key change notifications lost; listening again"),
            Err(e) => tracing::warn!(error = %e, "key change notifications unavailable; retrying"),
        }
        tokio::select! {
            _ = stop.wait() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn record(id: &str, org: &str) -> KeyRecord {
        KeyRecord {
            id: id.into(),
            org_id: org.into(),
            kind: "secret".into(),
            revoked_at: None,
            expires_at: None,
            limit_api_per_second: None,
            created_by: Some(format!("usr_{id}")),
            creator_role: Some("admin".into()),
            member_role: Some("admin".into()),
            member_agent_id: Some(format!("agt_{id}")),
        }
    }

    #[test]
    fn caches_only_while_listening_and_unchanged() {
        let cache = KeyCache::default();
        let g = cache.generation();
        cache.put(b"h1", &record("k1", "o1"), g);
        assert!(cache.get(b"h1").is_none(), "not listening: nothing cached");

        cache.set_listening(true);
        let g = cache.generation();
        cache.put(b"h1", &record("k1", "o1"), g);
        cache.put(b"h2", &record("k2", "o1"), g);
        cache.put(b"h3", &record("k3", "o2"), g);
        assert_eq!(cache.get(b"h1").unwrap().id, "k1");

        // A read that began before a change is not stored.
        let stale = cache.generation();
        cache.forget("key:k1");
        assert!(cache.get(b"h1").is_none());
        cache.put(b"h1", &record("k1", "o1"), stale);
        assert!(cache.get(b"h1").is_none(), "read before the change");

        // A change of k2's creator's membership drops k2 only.
        cache.put(b"h1", &record("k1", "o1"), cache.generation());
        cache.forget("member:o1:usr_k2");
        assert!(cache.get(b"h2").is_none(), "its creator changed");
        assert_eq!(cache.get(b"h1").unwrap().id, "k1", "another member's key");
        cache.put(b"h2", &record("k2", "o1"), cache.generation());

        cache.forget("org:o1");
        assert!(cache.get(b"h2").is_none());
        assert_eq!(
            cache.get(b"h3").unwrap().id,
            "k3",
            "another organization's key"
        );

        cache.set_listening(false);
        assert!(
            cache.get(b"h3").is_none(),
            "a lost listener empties the cache"
        );
        assert!(cache.is_empty());
    }
}
