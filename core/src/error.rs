//! The one error type of the core layer. Every variant carries a stable snake_case `code`
//! that the api turns into a problem document; the HTTP status is chosen in one place
//! (`Error::status`) so handlers never decide it.

/// A field that failed validation, reported to the client in the problem's `errors`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Why an operation of the core failed, in terms a client can act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is well-formed but its values are not acceptable (400).
    #[error("{message}")]
    Invalid {
        code: &'static str,
        message: String,
        errors: Vec<FieldError>,
    },
    /// No credentials, or credentials that are not valid (401).
    #[error("{message}")]
    Unauthenticated { code: &'static str, message: String },
    /// Valid credentials that may not do this (403).
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    /// The resource does not exist in the caller's organization (404).
    #[error("no such {0}")]
    NotFound(&'static str),
    /// The resource's current state does not allow this (409).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// The same idempotency key was used with another request body (422).
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    /// A rate limit refused the request (429); retry after the given time.
    #[error("rate limit `{policy}` exceeded; retry in {} s", retry_after.as_secs_f64().ceil())]
    RateLimited {
        policy: &'static str,
        retry_after: std::time::Duration,
    },
    /// A dependency needed to answer is down (503); retrying later may work.
    #[error("{message}")]
    Unavailable { code: &'static str, message: String },
    #[error("database error")]
    Database(#[source] sqlx::Error),
    #[error("redis error")]
    Redis(#[from] redis::RedisError),
    #[error("internal error: {0}")]
    Internal(String),
}

/// Result of a core operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Error::Invalid {
            code: "validation_failed",
            message: format!("{field}: {message}"),
            errors: vec![FieldError::new(field, message)],
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Error::Conflict {
            code,
            message: message.into(),
        }
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Error::Forbidden {
            code,
            message: message.into(),
        }
    }

    pub fn unauthenticated(code: &'static str, message: impl Into<String>) -> Self {
        Error::Unauthenticated {
            code,
            message: message.into(),
        }
    }

    /// The HTTP status this error maps to.
    pub fn status(&self) -> u16 {
        match self {
            Error::Invalid { .. } => 400,
            Error::Unauthenticated { .. } => 401,
            Error::Forbidden { .. } => 403,
            Error::NotFound(_) => 404,
            Error::Conflict { .. } => 409,
            Error::Unprocessable { .. } => 422,
            Error::RateLimited { .. } => 429,
            Error::Unavailable { .. } => 503,
            _ if self.dependency_failure().is_some() => 503,
            Error::Database(_) | Error::Redis(_) | Error::Internal(_) => 500,
        }
    }

    /// The stable machine-readable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Invalid { code, .. }
            | Error::Unauthenticated { code, .. }
            | Error::Forbidden { code, .. }
            | Error::Conflict { code, .. }
            | Error::Unprocessable { code, .. }
            | Error::Unavailable { code, .. } => code,
            Error::NotFound(_) => "resource_missing",
            Error::RateLimited { .. } => "rate_limited",
            _ if self.dependency_failure().is_some() => DEPENDENCY_UNAVAILABLE,
            Error::Database(_) | Error::Redis(_) | Error::Internal(_) => "internal_error",
        }
    }

    /// Field errors, for validation failures.
    pub fn field_errors(&self) -> &[FieldError] {
        match self {
            Error::Invalid { errors, .. } => errors,
            _ => &[],
        }
    }

    /// Whether the message may be shown to the client (internal causes are not).
    pub fn is_internal(&self) -> bool {
        self.status() >= 500 && !matches!(self, Error::Unavailable { .. })
    }

    /// `(dependency, cause)` when this error means PostgreSQL or Redis could not be reached
    /// or is restarting, rather than a fault of ours: such a request may succeed when
    /// retried, and is answered `503 dependency_unavailable` with `Retry-After`.
    pub fn dependency_failure(&self) -> Option<(&'static str, &'static str)> {
        match self {
            Error::Database(e) => database_unavailable(e).map(|cause| ("postgres", cause)),
            Error::Redis(e) => redis_unavailable(e).map(|cause| ("redis", cause)),
            _ => None,
        }
    }
}

