//! `GET /agent/v1/stream`: the WebSocket an agent holds to be reachable at once. On
//! connect the device is marked live in Redis (pointing at this instance) and in Postgres
//! (the fallback); heartbeats refresh both (the fallback in one write per second for all
//! of the instance's sockets); offers published for this instance are
//! forwarded to the socket. A socket silent for a whole presence window is closed, so
//! presence never outlives the connection by more than one window. A socket that opens is
//! sent the offers still pending for its device, and an instance re-asserts its sockets'
//! presence as soon as Redis comes back without it (`keep_presence`).
//! The messages are `pushdial_core::protocol::ToPhone`; a socket the server ends gets a close
//! code saying whether to come back. `openapi/asyncapi.yaml` publishes all of it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use poem::web::websocket::{Message, WebSocket};
use poem::web::Data;
use poem::{handler, IntoResponse, Request, Response};
use pushdial_core::protocol::ToPhone;
use pushdial_core::shutdown::Stop;
use pushdial_core::store::devices as device_store;
use pushdial_core::{devices, Ctx};
use tokio::sync::mpsc;

use crate::problem::Problem;

/// What this instance sends down one socket.
#[derive(Debug)]
pub enum Outgoing {
    /// A message to forward as a text frame.
    Text(String),
    /// Forward this last message, then close (the device was revoked).
    Close(String),
}

/// One socket this instance holds.
struct Held {
    conn_id: u64,
    org_id: String,
    tx: mpsc::Sender<Outgoing>,
}

/// The sockets this instance holds, by device: where messages for a device go.
#[derive(Default)]
pub struct Sockets {
    next: AtomicU64,
    by_device: Mutex<HashMap<String, Held>>,
    touches: std::sync::Arc<Touches>,
    /// Whether `keep_presence` runs for these sockets (started with the first one).
    keeper: std::sync::OnceLock<()>,
}

/// How often an instance checks that Redis still holds what it wrote.
const KEEP_EVERY: Duration = Duration::from_secs(1);

/// How long heartbeats wait to be written to the presence fallback together.
const TOUCH_EVERY: Duration = Duration::from_secs(1);

/// The heartbeats of this instance's sockets, written to the Postgres fallback in one
/// statement per second rather than one transaction each: agents that connected
/// together heartbeat together, and 20,000 sockets would otherwise be ~700 commits a
/// second. Redis, the primary presence, is still written on every heartbeat.
#[derive(Default)]
struct Touches {
    /// Devices whose heartbeat waits for the next write, with their organization; and
    /// whether that write is scheduled.
    pending: Mutex<(HashMap<String, String>, bool)>,
    /// When each device's heartbeat was last written, for the guard of `clear_stream`.
    /// Held while a write is in progress, so that a closing socket reads its outcome.
    written: tokio::sync::Mutex<HashMap<String, chrono::DateTime<chrono::Utc>>>,
}

impl Touches {
    fn touch(self: &std::sync::Arc<Self>, ctx: &Ctx, org_id: &str, device_id: &str) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.0.insert(device_id.to_owned(), org_id.to_owned());
        if !pending.1 {
            pending.1 = true;
            let (touches, ctx) = (self.clone(), ctx.clone());
            tokio::spawn(async move {
                tokio::time::sleep(TOUCH_EVERY).await;
                touches.write(&ctx).await;
            });
        }
    }

    async fn write(&self, ctx: &Ctx) {
        let mut written = self.written.lock().await;
        let batch: Vec<(String, String)> = {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            pending.1 = false;
            std::mem::take(&mut pending.0).into_iter().collect()
        };
        if batch.is_empty() {
            return;
        }
        let result = match ctx.db.acquire().await {
            Ok(mut conn) => device_store::touch_streams(&mut conn, &batch).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(rows) => written.extend(rows),
            Err(e) => {
                tracing::warn!(devices = batch.len(), error = %e, "presence fallback not written");
            }
        }
    }

    /// A closing socket's device: no more writes for it; when it was last written.
    async fn forget(&self, device_id: &str) -> Option<chrono::DateTime<chrono::Utc>> {
        let mut written = self.written.lock().await;
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.0.remove(device_id);
        written.remove(device_id)
    }
}

impl Sockets {
    fn register(&self, org_id: &str, device_id: &str) -> (u64, mpsc::Receiver<Outgoing>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(64);
        // A newer socket of the same device replaces the old one, whose sender is dropped;
        // the old connection notices and closes.
        let held = Held {
            conn_id: id,
            org_id: org_id.to_owned(),
            tx,
        };
        self.lock().insert(device_id.to_owned(), held);
        (id, rx)
    }

    fn unregister(&self, device_id: &str, conn_id: u64) {
        let mut map = self.lock();
        if map.get(device_id).is_some_and(|h| h.conn_id == conn_id) {
            map.remove(device_id);
        }
    }

