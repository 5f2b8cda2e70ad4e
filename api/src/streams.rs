//! Caps on live streams (server-sent events) open at once in this process: each stream
//! polls the database for up to 15 minutes, so one client must not be able to open
//! thousands. A stream takes a slot under each of its keys (its callback, its client
//! address, its organization) and gives them back when it ends or the client goes away.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use pushdial_core::Error;

static OPEN: LazyLock<Mutex<HashMap<String, usize>>> = LazyLock::new(Default::default);

/// Slots held by one stream; dropping it frees them.
#[derive(Debug)]
pub struct Slot(Vec<String>);

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
        for key in &self.0 {
            if let Some(n) = open.get_mut(key) {
                *n -= 1;
                if *n == 0 {
                    open.remove(key);
                }
            }
        }
    }
}

/// Takes a slot under every `(key, most open at once)`, or refuses with 429 (`streams`)
/// when any of them is full.
pub fn acquire(keys: &[(String, usize)]) -> Result<Slot, Error> {
    let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
    if keys
        .iter()
        .any(|(k, max)| open.get(k).copied().unwrap_or(0) >= *max)
    {
        pushdial_core::metrics::METRICS
            .rate_limit_refusals
            .with_label_values(&["streams"])
            .inc();
        return Err(Error::RateLimited {
            policy: "streams",
            retry_after: Duration::from_secs(5),
        });
    }
    for (k, _) in keys {
        *open.entry(k.clone()).or_insert(0) += 1;
    }
    Ok(Slot(keys.iter().map(|(k, _)| k.clone()).collect()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_and_given_back() {
        let key = |k: &str| (format!("test:{k}"), 2);
        let a = acquire(&[key("x")]).unwrap();
        let _b = acquire(&[key("x"), key("y")]).unwrap();
        assert!(acquire(&[key("x")]).is_err());
        // A refusal takes nothing: y still has one free slot.
        let _c = acquire(&[key("y")]).unwrap();
        drop(a);
        assert!(acquire(&[key("x")]).is_ok());
    }
}
