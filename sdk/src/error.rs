//! The SDK's single error type: API problems, transport failures, undecodable
//! answers, WebSocket failures and local (config / state file) failures.

use std::path::PathBuf;

use crate::types::Problem;

/// Shorthand for `std::result::Result<T, pushdial_sdk::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong when talking to pushdial.
///
/// Exists so callers can tell a server *answer* (`Api`, with the decoded
/// `application/problem+json` document) from a failure to get an answer at all
/// (`Http`, `WebSocket`, `Timeout`) or from a local mistake (`Config`, `Io`,
/// `StateFile`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with a non-2xx status. `problem` is the decoded
    /// problem document (or one synthesized from the status when the body was
    /// not a problem document). Boxed to keep `Result<T, Error>` small.
    #[error("{}", api_message(*.status, .problem))]
    Api {
        /// HTTP status of the answer.
        status: u16,
        /// The problem document.
        problem: Box<Problem>,
        /// The answer's `Retry-After` (in seconds), when it has one: how long the
        /// server asks to be left alone (`429`, `503 overloaded`).
        retry_after: Option<std::time::Duration>,
    },
    /// The request could not be sent or the answer could not be read
    /// (connection refused, timeout, TLS, ...).
    #[error("http request failed: {0}")]
    Http(#[from] reqwest::Error),
    /// A 2xx answer whose body did not match the expected type.
    #[error("could not decode JSON from the server: {source}")]
    Decode {
        /// The JSON error.
        source: serde_json::Error,
        /// The (possibly truncated) body, for diagnostics.
        body: String,
    },
    /// The agent stream (WebSocket) failed. Boxed: the tungstenite error is large.
    #[error("websocket: {0}")]
    WebSocket(Box<tokio_tungstenite::tungstenite::Error>),
    /// Something took longer than the SDK is willing to wait.
    #[error("timed out: {0}")]
    Timeout(&'static str),
    /// Invalid input given to the SDK itself (base URL, token, missing home dir...).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Reading or writing a local file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A local state file exists but is not valid JSON of the expected shape.
    #[error("invalid state file {}: {source}", path.display())]
    StateFile {
        /// The file involved.
        path: PathBuf,
        /// The JSON error.
        source: serde_json::Error,
    },
}

fn api_message(status: u16, problem: &Problem) -> String {
    let mut msg = format!("api error {status}");
    if !problem.code.is_empty() {
        msg.push_str(&format!(" ({})", problem.code));
    }
    if !problem.title.is_empty() {
        msg.push_str(&format!(": {}", problem.title));
    }
    if !problem.detail.is_empty() && problem.detail != problem.title {
        msg.push_str(&format!(" — {}", problem.detail));
    }
    if !problem.request_id.is_empty() {
        msg.push_str(&format!(" [request {}]", problem.request_id));
    }
    msg
}

impl From<tokio_tungstenite::tungstenite::Error> for Error {
    fn from(e: tokio_tungstenite::tungstenite::Error) -> Self {
        Error::WebSocket(Box::new(e))
    }
}

impl Error {
    /// The HTTP status, when the server answered with an error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The problem document, when the server answered with an error.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            Error::Api { problem, .. } => Some(problem),
            _ => None,
        }
    }

    /// The problem's machine-readable `code` (e.g. `"call_expired"`), when the
    /// server answered with an error that carried one.
    pub fn code(&self) -> Option<&str> {
        self.problem()
            .map(|p| p.code.as_str())
            .filter(|c| !c.is_empty())
    }

    /// The message followed by its underlying causes (`a: b: c`), skipping
    /// causes already spelled out. Handy for logs: e.g. shows the
    /// "Connection refused" hidden below a [`Error::Http`].
    pub fn display_chain(&self) -> String {
        chain(self)
    }

    /// The server's `Retry-After`, when it answered with one.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Error::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// True when retrying the same request may succeed: transport failures,
    /// timeouts and 5xx / 429 answers.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Api { status, .. } => *status >= 500 || *status == 429,
            Error::Http(_) | Error::WebSocket(_) | Error::Timeout(_) => true,
            _ => false,
        }
    }
}

/// A `Retry-After` header in delta-seconds (the form pushdial sends; an HTTP date is
/// ignored).
pub(crate) fn retry_after(value: Option<&str>) -> Option<std::time::Duration> {
    value
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(std::time::Duration::from_secs)
}

/// `err` and its sources joined with `": "`, without repeating a message
/// already included.
pub(crate) fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = err.to_string();
    let mut next = err.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        next = cause.source();
    }
    msg
}