    /// Queues a message for a device's socket on this instance; `false` if none.
    pub fn send(&self, device_id: &str, message: Outgoing) -> bool {
        let sender = self.lock().get(device_id).map(|h| h.tx.clone());
        match sender {
            Some(tx) => tx.try_send(message).is_ok(),
            None => false,
        }
    }

    /// Whether this instance holds no socket any more.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// The devices whose sockets this instance holds, with their organizations.
    fn held(&self) -> Vec<(String, String)> {
        self.lock()
            .iter()
            .map(|(device, h)| (device.clone(), h.org_id.clone()))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
        self.by_device.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts `keep_presence` for this instance's sockets, once.
    fn keep(self: &std::sync::Arc<Self>, ctx: &Ctx, stop: &Stop) {
        self.keeper.get_or_init(|| {
            tokio::spawn(keep_presence(ctx.clone(), self.clone(), stop.clone()));
        });
    }
}

/// Keeps Redis holding the presence of this instance's sockets. Presence keys live only in
/// Redis, rewritten by heartbeats every third of a window: a Redis that restarts empty, fails
/// over or is flushed would leave connected phones unknown until their next heartbeat, and
/// offers published meanwhile would reach no one. Every second this refreshes a marker of
/// the instance; when the marker is gone (Redis lost what we wrote) or Redis did not
/// answer, it writes every socket's presence again at once and sends each socket the offers
/// still pending for it (from PostgreSQL; phones ignore duplicates). While Redis does not
/// answer, offers cannot come through it: pending offers are sent from PostgreSQL each
/// second instead, each once.
async fn keep_presence(ctx: Ctx, sockets: std::sync::Arc<Sockets>, stop: Stop) {
    let m = &*pushdial_core::metrics::METRICS;
    // The first marker is missing by nature: the sockets just wrote their own presence.
    let mut first = true;
    // While Redis does not answer: the offers already sent from PostgreSQL.
    let mut outage: Option<std::collections::HashSet<String>> = None;
    loop {
        tokio::select! {
            _ = stop.wait() => return,
            _ = tokio::time::sleep(KEEP_EVERY) => {}
        }
        match ctx.presence.keep_instance_marker(&ctx.instance_id).await {
            Ok(kept) => {
                let returned = outage.take().is_some();
                let lost = !kept && !std::mem::take(&mut first);
                if !(returned || lost) {
                    continue;
                }
                let held = sockets.held();
                if held.is_empty() {
                    continue;
                }
                let ids: Vec<String> = held.iter().map(|(d, _)| d.clone()).collect();
                match ctx.presence.mark_all_live(&ids, &ctx.instance_id).await {
                    Ok(()) => {
                        tracing::info!(
                            sockets = ids.len(),
                            returned,
                            lost,
                            "presence re-asserted in Redis"
                        );
                        m.presence_reasserted
                            .with_label_values(&["redis_returned"])
                            .inc_by(ids.len() as u64);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "presence not re-asserted; retrying");
                        outage = Some(Default::default());
                        continue;
                    }
                }
                resend_pending(&ctx, &sockets, &held, "redis_returned", None).await;
            }
            Err(e) => {
                first = false;
                let sent = outage.get_or_insert_with(|| {
                    tracing::warn!(error = %e, "Redis unavailable: offers to this instance's sockets come from PostgreSQL");
                    Default::default()
                });
                let held = sockets.held();
                if !held.is_empty() {
                    resend_pending(&ctx, &sockets, &held, "redis_down", Some(sent)).await;
                }
            }
        }
    }
}

/// Sends the offers pending for `devices` to their sockets here; with `once`, only those
/// not in it (and records them).
async fn resend_pending(
    ctx: &Ctx,
    sockets: &Sockets,
    devices: &[(String, String)],
    reason: &str,
    mut once: Option<&mut std::collections::HashSet<String>>,
) {
    let pending = match ctx.db.acquire().await {
        Ok(mut conn) => device_store::pending_offers(&mut conn, devices).await,
        Err(e) => Err(e),
    };
    let pending = match pending {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "pending offers not read; the workers' retries deliver them");
            return;
        }
    };
    let mut sent = 0u64;
    for offer in pending {
        if let Some(once) = once.as_deref_mut() {
            if !once.insert(offer.call_id.clone()) {
                continue;
            }
        }
        if sockets.send(&offer.device_id, Outgoing::Text(offer_message(&offer))) {
            sent += 1;
        }
    }
    if sent > 0 {
        tracing::info!(offers = sent, reason, "pending offers sent again");
        pushdial_core::metrics::METRICS
            .offers_resent
            .with_label_values(&[reason])
            .inc_by(sent);
    }
}

