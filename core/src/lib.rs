//! pushdial-core: everything the api and the worker share — configuration, domain types,
//! the call state machine, all SQL, the durable job queue, presence and push delivery.
//!
//! Neither `pushdial-api` nor `pushdial-worker` compiles the other; both depend on this crate.

pub mod access;
pub mod accounts;
pub mod agents;
pub mod calls;
pub mod config;
pub mod crypto;
pub mod ctx;
pub mod devices;
pub mod dialing;
pub mod egress;
pub mod error;
pub mod idempotency;
pub mod ids;
pub mod keycache;
pub mod lifecycle;
pub mod limits;
pub mod mail;
pub mod metrics;
pub mod phone;
pub mod placing;
pub mod presence;
pub mod protocol;
pub mod push;
pub mod queue;
pub mod ratelimit;
pub mod roles;
pub mod secrets;
pub mod sessions;
pub mod shutdown;
pub mod signin;
pub mod store;
pub mod telemetry;
pub mod tenants;
pub mod text;
pub mod webhooks;
pub mod widgets;

pub use config::Config;
pub use ctx::Ctx;
pub use error::{Error, FieldError, Result};

/// The migrations in `migrations/`, embedded so `pushdial migrate` needs no files at run time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");
