//! `Idempotency-Key` for mutating POSTs (24 h): the same key and request replay the stored
//! answer; the same key with another request (body or route) is refused with 422; a request
//! that arrives while another with the same key is in flight gets 409. The answer is stored
//! in the transaction that does the work, so a key never points at work that was rolled back.

use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;

use crate::store::idempotency::{self as store, Stored};
use crate::Error;

/// The key of one request, with a fingerprint of what was asked.
pub struct Idempotency {
    key: Option<String>,
    hash: Vec<u8>,
}

impl Idempotency {
    /// Checks the key and fingerprints the request (route and parsed body).
    pub fn new(key: Option<String>, route: &str, body: &impl Serialize) -> Result<Self, Error> {
        if let Some(k) = &key {
            if k.is_empty() || k.len() > 255 || !k.bytes().all(|b| (0x21..0x7f).contains(&b)) {
                return Err(Error::invalid(
                    "Idempotency-Key",
                    "1 to 255 printable ASCII characters without spaces",
                ));
            }
        }
        let mut h = Sha256::new();
        h.update(route.as_bytes());
        h.update([0]);
        h.update(serde_json::to_vec(body).map_err(|e| Error::Internal(e.to_string()))?);
        Ok(Self {
            key,
            hash: h.finalize().to_vec(),
        })
    }

    /// Keys of signed-in members are their own: two members of one organization using the
    /// same key never see each other's answers.
    pub fn scoped(mut self, user_id: Option<&str>) -> Self {
        if let (Some(user), Some(key)) = (user_id, &self.key) {
            self.key = Some(format!("{user}/{key}"));
        }
        self
    }

    fn answer<T: DeserializeOwned>(&self, stored: Stored) -> Result<T, Error> {
        if stored.request_hash != self.hash {
            return Err(Error::Unprocessable {
                code: "idempotency_key_reused",
                message: "this Idempotency-Key was used with a different request".into(),
            });
        }
        serde_json::from_value(stored.body).map_err(|e| Error::Internal(e.to_string()))
    }

    /// The stored answer of an earlier request with this key, if any (before doing work).
    pub async fn replay<T: DeserializeOwned>(
        &self,
        conn: &mut PgConnection,
        org_id: &str,
    ) -> Result<Option<T>, Error> {
        let Some(key) = &self.key else {
            return Ok(None);
        };
        match store::find(conn, org_id, key).await? {
            Some(stored) => self.answer(stored).map(Some),
            None => Ok(None),
        }
    }

    /// Inside the work's transaction: holds the key until commit, refusing a concurrent
    /// holder, and replays an answer committed since `replay` looked.
    pub async fn lock<T: DeserializeOwned>(
        &self,
        tx: &mut PgConnection,
        org_id: &str,
    ) -> Result<Option<T>, Error> {
        let Some(key) = &self.key else {
            return Ok(None);
        };
        if !store::try_lock(tx, org_id, key).await? {
            return Err(Error::conflict(
                "idempotency_key_in_use",
                "a request with this Idempotency-Key is still being processed; retry shortly",
            ));
        }
        self.replay(tx, org_id).await
    }

    /// Stores the answer in the work's transaction.
    pub async fn save<T: Serialize>(
        &self,
        tx: &mut PgConnection,
        org_id: &str,
        status: u16,
        answer: &T,
    ) -> Result<(), Error> {
        let Some(key) = &self.key else { return Ok(()) };
        let body = serde_json::to_value(answer).map_err(|e| Error::Internal(e.to_string()))?;
        store::save(tx, org_id, key, &self.hash, status as i16, &body).await?;
        Ok(())
    }
}