/// The `call.offer` message of a pending offer, as every other sender writes it.
fn offer_message(offer: &device_store::PendingOffer) -> String {
    ToPhone::offer(&offer.call_id, offer.expires_at).to_text()
}

/// Close codes the server ends a socket with (`openapi/asyncapi.yaml` describes each): the
/// server is shutting down — reconnect at once, to another replica…
const CLOSE_RESTART: (u16, &str) = (1012, "reconnect");
/// …no frame arrived for a whole presence window — reconnect with backoff…
const CLOSE_SILENT: (u16, &str) = (4000, "heartbeat_missed");
/// …the device was revoked — do not reconnect: its token is refused from now on…
const CLOSE_REVOKED: (u16, &str) = (4001, "device_revoked");
/// …a newer socket with the same device token took over — this one should not come back.
const CLOSE_REPLACED: (u16, &str) = (4002, "replaced");

/// Buffers sized for many quiet sockets: agents exchange a few small messages a minute,
/// and the library's defaults (128 KiB to read and 128 KiB to write, per socket) would make
/// 20,000 agents cost several GiB. Messages above 64 KiB are refused.
fn socket_config() -> poem::web::websocket::WebSocketConfig {
    poem::web::websocket::WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_message_size(Some(64 * 1024))
        .max_frame_size(Some(64 * 1024))
}

/// The WebSocket handshake: authenticates the device token before upgrading.
#[handler]
pub async fn stream(
    req: &Request,
    ws: Option<WebSocket>,
    ctx: Data<&Ctx>,
    sockets: Data<&std::sync::Arc<Sockets>>,
    stop: Data<&Stop>,
) -> Response {
    let token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let Some(token) = token else {
        return Problem::new(
            401,
            "missing_credentials",
            "send `Authorization: Bearer pd_dev_…`",
        )
        .into_poem();
    };
    let device = match crate::auth::device_from_token(&ctx, token).await {
        Ok(d) => d,
        Err(e) => return Problem::from_core(&e).into_poem(),
    };
    let Some(ws) = ws else {
        return Problem::new(
            400,
            "websocket_required",
            "this endpoint speaks WebSocket only",
        )
        .into_poem();
    };
    let ctx = (*ctx).clone();
    let sockets = (*sockets).clone();
    let stop = (*stop).clone();
    ws.config(socket_config())
        .on_upgrade(move |socket| async move {
            serve_socket(ctx, sockets, stop, device.org_id, device.id, socket).await;
        })
        .into_response()
}

async fn serve_socket(
    ctx: Ctx,
    sockets: std::sync::Arc<Sockets>,
    stop: Stop,
    org_id: String,
    device_id: String,
    socket: poem::web::websocket::WebSocketStream,
) {
    let (mut sink, mut source) = socket.split();
    let (conn_id, mut outbox) = sockets.register(&org_id, &device_id);
    sockets.keep(&ctx, &stop);
    pushdial_core::metrics::METRICS.agent_sockets.inc();
    let heartbeat = ctx.config.heartbeat_interval();
    let window = ctx.config.presence_window;
    let was_reachable = devices::is_reachable(&ctx, &org_id, &device_id)
        .await
        .unwrap_or(true);
    // When this socket wrote the Postgres fallback on connecting (its heartbeats' writes
    // are kept by `Touches`); a newer socket's write is later.
    let written = refresh(&ctx, &org_id, &device_id).await;
    announce(&ctx, &org_id, &device_id, was_reachable).await;
    tracing::info!(device_id = %device_id, "agent connected");

    let hello = ToPhone::Hello {
        device_id: device_id.clone(),
        heartbeat_interval_s: heartbeat.as_secs_f64().ceil().max(1.0) as u64,
    };
    let mut alive = sink.send(Message::Text(hello.to_text())).await.is_ok();
    // Offers made while the phone was away (its api died, its socket dropped, Redis was
    // down) are sent again now, on whichever api it reconnected to: nothing else would.
    if alive {
        alive = send_pending(&ctx, &org_id, &device_id, &mut sink).await;
    }
    let mut last_heard = Instant::now();
    let mut last_refresh = Instant::now();
    let mut check = tokio::time::interval(heartbeat.min(Duration::from_secs(5)));
    // Why the server ends the socket, said in its close frame so that the phone knows
    // whether to come back (the AsyncAPI document lists these codes).
    let mut close = None;
    while alive {
        tokio::select! {
            incoming = source.next() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {
                    // Any frame (heartbeat, ping, pong) shows the device is there.
                    last_heard = Instant::now();
                    if last_refresh.elapsed() >= heartbeat / 2 {
                        if let Err(e) = ctx.presence.mark_live(&device_id, &ctx.instance_id).await {
                            tracing::warn!(device_id = %device_id, error = %e, "presence not written to Redis");
                        }
                        sockets.touches.touch(&ctx, &org_id, &device_id);
                        last_refresh = Instant::now();
                    }
                }
            },
            outgoing = outbox.recv() => match outgoing {
                Some(Outgoing::Text(text)) => {
                    alive = sink.send(Message::Text(text)).await.is_ok();
                }
                Some(Outgoing::Close(text)) => {
                    let _ = sink.send(Message::Text(text)).await;
                    close = Some(CLOSE_REVOKED);
                    break;
                }
                // Replaced by a newer socket of the same device.
                None => {
                    close = Some(CLOSE_REPLACED);
                    break;
                }
            },
            _ = check.tick() => {
                if last_heard.elapsed() > window {
                    tracing::info!(device_id = %device_id, "agent silent for a presence window; closing");
                    close = Some(CLOSE_SILENT);
                    break;
                }
            }
            _ = stop.wait() => {
                // Shutting down: tell the agent to come back (to another replica).
                let _ = sink.send(Message::Text(ToPhone::Reconnect.to_text())).await;
                close = Some(CLOSE_RESTART);
                break;
            }
        }
    }
    if let Some((code, reason)) = close {
        let _ = sink
            .send(Message::Close(Some((code.into(), reason.to_owned()))))
            .await;
    }
    let _ = sink.close().await;
    sockets.unregister(&device_id, conn_id);
    pushdial_core::metrics::METRICS.agent_sockets.dec();
    // Only forget presence if no newer socket of this device took over on this instance.
    if !sockets_has(&sockets, &device_id) {
        // The latest of this socket's writes: its heartbeats', else its connection's.
        let written = sockets.touches.forget(&device_id).await.or(written);
        if let Err(e) = ctx.presence.clear(&device_id, &ctx.instance_id).await {
            tracing::warn!(device_id = %device_id, error = %e, "presence not cleared in Redis");
        }
        if let (Ok(mut conn), Some(written)) = (ctx.db.acquire().await, written) {
            if let Err(e) =
                device_store::clear_stream(&mut conn, &org_id, &device_id, written).await
            {
                tracing::warn!(device_id = %device_id, error = %e, "presence fallback not cleared");
            }
        }
    }
    announce(&ctx, &org_id, &device_id, true).await;
    tracing::info!(device_id = %device_id, "agent disconnected");
}

