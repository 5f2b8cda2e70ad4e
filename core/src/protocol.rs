//! The messages the server writes on a phone's agent stream (`GET /agent/v1/stream`) live
//! in the `pushdial-protocol` crate, shared with the SDK's agent that reads them. Every
//! sender — the api's hello, first offers, cancels, revocations and reconnect hints, the
//! worker's offers and expiries, the offers sent again after a reconnect or a Redis outage
//! — builds its message from [`ToPhone`]; the api writes them to sockets, `presence`
//! carries them between processes.

pub use pushdial_protocol::{CancelReason, FromPhone, ToPhone};
