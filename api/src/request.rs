//! What is known about the request being served, for whoever answers it: its id, its
//! client's address, and what rate limiting decided (for the response's headers). The
//! request pipeline (`pipeline`) sets these; problem documents, handlers and limits read
//! or add to them. It depends on no other module of the crate, so that all of them may.

tokio::task_local! {
    /// The id of the request being served, for problem documents and logs.
    pub static REQUEST_ID: String;
    /// What rate limiting decided for the request being served, for its response headers.
    pub static RATE: std::cell::RefCell<RateState>;
}

/// Rate-limit facts about one request, turned into headers by the middleware.
#[derive(Debug, Default, Clone)]
pub struct RateState {
    /// (policy name, quota, window in seconds, remaining, seconds until reset) of the
    /// policy reported in `RateLimit-Policy` / `RateLimit`.
    pub policy: Option<(&'static str, u32, u64, u32, u64)>,
    /// Set when the request was refused: the `Retry-After` to send.
    pub retry_after: Option<std::time::Duration>,
}

/// Records the policy reported in this response's `RateLimit` headers.
pub fn report_rate(
    policy: &'static str,
    quota: u32,
    window_s: u64,
    d: &pushdial_core::ratelimit::Decision,
) {
    let reset = d.reset.as_secs_f64().ceil() as u64;
    let _ = RATE
        .try_with(|r| r.borrow_mut().policy = Some((policy, quota, window_s, d.remaining, reset)));
}

/// The current request's id (empty outside a request).
pub fn request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_default()
}

/// The client's address (behind trusted proxies: from `X-Forwarded-For`).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub std::net::IpAddr);
