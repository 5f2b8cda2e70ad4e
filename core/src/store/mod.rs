//! All SQL of pushdial, in small functions over `&mut PgConnection` so that the caller
//! chooses the transaction boundary. Every tenant-owned query filters by `org_id`.

pub mod accounts;
pub mod agents;
pub mod calls;
pub mod devices;
pub mod exports;
pub mod idempotency;
pub mod keys;
pub mod orgs;
pub mod pairing;
pub mod push_credentials;
pub mod webhooks;
pub mod widgets;

/// A page request: Stripe-style cursors over ids, newest first.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub limit: i64,
    pub starting_after: Option<String>,
    pub ending_before: Option<String>,
}

/// One page of results, newest first, and whether more lie beyond it in the direction read.
#[derive(Debug, Clone)]
pub struct Paged<T> {
    pub data: Vec<T>,
    pub has_more: bool,
}

impl Page {
    /// Trims a result fetched with `limit + 1` rows into a page.
    pub(crate) fn finish<T>(&self, mut rows: Vec<T>) -> Paged<T> {
        let has_more = rows.len() as i64 > self.limit;
        rows.truncate(self.limit.max(0) as usize);
        // `ending_before` reads upwards (oldest first); pages are always newest first.
        if self.ending_before.is_some() {
            rows.reverse();
        }
        Paged {
            data: rows,
            has_more,
        }
    }
}
