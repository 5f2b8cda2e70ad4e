//! `pushdial-sdk`: a typed Rust client of pushdial's HTTP APIs and the
//! reference phone agent.
//!
//! - [`Client`]: the public API (`/v1/...`) with a secret key `pd_sk_…`:
//!   agents, pairing codes, devices, calls, call events.
//! - [`AgentClient`]: the agent API (`/agent/v1/...`) with a device token
//!   `pd_dev_…`: pairing, device updates, heartbeats, acks, status reports,
//!   and the offer [`Stream`] (WebSocket).
//! - [`agent`]: the reference agent loop ([`agent::run`]) and its state file,
//!   used by the `pushdial-agent` binary and embeddable in tests.
//!
//! Every non-2xx answer becomes [`Error::Api`] carrying the decoded
//! [`Problem`] document.
//!
//! ```no_run
//! # async fn demo() -> pushdial_sdk::Result<()> {
//! use pushdial_sdk::{Client, CreateCall};
//! let client = Client::new("http://127.0.0.1:8080", "pd_sk_...")?;
//! let agent = client.create_agent("Ada", None).await?;
//! let call = client
//!     .create_call(&CreateCall::for_agent("+15551234567", &agent.id), Some("order-42"))
//!     .await?;
//! println!("{} is {}", call.id, call.status);
//! # Ok(()) }
//! ```

pub mod agent;
mod client;
mod error;
mod stream;
mod types;
pub mod webpush;

pub use client::{AgentClient, Client};
pub use error::{Error, Result};
/// The wire vocabulary shared with the server: stream messages, call statuses.
pub use pushdial_protocol as protocol;
pub use stream::{AgentMessage, ServerMessage, Stream, DEFAULT_HEARTBEAT_INTERVAL_S};
pub use types::{
    AckResponse, Agent, Call, CallEvent, CallStatus, CreateAgent, CreateCall, CreatePairingCode,
    Device, FieldError, HeartbeatResponse, List, ListCalls, ListParams, PairRequest, PairResponse,
    PairingCode, Problem, Report, UnknownCallStatus, UpdateDevice,
};
