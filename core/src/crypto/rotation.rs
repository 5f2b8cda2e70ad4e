//! Re-sealing every stored secret with the current key in the current format (`pushdial
//! admin rotate-encryption-key`), while the keys it was sealed with are still configured
//! as previous keys. Batches of rows, each in a transaction holding its rows; a value
//! already sealed with the current key in the current format is left alone, so a run that
//! stopped half-way is simply run again.

use sqlx::{PgConnection, PgPool};

use super::{Bound, SecretBox};

/// What happened to the values of one kind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// Opened with a configured key and sealed again with the current one.
    pub resealed: u64,
    /// Already sealed with the current key in the current format.
    pub current: u64,
    /// Opened with no configured key (or not bound to its row): left as they were.
    pub unreadable: u64,
}

/// Counts per kind of sealed value.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    pub webhook_secrets: Counts,
    pub push_credentials: Counts,
    pub sign_ins: Counts,
}

impl Report {
    pub fn unreadable(&self) -> u64 {
        self.webhook_secrets.unreadable
            + self.push_credentials.unreadable
            + self.sign_ins.unreadable
    }
}

impl Counts {
    /// The value to store instead of `stored`, if any.
    fn reseal(
        &mut self,
        secrets: &SecretBox,
        bound: Bound<'_>,
        stored: &[u8],
    ) -> Result<Option<Vec<u8>>, String> {
        if secrets.is_current(stored) && secrets.open(bound, stored).is_ok() {
            self.current += 1;
            return Ok(None);
        }
        match secrets.open(bound, stored) {
            Ok(plain) => {
                self.resealed += 1;
                secrets.seal(bound, &plain).map(Some)
            }
            Err(e) => {
                tracing::warn!(error = %e, "a sealed value does not open; left as it was");
                self.unreadable += 1;
                Ok(None)
            }
        }
    }
}

/// Re-seals every sealed value with the current key, `batch` rows per transaction.
pub async fn rotate(db: &PgPool, secrets: &SecretBox, batch: i64) -> Result<Report, String> {
    let mut report = Report::default();
    let batch = batch.max(1);
    let mut after = String::new();
    loop {
        let mut tx = db.begin().await.map_err(|e| e.to_string())?;
        let n = webhook_batch(&mut tx, secrets, &after, batch, &mut report.webhook_secrets).await?;
        tx.commit().await.map_err(|e| e.to_string())?;
        match n {
            Some(last) => after = last,
            None => break,
        }
    }
    let mut after = String::new();
    loop {
        let mut tx = db.begin().await.map_err(|e| e.to_string())?;
        let n = push_batch(
            &mut tx,
            secrets,
            &after,
            batch,
            &mut report.push_credentials,
        )
        .await?;
        tx.commit().await.map_err(|e| e.to_string())?;
        match n {
            Some(last) => after = last,
            None => break,
        }
    }
    let mut after: Vec<u8> = Vec::new();
    loop {
        let mut tx = db.begin().await.map_err(|e| e.to_string())?;
        let n = sign_in_batch(&mut tx, secrets, &after, batch, &mut report.sign_ins).await?;
        tx.commit().await.map_err(|e| e.to_string())?;
        match n {
            Some(last) => after = last,
            None => break,
        }
    }
    Ok(report)
}

/// One batch of webhook endpoints after `after`; the last id seen, or `None` when done.
async fn webhook_batch(
    conn: &mut PgConnection,
    secrets: &SecretBox,
    after: &str,
    batch: i64,
    counts: &mut Counts,
) -> Result<Option<String>, String> {
    let rows = sqlx::query!(
        "select id, org_id, secret_sealed, previous_secret_sealed from webhook_endpoints
         where id > $1 order by id limit $2 for update",
        after,
        batch
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| e.to_string())?;
    let Some(last) = rows.last().map(|r| r.id.clone()) else {
        return Ok(None);
    };
    for r in rows {
        let bound = Bound::WebhookSecret {
            org_id: &r.org_id,
            endpoint_id: &r.id,
        };
        let current = counts.reseal(secrets, bound, &r.secret_sealed)?;
        let previous = match &r.previous_secret_sealed {
            Some(p) => counts.reseal(secrets, bound, p)?,
            None => None,
        };
        if current.is_none() && previous.is_none() {
            continue;
        }
        sqlx::query!(
            "update webhook_endpoints
                set secret_sealed = coalesce($2, secret_sealed),
                    previous_secret_sealed = coalesce($3, previous_secret_sealed)
              where id = $1",
            r.id,
            current,
            previous
        )
        .execute(&mut *conn)
        .await
        .map_err(|e| e.to_string())?;
    }
    Ok(Some(last))
}

async fn push_batch(
    conn: &mut PgConnection,
    secrets: &SecretBox,
    after: &str,
    batch: i64,
    counts: &mut Counts,
) -> Result<Option<String>, String> {
    let rows = sqlx::query!(
        "select id, org_id, provider, secret from push_credentials
         where id > $1 order by id limit $2 for update",
        after,
        batch
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| e.to_string())?;
    let Some(last) = rows.last().map(|r| r.id.clone()) else {
        return Ok(None);
    };
    for r in rows {
        let bound = Bound::PushCredential {
            org_id: &r.org_id,
            provider: &r.provider,
            id: &r.id,
        };
        if let Some(sealed) = counts.reseal(secrets, bound, &r.secret)? {
            sqlx::query!(
                "update push_credentials set secret = $2 where id = $1",
                r.id,
                sealed
            )
            .execute(&mut *conn)
            .await
            .map_err(|e| e.to_string())?;
        }
    }
    Ok(Some(last))
}

async fn sign_in_batch(
    conn: &mut PgConnection,
    secrets: &SecretBox,
    after: &[u8],
    batch: i64,
    counts: &mut Counts,
) -> Result<Option<Vec<u8>>, String> {
    let rows = sqlx::query!(
        "select state_hash, provider, secrets from sign_ins
         where state_hash > $1 order by state_hash limit $2 for update",
        after,
        batch
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| e.to_string())?;
    let Some(last) = rows.last().map(|r| r.state_hash.clone()) else {
        return Ok(None);
    };
    for r in rows {
        let bound = Bound::SignIn {
            state_hash: &r.state_hash,
            provider: &r.provider,
        };
        if let Some(sealed) = counts.reseal(secrets, bound, &r.secrets)? {
            sqlx::query!(
                "update sign_ins set secrets = $2 where state_hash = $1",
                r.state_hash,
                sealed
            )
            .execute(&mut *conn)
            .await
            .map_err(|e| e.to_string())?;
        }
    }
    Ok(Some(last))
}
