//! `pushdial-protocol`: the words the server and the phones share, in one place with no
//! I/O, so that the server that writes them and the SDK that reads them cannot drift apart.
//!
//! - [`phone`]: the agent stream's messages, server → phone ([`ToPhone`]) and
//!   phone → server ([`FromPhone`]); `openapi/asyncapi.yaml` is checked against them.
//! - [`call`]: the call's wire shape ([`Call`]), where a call is ([`CallStatus`]) and how
//!   the phone confirms it ([`Confirm`]), typed from the database row to the wire.

pub mod call;
pub mod phone;
#[cfg(feature = "sqlx")]
mod sql;

pub use call::{Call, CallStatus, Confirm, UnknownCallStatus, UnknownConfirm};
pub use phone::{CancelReason, FromPhone, ToPhone, DEFAULT_HEARTBEAT_INTERVAL_S};
