//! How the agent behaves ([`RunOptions`]) and the confirmation hook ([`ConfirmFn`]).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// A confirmation hook: given the number, say whether to dial. Called on a
/// blocking thread, so it may block (e.g. a GUI dialog); concurrent offers
/// may call it concurrently. If the call is canceled or expires meanwhile,
/// the answer is ignored.
pub type ConfirmFn = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// How [`run`](super::run) behaves. `RunOptions::default()` is: ask on the terminal,
/// built-in dialer (prints `Dialing <number>`), no connection signal.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// Dial without asking, even when the call's `confirm` is `prompt` (never when it is
    /// `required`: a widget's call is always asked).
    pub auto: bool,
    /// Shell command that places the call, run as
    /// `sh -c '<dial_command>' pushdial-dial <number>`: the number is `$1`
    /// and also `$PUSHDIAL_NUMBER` (the call id is `$PUSHDIAL_CALL_ID`).
    /// Quote it (`"$1"`). Exit status 0 means the call happened; the time the
    /// command ran is reported as `duration_s`. `None` uses the built-in
    /// dialer, which prints `Dialing <number>` to stdout.
    pub dial_command: Option<String>,
    /// How long the built-in dialer pretends the call lasts (default zero:
    /// it returns at once). Ignored with `dial_command`. Lets tests observe
    /// the `dialing` state.
    pub call_duration: Duration,
    /// Set to `true` after each `hello` from the server and to `false` when
    /// the stream is lost and when [`run`](super::run) returns. Tests wait on the
    /// receiver (`rx.wait_for(|c| *c)`) to know the agent is online.
    pub connected: Option<watch::Sender<bool>>,
    /// Replaces the terminal prompt when set (embedders, tests).
    pub confirm: Option<ConfirmFn>,
}

impl fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunOptions")
            .field("auto", &self.auto)
            .field("dial_command", &self.dial_command)
            .field("call_duration", &self.call_duration)
            .field("connected", &self.connected.is_some())
            .field("confirm", &self.confirm.as_ref().map(|_| "<fn>"))
            .finish()
    }
}
