//! The agent's main loop: one stream session at a time (heartbeats, server
//! messages, reconnecting with backoff), or the push-woken loop without a socket;
//! each offer handed to its own task, duplicates ignored, shutdown drained.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn, Instrument};

use crate::client::AgentClient;
use crate::error::{Error, Result};
use crate::stream::{ServerMessage, Stream, DEFAULT_HEARTBEAT_INTERVAL_S};

use super::backoff::{after_refusal, jitter, millis, Backoff};
use super::offer::{handle_offer, OfferCtx, OfferDone};
use super::options::RunOptions;
use super::prompt::TerminalPrompt;

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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

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
}