/// Sends a newly connected device the offers still pending for it; `false` if the socket
/// failed meanwhile.
async fn send_pending(
    ctx: &Ctx,
    org_id: &str,
    device_id: &str,
    sink: &mut (impl futures::Sink<Message> + Unpin),
) -> bool {
    let device = [(device_id.to_owned(), org_id.to_owned())];
    let pending = match ctx.db.acquire().await {
        Ok(mut conn) => device_store::pending_offers(&mut conn, &device).await,
        Err(e) => Err(e),
    };
    let pending = match pending {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(device_id, error = %e, "pending offers not read; the workers' retries deliver them");
            return true;
        }
    };
    for offer in &pending {
        if sink
            .send(Message::Text(offer_message(offer)))
            .await
            .is_err()
        {
            return false;
        }
        pushdial_core::metrics::METRICS
            .offers_resent
            .with_label_values(&["socket_opened"])
            .inc();
        tracing::info!(device_id, call_id = %offer.call_id, "pending offer sent again on a new socket");
    }
    true
}

/// Tells the tenant when the device's reachability flipped (best effort: logged on failure).
async fn announce(ctx: &Ctx, org_id: &str, device_id: &str, was: bool) {
    if let Err(e) = devices::announce_if_changed(ctx, org_id, device_id, was).await {
        tracing::warn!(device_id, error = %e, "reachability event not recorded");
    }
}

fn sockets_has(sockets: &Sockets, device_id: &str) -> bool {
    sockets.lock().contains_key(device_id)
}

/// Marks a newly connected device live, in Redis and in Postgres at once (so that it is
/// reachable before its first heartbeat); returns the time written to Postgres.
async fn refresh(
    ctx: &Ctx,
    org_id: &str,
    device_id: &str,
) -> Option<chrono::DateTime<chrono::Utc>> {
    if let Err(e) = ctx.presence.mark_live(device_id, &ctx.instance_id).await {
        tracing::warn!(device_id, error = %e, "presence not written to Redis");
    }
    let written = match ctx.db.acquire().await {
        Ok(mut conn) => {
            let device = [(device_id.to_owned(), org_id.to_owned())];
            device_store::touch_streams(&mut conn, &device)
                .await
                .map(|written| written.into_iter().next().map(|(_, at)| at))
        }
        Err(e) => Err(e),
    };
    match written {
        Ok(at) => at,
        Err(e) => {
            tracing::warn!(device_id, error = %e, "presence fallback not written");
            None
        }
    }
}