/// The problem code of a request that failed because PostgreSQL or Redis is unreachable,
/// restarting or dropped its connection (`503`, with `Retry-After`).
pub const DEPENDENCY_UNAVAILABLE: &str = "dependency_unavailable";

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        if database_unavailable(&e).is_some() {
            // Connections idle in the pool may be dead too (a restart, every backend
            // terminated): test them before use for a while instead of failing a request on
            // each of them.
            suspect_database();
        }
        Error::Database(e)
    }
}

/// Why a database error means PostgreSQL is unavailable, if it does: the pool could not
/// give a connection, the connection broke, or the server is shutting down, starting up,
/// out of connections or terminated the session (SQLSTATE classes 08 connection
/// exception, 53 insufficient resources, 57 operator intervention — 57P01
/// admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now —, 58 system error).
pub fn database_unavailable(e: &sqlx::Error) -> Option<&'static str> {
    match e {
        sqlx::Error::PoolTimedOut => Some("pool_timeout"),
        sqlx::Error::PoolClosed => Some("pool_closed"),
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) => Some("connection"),
        sqlx::Error::Protocol(_) => Some("connection"),
        sqlx::Error::Database(db) => {
            let code = db.code()?;
            match code.get(..2)? {
                "08" => Some("connection"),
                "53" => Some("resources"),
                "57" if code.starts_with("57P") => Some("shutdown"),
                "57" => Some("canceled"),
                "58" => Some("system"),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Why a Redis error means Redis is unavailable, if it does: unreachable, timed out,
/// presumed down after a failure, loading its data after a restart, or failing over.
pub fn redis_unavailable(e: &redis::RedisError) -> Option<&'static str> {
    use redis::ErrorKind;
    if e.is_timeout() {
        return Some("timeout");
    }
    if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
        return Some("connection");
    }
    match e.kind() {
        ErrorKind::BusyLoadingError => Some("loading"),
        ErrorKind::TryAgain | ErrorKind::MasterDown | ErrorKind::ReadOnly => Some("failover"),
        ErrorKind::ClusterDown => Some("failover"),
        _ => None,
    }
}

/// Until when (milliseconds since the epoch) idle pool connections are pinged before use.
static DATABASE_SUSPECT_UNTIL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How long after a connection-level database error idle connections are tested.
const SUSPECT_FOR: std::time::Duration = std::time::Duration::from_secs(10);

fn now_ms() -> u64 {
    chrono::Utc::now().timestamp_millis().max(0) as u64
}

/// Records that a query found PostgreSQL unreachable or its session terminated (see
/// `error::database_unavailable`): idle connections are tested before use for a while.
pub fn suspect_database() {
    let until = now_ms() + SUSPECT_FOR.as_millis() as u64;
    DATABASE_SUSPECT_UNTIL.fetch_max(until, std::sync::atomic::Ordering::Relaxed);
}

/// Whether a connection-level database error was seen lately (the pool then pings idle
/// connections before handing them out).
pub(crate) fn database_suspect() -> bool {
    now_ms() < DATABASE_SUSPECT_UNTIL.load(std::sync::atomic::Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_dependencies_are_503_dependency_unavailable() {
        let unavailable = [
            Error::from(sqlx::Error::Io(std::io::Error::from(
                std::io::ErrorKind::ConnectionReset,
            ))),
            Error::from(sqlx::Error::PoolTimedOut),
            Error::from(sqlx::Error::PoolClosed),
            Error::Redis(redis::RedisError::from((
                redis::ErrorKind::IoError,
                "redis presumed down",
            ))),
            Error::Redis(redis::RedisError::from((
                redis::ErrorKind::BusyLoadingError,
                "loading",
            ))),
        ];
        for e in &unavailable {
            assert_eq!(
                (e.status(), e.code()),
                (503, DEPENDENCY_UNAVAILABLE),
                "{e:?}"
            );
            assert!(e.dependency_failure().is_some());
        }
        // Our own faults stay 500.
        let ours = [
            Error::from(sqlx::Error::RowNotFound),
            Error::Redis(redis::RedisError::from((
                redis::ErrorKind::TypeError,
                "wrong type",
            ))),
            Error::Internal("bug".into()),
        ];
        for e in &ours {
            assert_eq!((e.status(), e.code()), (500, "internal_error"), "{e:?}");
        }
    }
}
