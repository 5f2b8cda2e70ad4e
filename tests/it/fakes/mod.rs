//! Fakes of the services pushdial talks to and we cannot reach from a test: real servers on
//! loopback (or, for OpenID Connect, a real provider library) that check what the real
//! service checks and record what they got. One module per fake; tests use them as
//! `crate::fakes::…`.

pub mod fcm;
pub mod github;
pub mod hanging_push;
pub mod internal_service;
pub mod oidc;
pub mod otlp;
pub mod recorder;
pub mod smtp;
pub mod tarpit;
pub mod web_push;
pub mod webhook;
