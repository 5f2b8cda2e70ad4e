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

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::future::Future;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch, Mutex};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn, Instrument};

use crate::client::AgentClient;
use crate::error::{Error, Result};
use crate::stream::{ServerMessage, Stream, DEFAULT_HEARTBEAT_INTERVAL_S};
use crate::types::{PairResponse, Report};

// ---------------------------------------------------------------------------
// State file
// ---------------------------------------------------------------------------

/// Environment variable that overrides the state file path.
pub const STATE_ENV: &str = "PUSHDIAL_AGENT_STATE";

/// What a paired agent must remember between runs: which server, which
/// device, and the device token. Stored as JSON, mode 0600 (it holds a secret).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentState {
    /// Server base URL, e.g. `https://pushdial.example.com`.
    pub server: String,
    /// `dev_…`
    pub device_id: String,
    /// `pd_dev_…` device token. Secret.
    pub token: String,
    /// `agt_…`, informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
}

impl fmt::Debug for AgentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentState")
            .field("server", &self.server)
            .field("device_id", &self.device_id)
            .field("token", &"<redacted>")
            .field("agent_id", &self.agent_id)
            .finish()
    }
}

impl AgentState {
    /// The state to store after a successful pairing with `server`.
    pub fn from_pair(server: &str, pair: &PairResponse) -> AgentState {
        AgentState {
            server: server.trim().to_owned(),
            device_id: pair.id.clone(),
            token: pair.token.clone(),
            agent_id: Some(pair.agent_id.clone()),
        }
    }

