//! The reference phone agent: its persisted pairing state ([`AgentState`]),
//! its options ([`RunOptions`]) and its main loop ([`run`]).
//!
//! [`run`] keeps one agent stream open (reconnecting with exponential backoff
//! and full jitter), sends heartbeats, and handles every `call.offer` in its
//! own task:
//!
//! 1. `ack` the call (a 409 means someone else took it or it is over: drop it);
//! 2. if the ack says `confirm: "required"`, or `"prompt"` and
//!    [`RunOptions::auto`] is off, ask
//!    `Call +15551234567? [y/N]` (on the terminal, or through
//!    [`RunOptions::confirm`]); "no", no terminal, or end of input → report
//!    `declined`;
//! 3. report `accepted`, then `dialing`; re-check `expires_at` right before
//!    dialing and never dial after it;
//! 4. run the dial command and report `completed` with `duration_s`, or
//!    `failed` with reason `dial_failed`.
//!
//! The binary `pushdial-agent` is a thin CLI over this module; end-to-end
//! tests run [`run`] in-process and use [`RunOptions::connected`] to know
//! when the agent is online.

mod backoff;
mod dial;
mod offer;
mod options;
mod prompt;
mod session;
mod state;

pub use backoff::Backoff;
pub use options::{ConfirmFn, RunOptions};
pub use session::{run, run_push_woken};
pub use state::{AgentState, STATE_ENV};