    /// `$XDG_CONFIG_HOME/pushdial/agent.json`, or `~/.config/pushdial/agent.json`.
    pub fn default_path() -> Result<PathBuf> {
        let config = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|h| !h.is_empty())
                    .map(|h| PathBuf::from(h).join(".config"))
            })
            .ok_or_else(|| {
                Error::Config(format!(
                    "neither XDG_CONFIG_HOME nor HOME is set; pass --state or set {STATE_ENV}"
                ))
            })?;
        Ok(config.join("pushdial").join("agent.json"))
    }

    /// The state path to use: `explicit` if given, else `$PUSHDIAL_AGENT_STATE`
    /// if set and non-empty, else [`AgentState::default_path`].
    pub fn resolve_path(explicit: Option<&Path>) -> Result<PathBuf> {
        if let Some(p) = explicit {
            return Ok(p.to_path_buf());
        }
        match std::env::var_os(STATE_ENV).filter(|v| !v.is_empty()) {
            Some(p) => Ok(PathBuf::from(p)),
            None => Self::default_path(),
        }
    }

    /// Reads the state file.
    pub fn load(path: &Path) -> Result<AgentState> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_slice(&bytes).map_err(|source| Error::StateFile {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Writes the state file atomically (temp file + rename), creating the
    /// parent directory (mode 0700) and giving the file mode 0600.
    pub fn save(&self, path: &Path) -> Result<()> {
        let io_err = |p: &Path| {
            let p = p.to_path_buf();
            move |source| Error::Io { path: p, source }
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(dir).map_err(io_err(dir))?;
        }
        let mut json = serde_json::to_vec_pretty(self).map_err(|source| Error::StateFile {
            path: path.to_path_buf(),
            source,
        })?;
        json.push(b'\n');

        let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
        tmp_name.push(format!(".tmp.{}", std::process::id()));
        let tmp = path.with_file_name(tmp_name);
        let written = write_private(&tmp, &json).and_then(|()| std::fs::rename(&tmp, path));
        if written.is_err() {
            // Best effort: do not leave a token-bearing temp file behind.
            let _ = std::fs::remove_file(&tmp);
        }
        written.map_err(io_err(path))
    }

    /// An [`AgentClient`] for this state's server and token.
    pub fn client(&self) -> Result<AgentClient> {
        AgentClient::new(&self.server, &self.token)
    }
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

/// Writes `bytes` to a new (or truncated) file readable only by its owner.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut file = opts.open(path)?;
    #[cfg(unix)]
    {
        // The file may have existed with looser permissions.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(bytes)?;
    file.sync_all()
}

// ---------------------------------------------------------------------------
// Backoff
// ---------------------------------------------------------------------------

/// Exponential backoff with full jitter: the n-th delay is uniform in
/// `[0, min(cap, base · 2ⁿ)]`. Exists so thousands of agents losing the same
/// server do not reconnect in lockstep.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    /// The agent's reconnect policy: base 250 ms, cap 30 s.
    pub fn reconnect() -> Backoff {
        Backoff::new(Duration::from_millis(250), Duration::from_secs(30))
    }

    /// A backoff starting at `base` and never exceeding `cap`.
    pub fn new(base: Duration, cap: Duration) -> Backoff {
        Backoff {
            base,
            cap,
            attempt: 0,
        }
    }

    /// Upper bound of the next delay: `min(cap, base · 2^attempt)`.
    pub fn ceiling(&self) -> Duration {
        let factor = 2u32.saturating_pow(self.attempt.min(31));
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The next delay (random in `[0, ceiling]`); grows the ceiling.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        jitter(ceiling)
    }

    /// Back to the first step (after a successful `hello`).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// The delay before retrying after `e`: the backoff's, but never sooner than the server's
/// `Retry-After`, spread over up to half as long again, so that clients refused together
/// do not all come back at the same instant.
fn after_refusal(e: &crate::Error, backoff: Duration) -> Duration {
    match e.retry_after() {
        Some(asked) => backoff.max(asked + jitter(asked / 2)),
        None => backoff,
    }
}

/// A uniformly random duration in `[0, max]` (millisecond resolution).
fn jitter(max: Duration) -> Duration {
    Duration::from_millis(rand::thread_rng().gen_range(0..=millis(max)))
}

/// Whole milliseconds of `d`, saturating.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

/// A confirmation hook: given the number, say whether to dial. Called on a
/// blocking thread, so it may block (e.g. a GUI dialog); concurrent offers
/// may call it concurrently. If the call is canceled or expires meanwhile,
/// the answer is ignored.
pub type ConfirmFn = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// How [`run`] behaves. `RunOptions::default()` is: ask on the terminal,
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
    /// the stream is lost and when [`run`] returns. Tests wait on the
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

// ---------------------------------------------------------------------------
// Main loop
// ---------------------------------------------------------------------------

/// Grace period given to in-flight calls (final reports) at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Upper bound of the delay before reconnecting after a `reconnect` message.
const RECONNECT_JITTER: Duration = Duration::from_secs(1);
/// How many call ids are remembered to ignore duplicate offers.
const SEEN_CAPACITY: usize = 1024;
/// A connection that answered pings but stayed silent this many heartbeat
/// intervals is considered dead.
const SILENT_INTERVALS: u32 = 3;
/// Upper bound on the server-provided heartbeat interval.
const MAX_HEARTBEAT_INTERVAL_S: u64 = 3600;

/// Runs the agent until `shutdown` completes.
///
/// Returns `Ok(())` after `shutdown`, or `Err` when the server refuses the
/// device token (401/403 on connect: revoked or unknown device — pair
/// again). Every other failure is retried forever with backoff. At shutdown,
/// in-flight calls are interrupted and get up to 5 s to send their final report.
pub async fn run<F>(client: AgentClient, opts: RunOptions, shutdown: F) -> Result<()>
where
    F: Future<Output = ()>,
{
    run_with(client, opts, None, shutdown).await
}

async fn run_with<F>(
    client: AgentClient,
    opts: RunOptions,
    push: Option<crate::webpush::WebPushReceiver>,
    shutdown: F,
) -> Result<()>
where
    F: Future<Output = ()>,
{
    let RunOptions {
        auto,
        dial_command,
        call_duration,
        connected,
        confirm,
    } = opts;
    let ctx = Arc::new(OfferCtx {
        client: client.clone(),
        auto,
        dial_command,
        call_duration,
        confirm,
        prompt: TerminalPrompt::default(),
    });
    let mut runner = Runner {
        client,
        ctx,
        connected,
        root: CancellationToken::new(),
        tasks: JoinSet::new(),
        inflight: HashMap::new(),
        seen: SeenIds::new(SEEN_CAPACITY),
        backoff: Backoff::reconnect(),
    };
    let mut shutdown = std::pin::pin!(shutdown);
    let result = match push {
        None => runner.main_loop(shutdown.as_mut()).await,
        Some(receiver) => runner.push_loop(receiver, shutdown.as_mut()).await,
    };
    runner.finish().await;
    result
}

/// How often an agent without a socket checks in, so that its push channel stays fresh.
const PUSH_CHECK_IN: Duration = Duration::from_secs(600);

/// Runs the agent **without a live socket** until `shutdown` completes: registers the
/// receiver's Web Push subscription as the device's push channel and handles the offers
/// pushed to it, as a phone asleep would (the server wakes it through the push path).
pub async fn run_push_woken<F>(
    client: AgentClient,
    opts: RunOptions,
    receiver: crate::webpush::WebPushReceiver,
    shutdown: F,
) -> Result<()>
where
    F: Future<Output = ()>,
{
    client
        .register_push("webpush", receiver.subscription().clone())
        .await?;
    info!(endpoint = %receiver.subscription()["endpoint"], "registered for push; no socket");
    run_with(client, opts, Some(receiver), shutdown).await
}

/// Why a stream session ended.
enum SessionEnd {
    Shutdown,
    Reconnect,
    Lost,
}

/// Mutable state of [`run`], across connections.
struct Runner {
    client: AgentClient,
    ctx: Arc<OfferCtx>,
    connected: Option<watch::Sender<bool>>,
    root: CancellationToken,
    tasks: JoinSet<OfferDone>,
    inflight: HashMap<String, CancellationToken>,
    seen: SeenIds,
    backoff: Backoff,
}

impl Runner {
    async fn main_loop<F: Future<Output = ()>>(&mut self, mut shutdown: Pin<&mut F>) -> Result<()> {
        let mut failures: u32 = 0;
        loop {
            let connecting = tokio::select! {
                biased;
                () = shutdown.as_mut() => return Ok(()),
                r = self.client.connect_stream() => r,
            };
            let delay = match connecting {
                Ok(mut stream) => {
                    failures = 0;
                    info!(server = %self.client.base_url(), "agent stream connected");
                    let end = self.session(&mut stream, shutdown.as_mut()).await;
                    self.set_connected(false);
                    match end {
                        SessionEnd::Shutdown => {
                            let _ =
                                tokio::time::timeout(Duration::from_secs(1), stream.close()).await;
                            return Ok(());
                        }
                        SessionEnd::Reconnect => jitter(RECONNECT_JITTER),
                        SessionEnd::Lost => self.backoff.next_delay(),
                    }
                }
                Err(e) if matches!(e.status(), Some(401 | 403)) => {
                    error!(error = %e.display_chain(), "server refused the device token; pair again");
                    return Err(e);
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let delay = after_refusal(&e, self.backoff.next_delay());
                    warn!(error = %e.display_chain(), attempt = failures, retry_in_ms = millis(delay),
                        "cannot connect the agent stream");
                    delay
                }
            };
            debug!(delay_ms = millis(delay), "reconnecting after delay");
            tokio::select! {
                biased;
                () = shutdown.as_mut() => return Ok(()),
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// Handles pushed offers until shutdown (or the receiver stops), checking in now and
    /// then so that the push channel stays fresh.
    async fn push_loop<F: Future<Output = ()>>(
        &mut self,
        mut receiver: crate::webpush::WebPushReceiver,
        mut shutdown: Pin<&mut F>,
    ) -> Result<()> {
        self.set_connected(true);
        let mut check_in = heartbeat_ticker(PUSH_CHECK_IN);
        loop {
            tokio::select! {
                biased;
                () = shutdown.as_mut() => return Ok(()),
                _ = check_in.tick() => {
                    if let Err(e) = self.client.heartbeat().await {
                        warn!(error = %e.display_chain(), "check-in failed");
                    }
                }
                pushed = receiver.next() => match pushed {
                    Some(offer) => {
                        self.reap();
                        info!(call_id = %offer.call_id, "woken by push");
                        self.offer(offer.call_id, offer.expires_at);
                    }
                    None => return Err(Error::Config("the push endpoint stopped".into())),
                },
                Some(done) = self.tasks.join_next(), if !self.tasks.is_empty() => self.finished(done),
            }
        }
    }

    /// Serves one connection until it ends.
    async fn session<F: Future<Output = ()>>(
        &mut self,
        stream: &mut Stream,
        mut shutdown: Pin<&mut F>,
    ) -> SessionEnd {
        let mut every = Duration::from_secs(DEFAULT_HEARTBEAT_INTERVAL_S);
        let mut ticker = heartbeat_ticker(every);
        loop {
            tokio::select! {
                biased;
                () = shutdown.as_mut() => return SessionEnd::Shutdown,
                _ = ticker.tick() => {
                    if stream.pong_seen()
                        && stream.last_activity().elapsed() > every.saturating_mul(SILENT_INTERVALS)
                    {
                        warn!("agent stream silent for too long; reconnecting");
                        return SessionEnd::Lost;
                    }
                    let sent = match stream.send_heartbeat().await {
                        Ok(()) => stream.ping().await,
                        Err(e) => Err(e),
                    };
                    if let Err(e) = sent {
                        warn!(error = %e.display_chain(), "sending heartbeat failed; reconnecting");
                        return SessionEnd::Lost;
                    }
                    debug!("heartbeat sent");
                }
                msg = stream.recv() => {
                    if let Some(end) = self.on_message(msg, &mut every, &mut ticker) {
                        return end;
                    }
                }
            }
        }
    }

    /// Reacts to one `recv` result; `Some` ends the session.
    fn on_message(
        &mut self,
        msg: Option<Result<ServerMessage>>,
        every: &mut Duration,
        ticker: &mut tokio::time::Interval,
    ) -> Option<SessionEnd> {
        self.reap();
        match msg {
            None => {
                info!("agent stream closed; reconnecting");
                return Some(SessionEnd::Lost);
            }
            Some(Err(e @ Error::Decode { .. })) => {
                warn!(error = %e.display_chain(), "ignoring malformed server message");
            }
            Some(Err(e)) => {
                warn!(error = %e.display_chain(), "agent stream failed; reconnecting");
                return Some(SessionEnd::Lost);
            }
            Some(Ok(ServerMessage::Hello {
                device_id,
                heartbeat_interval_s,
            })) => {
                let secs = match heartbeat_interval_s {
                    0 => DEFAULT_HEARTBEAT_INTERVAL_S,
                    s => s.min(MAX_HEARTBEAT_INTERVAL_S),
                };
                info!(%device_id, heartbeat_interval_s = secs, "online");
                *every = Duration::from_secs(secs);
                *ticker = heartbeat_ticker(*every);
                self.backoff.reset();
                self.set_connected(true);
            }
            Some(Ok(ServerMessage::CallOffer {
                call_id,
                expires_at,
            })) => self.offer(call_id, expires_at),
            Some(Ok(ServerMessage::CallCanceled { call_id, .. })) => {
                match self.inflight.get(&call_id) {
                    Some(token) => {
                        info!(%call_id, "call canceled by the server");
                        token.cancel();
                    }
                    None => debug!(%call_id, "cancel for a call not in progress"),
                }
            }
            Some(Ok(ServerMessage::Reconnect)) => {
                info!("server asked to reconnect");
                return Some(SessionEnd::Reconnect);
            }
            // The socket closes next, and the token is refused on reconnecting.
            Some(Ok(ServerMessage::DeviceRevoked)) => warn!("this device was revoked"),
            Some(Ok(ServerMessage::Unknown)) => debug!("ignoring unknown server message"),
        }
        None
    }

    /// Starts handling an offer, unless this call id was already seen.
    fn offer(&mut self, call_id: String, expires_at: DateTime<Utc>) {
        if !self.seen.insert(&call_id) {
            debug!(%call_id, "duplicate offer ignored");
            return;
        }
        let token = self.root.child_token();
        self.inflight.insert(call_id.clone(), token.clone());
        let span = tracing::info_span!("call", call_id = %call_id);
        let ctx = Arc::clone(&self.ctx);
        self.tasks
            .spawn(handle_offer(ctx, call_id, expires_at, token).instrument(span));
    }

    /// Collects finished offer tasks.
    fn reap(&mut self) {
        while let Some(done) = self.tasks.try_join_next() {
            self.finished(done);
        }
    }

    fn finished(&mut self, done: std::result::Result<OfferDone, tokio::task::JoinError>) {
        match done {
            Ok(done) => {
                self.inflight.remove(&done.call_id);
                if done.retry_allowed {
                    // The ack never got through: let a re-offer try again.
                    self.seen.remove(&done.call_id);
                }
            }
            Err(e) => error!(error = %e, "call task crashed"),
        }
    }

    fn set_connected(&self, value: bool) {
        if let Some(tx) = &self.connected {
            tx.send_replace(value);
        }
    }

    /// Interrupts in-flight calls and waits (bounded) for their final reports.
    async fn finish(&mut self) {
        self.set_connected(false);
        self.root.cancel();
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while let Some(done) = self.tasks.join_next().await {
                self.finished(done);
            }
        })
        .await;
        if drained.is_err() {
            warn!("in-flight calls did not finish in time; aborting them");
            self.tasks.abort_all();
        }
        info!("agent stopped");
    }
}

fn heartbeat_ticker(every: Duration) -> tokio::time::Interval {
    let mut t = tokio::time::interval_at(Instant::now() + every, every);
    t.set_missed_tick_behavior(MissedTickBehavior::Delay);
    t
}

/// Bounded memory of call ids already handled.
struct SeenIds {
    order: VecDeque<String>,
    set: HashSet<String>,
    cap: usize,
}

impl SeenIds {
    fn new(cap: usize) -> Self {
        SeenIds {
            order: VecDeque::new(),
            set: HashSet::new(),
            cap: cap.max(1),
        }
    }

    /// Records `id`; false if it was already there.
    fn insert(&mut self, id: &str) -> bool {
        if self.set.contains(id) {
            return false;
        }
        if self.order.len() >= self.cap {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        self.order.push_back(id.to_owned());
        self.set.insert(id.to_owned());
        true
    }

    fn remove(&mut self, id: &str) {
        if self.set.remove(id) {
            self.order.retain(|x| x != id);
        }
    }
}

// ---------------------------------------------------------------------------
// One offer
// ---------------------------------------------------------------------------

/// What an offer task tells the main loop when it ends.
struct OfferDone {
    call_id: String,
    /// The ack failed transiently: a new offer of the same call may be handled.
    retry_allowed: bool,
}

/// Everything an offer task needs, shared by all of them.
struct OfferCtx {
    client: AgentClient,
    auto: bool,
    dial_command: Option<String>,
    call_duration: Duration,
    confirm: Option<ConfirmFn>,
    prompt: TerminalPrompt,
}

/// Attempts for a request that failed transiently.
const ATTEMPTS: u32 = 3;

/// Runs `op` up to [`ATTEMPTS`] times while it fails transiently.
async fn with_retry<T, Fut>(mut op: impl FnMut() -> Fut) -> Result<T>
where
    Fut: Future<Output = Result<T>>,
{
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(2));
    let mut attempt = 1;
    loop {
        match op().await {
            Err(e) if e.is_transient() && attempt < ATTEMPTS => {
                let delay = after_refusal(&e, backoff.next_delay());
                debug!(error = %e.display_chain(), attempt, "transient failure; retrying");
                attempt += 1;
                tokio::time::sleep(delay).await;
            }
            other => return other,
        }
    }
}

/// Whether `to` is an E.164 number (`+` then 2 to 15 digits, no leading 0).
/// The number comes from the network: checked before it reaches the
/// terminal or a shell command.
fn is_e164(to: &str) -> bool {
    let Some(digits) = to.strip_prefix('+') else {
        return false;
    };
    (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

/// Time left until `at` (zero if past).
fn until(at: DateTime<Utc>) -> Duration {
    (at - Utc::now()).to_std().unwrap_or(Duration::ZERO)
}

async fn handle_offer(
    ctx: Arc<OfferCtx>,
    call_id: String,
    offered_expires_at: DateTime<Utc>,
    cancel: CancellationToken,
) -> OfferDone {
    let retry_allowed = offer_flow(&ctx, &call_id, offered_expires_at, &cancel).await;
    OfferDone {
        call_id,
        retry_allowed,
    }
}

/// Sends `report`; true if the server accepted it.
async fn report(ctx: &OfferCtx, call_id: &str, report: Report) -> bool {
    match with_retry(|| ctx.client.report(call_id, &report)).await {
        Ok(call) => {
            info!(reported = %report.status, call_status = %call.status, "status reported");
            true
        }
        Err(e) => {
            warn!(reported = %report.status, error = %e.display_chain(), "status report refused or failed");
            false
        }
    }
}

fn failed(reason: &str) -> Report {
    Report {
        reason: Some(reason.to_owned()),
        ..Report::new("failed")
    }
}

/// The offer state machine. Returns true when the ack failed transiently
/// (a re-offer of this call may be tried).
async fn offer_flow(
    ctx: &OfferCtx,
    call_id: &str,
    offered_expires_at: DateTime<Utc>,
    cancel: &CancellationToken,
) -> bool {
    info!(expires_at = %offered_expires_at, "call offered");
    let ack = match with_retry(|| ctx.client.ack(call_id)).await {
        Ok(ack) => ack,
        Err(e) if e.status() == Some(409) => {
            info!(
                code = e.code().unwrap_or_default(),
                "offer no longer available; dropped"
            );
            return false;
        }
        Err(e) => {
            warn!(error = %e.display_chain(), "ack failed; offer dropped");
            return e.is_transient();
        }
    };
    let expires_at = ack.expires_at;
    debug!(to = %ack.to, confirm = %ack.confirm, "acked");

    if !is_e164(&ack.to) {
        warn!("the number is not E.164; refusing to dial");
        report(ctx, call_id, failed("dial_failed")).await;
        return false;
    }

    // `required` (a widget's call: the number came from a public page) is asked even in
    // auto mode, and so is any value this agent does not know: only what is known to be
    // safe dials without asking.
    let ask = match ack.confirm.as_str() {
        "auto" => false,
        "prompt" => !ctx.auto,
        _ => true,
    };
    if ask {
        let answer = tokio::select! {
            yes = ctx.ask(&ack.to) => yes,
            () = tokio::time::sleep(until(expires_at)) => {
                ctx.withdrawn(&ack.to, "expired");
                info!("offer expired before an answer");
                return false;
            }
            () = cancel.cancelled() => {
                ctx.withdrawn(&ack.to, "canceled");
                info!("offer canceled before an answer");
                return false;
            }
        };
        if !answer {
            info!("declined");
            report(ctx, call_id, Report::new("declined")).await;
            return false;
        }
    }

    if cancel.is_cancelled() {
        info!("offer canceled; not dialing");
        return false;
    }
    if Utc::now() >= expires_at {
        info!("offer expired; not dialing");
        return false;
    }
    if !report(ctx, call_id, Report::new("accepted")).await
        || !report(ctx, call_id, Report::new("dialing")).await
    {
        return false;
    }

    // Last check, right before dialing.
    if cancel.is_cancelled() {
        info!("interrupted before dialing");
        report(ctx, call_id, failed("dial_failed")).await;
        return false;
    }
    if Utc::now() >= expires_at {
        warn!("offer expired before dialing; not dialing");
        report(ctx, call_id, failed("expired")).await;
        return false;
    }

    let started = Instant::now();
    let dialed = ctx.dial(&ack.to, call_id, cancel).await;
    match dialed {
        Ok(()) => {
            let duration_s = (started.elapsed() + Duration::from_millis(500)).as_secs();
            let done = Report {
                duration_s: Some(duration_s),
                ..Report::new("completed")
            };
            report(ctx, call_id, done).await;
        }
        Err(why) => {
            warn!(error = %why, "dialing failed");
            report(ctx, call_id, failed("dial_failed")).await;
        }
    }
    false
}

impl OfferCtx {
    /// Asks whether to call `number`: the hook if any, else the terminal.
    async fn ask(&self, number: &str) -> bool {
        match &self.confirm {
            Some(hook) => {
                let hook = Arc::clone(hook);
                let number = number.to_owned();
                tokio::task::spawn_blocking(move || hook(&number))
                    .await
                    .unwrap_or(false)
            }
            None => self.prompt.ask(number).await,
        }
    }

    /// Tells the person a pending question no longer matters.
    fn withdrawn(&self, number: &str, why: &str) {
        if self.confirm.is_none() && std::io::stdin().is_terminal() {
            println!();
            println!("Call {number} {why}; not dialing.");
        }
    }

    /// Places the call. `Err` describes why it failed. `cancel` interrupts
    /// it (the dial command's whole process group is terminated).
    async fn dial(
        &self,
        number: &str,
        call_id: &str,
        cancel: &CancellationToken,
    ) -> std::result::Result<(), String> {
        let Some(cmd) = &self.dial_command else {
            println!("Dialing {number}");
            if !self.call_duration.is_zero() {
                tokio::select! {
                    () = tokio::time::sleep(self.call_duration) => {}
                    () = cancel.cancelled() => return Err("interrupted".to_owned()),
                }
            }
            return Ok(());
        };
        info!("running the dial command");
        let mut command = tokio::process::Command::new("sh");
        command
            .arg("-c")
            .arg(cmd)
            .arg("pushdial-dial")
            .arg(number)
            .env("PUSHDIAL_NUMBER", number)
            .env("PUSHDIAL_CALL_ID", call_id)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        // Own process group: an interrupted dial stops everything it started.
        #[cfg(unix)]
        command.process_group(0);
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start the dial command: {e}"))?;
        let mut group = ProcessGroup::of(child.id());
        tokio::select! {
            status = child.wait() => {
                group.disarm();
                let status = status.map_err(|e| format!("waiting for the dial command: {e}"))?;
                if status.success() {
                    Ok(())
                } else {
                    Err(format!("dial command {status}"))
                }
            }
            () = cancel.cancelled() => {
                group.terminate();
                if tokio::time::timeout(Duration::from_secs(2), child.wait()).await.is_ok() {
                    group.disarm();
                }
                // An armed guard SIGKILLs the group when dropped.
                Err("interrupted".to_owned())
            }
        }
    }
}

/// The dial command's process group; SIGKILLed on drop unless disarmed, so
/// that grandchildren (`sh -c 'a; b'`) never outlive an interrupted call.
struct ProcessGroup {
    #[cfg(unix)]
    pgid: Option<nix::unistd::Pid>,
}

impl ProcessGroup {
    #[cfg(unix)]
    fn of(pid: Option<u32>) -> Self {
        let pgid = pid
            .and_then(|p| i32::try_from(p).ok())
            .map(nix::unistd::Pid::from_raw);
        ProcessGroup { pgid }
    }

    #[cfg(not(unix))]
    fn of(_pid: Option<u32>) -> Self {
        ProcessGroup {}
    }

    /// Asks the whole group to stop (SIGTERM).
    fn terminate(&self) {
        #[cfg(unix)]
        if let Some(pgid) = self.pgid {
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGTERM);
        }
    }

    /// The command finished on its own: leave the group alone.
    fn disarm(&mut self) {
        #[cfg(unix)]
        {
            self.pgid = None;
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(pgid) = self.pgid.take() {
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

// ---------------------------------------------------------------------------
// Terminal prompt
// ---------------------------------------------------------------------------

/// Asks `Call <number>? [y/N]` on the terminal, one question at a time.
///
/// Lines come from a dedicated stdin reader thread (started on first use), not
/// from `spawn_blocking`: an abandoned question (call canceled / expired) must
/// not leave a blocking task that stalls runtime shutdown or swallows the
/// answer to the next question. Lines typed before a question are discarded.
#[derive(Default)]
struct TerminalPrompt {
    state: Mutex<PromptState>,
}

#[derive(Default)]
struct PromptState {
    /// `Some(line)` per line read; `None` once stdin hit EOF or failed.
    lines: Option<mpsc::UnboundedReceiver<Option<String>>>,
    eof: bool,
}

impl TerminalPrompt {
    async fn ask(&self, number: &str) -> bool {
        if !std::io::stdin().is_terminal() {
            info!("confirmation needed but stdin is not a terminal; declining");
            return false;
        }
        let mut state = self.state.lock().await;
        let PromptState { lines, eof } = &mut *state;
        if *eof {
            info!("confirmation needed but stdin is closed; declining");
            return false;
        }
        if lines.is_none() {
            *lines = spawn_stdin_reader();
        }
        let Some(rx) = lines.as_mut() else {
            return false;
        };
        // Drop anything typed before the question.
        while let Ok(stale) = rx.try_recv() {
            if stale.is_none() {
                *eof = true;
                return false;
            }
        }
        print!("Call {number}? [y/N] ");
        let _ = std::io::stdout().flush();
        match rx.recv().await {
            Some(Some(line)) => matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes"),
            Some(None) | None => {
                *eof = true;
                println!();
                false
            }
        }
    }
}

fn spawn_stdin_reader() -> Option<mpsc::UnboundedReceiver<Option<String>>> {
    let (tx, rx) = mpsc::unbounded_channel();
    let spawned = std::thread::Builder::new()
        .name("pushdial-stdin".into())
        .spawn(move || {
            let stdin = std::io::stdin();
            loop {
                let mut line = String::new();
                match stdin.lock().read_line(&mut line) {
                    Ok(0) | Err(_) => {
                        let _ = tx.send(None);
                        return;
                    }
                    Ok(_) => {
                        if tx.send(Some(line)).is_err() {
                            return;
                        }
                    }
                }
            }
        });
    match spawned {
        Ok(_) => Some(rx),
        Err(e) => {
            warn!(error = %e, "cannot start the stdin reader");
            None
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_refused_request_is_retried_no_sooner_than_the_server_asked() {
        let overloaded = || crate::Error::Api {
            status: 503,
            problem: Box::new(crate::types::Problem::from_response(503, None, b"")),
            retry_after: crate::error::retry_after(Some("2")),
        };
        let tries = std::sync::atomic::AtomicU32::new(0);
        let started = tokio::time::Instant::now();
        let done = with_retry(|| {
            let n = tries.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                if n == 0 {
                    Err(overloaded())
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(done.ok(), Some(1));
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_secs(2) && waited <= Duration::from_secs(3),
            "{waited:?}"
        );
        // Without Retry-After the backoff alone decides (at most 200 ms the first time).
        let d = after_refusal(
            &crate::Error::Timeout("reading"),
            Duration::from_millis(150),
        );
        assert_eq!(d, Duration::from_millis(150));
    }

    #[test]
    fn backoff_stays_within_bounds_and_resets() {
        let base = Duration::from_millis(250);
        let cap = Duration::from_secs(30);
        let mut b = Backoff::new(base, cap);
        for n in 0..100u32 {
            let ceiling = b.ceiling();
            let expected = base.saturating_mul(2u32.saturating_pow(n.min(31))).min(cap);
            assert_eq!(ceiling, expected, "attempt {n}");
            let d = b.next_delay();
            assert!(d <= ceiling, "attempt {n}: {d:?} > {ceiling:?}");
            assert!(d <= cap);
        }
        assert_eq!(b.ceiling(), cap);
        b.reset();
        assert_eq!(b.ceiling(), base);
        assert!(b.next_delay() <= base);
    }

    #[test]
    fn backoff_jitter_is_spread() {
        let mut seen = HashSet::new();
        for _ in 0..50 {
            let mut b = Backoff::new(Duration::from_secs(10), Duration::from_secs(10));
            seen.insert(b.next_delay());
        }
        assert!(seen.len() > 1, "full jitter should vary");
    }

    #[test]
    fn reconnect_policy_matches_contract() {
        let b = Backoff::reconnect();
        assert_eq!(b.ceiling(), Duration::from_millis(250));
        let mut b = b;
        for _ in 0..20 {
            b.next_delay();
        }
        assert_eq!(b.ceiling(), Duration::from_secs(30));
    }

    #[test]
    fn state_round_trip_with_private_mode() {
        let dir = std::env::temp_dir().join(format!(
            "pushdial-sdk-test-{}-{}",
            std::process::id(),
            rand::thread_rng().gen::<u64>()
        ));
        let path = dir.join("nested").join("agent.json");
        let state = AgentState {
            server: "http://127.0.0.1:8080".into(),
            device_id: "dev_123".into(),
            token: "pd_dev_secret".into(),
            agent_id: Some("agt_1".into()),
        };
        state.save(&path).unwrap();
        assert_eq!(AgentState::load(&path).unwrap(), state);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Overwrite keeps working and stays private.
        let other = AgentState {
            agent_id: None,
            ..state.clone()
        };
        other.save(&path).unwrap();
        assert_eq!(AgentState::load(&path).unwrap(), other);
        assert!(!format!("{other:?}").contains("pd_dev_secret"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn state_load_errors_are_typed() {
        let dir = std::env::temp_dir().join(format!("pushdial-sdk-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.json");
        assert!(matches!(AgentState::load(&missing), Err(Error::Io { .. })));
        let bad = dir.join("bad.json");
        std::fs::write(&bad, b"{not json").unwrap();
        assert!(matches!(
            AgentState::load(&bad),
            Err(Error::StateFile { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn state_file_accepts_minimal_shape() {
        let s: AgentState =
            serde_json::from_str(r#"{"server":"http://x","device_id":"dev_1","token":"t"}"#)
                .unwrap();
        assert_eq!(s.agent_id, None);
    }

    #[test]
    fn resolve_path_prefers_explicit() {
        let p = AgentState::resolve_path(Some(Path::new("/tmp/x.json"))).unwrap();
        assert_eq!(p, PathBuf::from("/tmp/x.json"));
    }

    #[test]
    fn seen_ids_dedupe_and_stay_bounded() {
        let mut s = SeenIds::new(3);
        assert!(s.insert("a"));
        assert!(!s.insert("a"));
        assert!(s.insert("b"));
        assert!(s.insert("c"));
        assert!(s.insert("d")); // evicts "a"
        assert_eq!(s.set.len(), 3);
        assert!(s.insert("a"));
        s.remove("d");
        assert!(s.insert("d"));
    }

    #[test]
    fn e164_check() {
        assert!(is_e164("+15551234567"));
        assert!(is_e164("+33612345678"));
        assert!(!is_e164("15551234567"));
        assert!(!is_e164("+0123"));
        assert!(!is_e164("+1555; rm -rf /"));
        assert!(!is_e164("+1234567890123456"));
        assert!(!is_e164("+"));
    }

    #[test]
    fn until_past_is_zero() {
        assert_eq!(
            until(Utc::now() - chrono::Duration::seconds(5)),
            Duration::ZERO
        );
        assert!(until(Utc::now() + chrono::Duration::seconds(5)) > Duration::from_secs(3));
    }

    #[tokio::test]
    async fn dial_command_gets_number_and_reports_exit_status() {
        let client = AgentClient::new("http://127.0.0.1:9", "pd_dev_x").unwrap();
        let mut ctx = OfferCtx {
            client,
            auto: true,
            dial_command: Some(
                r#"test "$1" = "$PUSHDIAL_NUMBER" && test "$1" = "+15551234567""#.into(),
            ),
            call_duration: Duration::ZERO,
            confirm: None,
            prompt: TerminalPrompt::default(),
        };
        let cancel = CancellationToken::new();
        assert_eq!(ctx.dial("+15551234567", "call_1", &cancel).await, Ok(()));
        ctx.dial_command = Some("exit 3".into());
        assert!(ctx.dial("+15551234567", "call_1", &cancel).await.is_err());
        ctx.dial_command = None;
        assert_eq!(ctx.dial("+15551234567", "call_1", &cancel).await, Ok(()));
    }

    #[tokio::test]
    async fn interrupted_dial_stops_the_whole_command() {
        let client = AgentClient::new("http://127.0.0.1:9", "pd_dev_x").unwrap();
        let marker = std::env::temp_dir().join(format!(
            "pushdial-dial-{}-{}",
            std::process::id(),
            rand::thread_rng().gen::<u64>()
        ));
        let ctx = OfferCtx {
            client,
            auto: true,
            // The grandchild `sleep` must die with the group, so the marker never appears.
            dial_command: Some(format!("sleep 2; touch '{}'", marker.display())),
            call_duration: Duration::ZERO,
            confirm: None,
            prompt: TerminalPrompt::default(),
        };
        let cancel = CancellationToken::new();
        let canceler = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            canceler.cancel();
        });
        let started = Instant::now();
        let r = ctx.dial("+15551234567", "call_1", &cancel).await;
        assert_eq!(r, Err("interrupted".to_owned()));
        assert!(started.elapsed() < Duration::from_secs(2));
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(!marker.exists(), "the dial command kept running");
    }
}
