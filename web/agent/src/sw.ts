/// <reference lib="webworker" />
/**
 * The web agent's service worker (`/agent/sw.js`, scope `/agent/`).
 *
 * - `push`: a `call.offer` {call_id, expires_at}. The offer is acknowledged at once (the
 *   ack is the delivery receipt the server waits for before offering another phone, and it
 *   returns the number), then a notification asks the person: Call / Decline. Open
 *   `/agent/` windows are told too, so the page can show the offer itself.
 * - `notificationclick`: decline, or accept + dialing and open `/agent/?dial=…&call=…`,
 *   the page that opens the dialer (`tel:`) — never after the call's `expires_at`.
 * - `fetch`: the app shell (never the API) from the network, falling back to a cache, so
 *   the installed app opens offline.
 */
import { call as apiCall, expired, keyBytes } from "./shared/api";
import { acknowledge, answer, Outcome, pruneCalls } from "./shared/flow";
import { device, kv } from "./shared/idb";

declare const self: ServiceWorkerGlobalScope;
declare const __VERSION__: string;
declare const __PRECACHE__: string[];

const CACHE = "pushdial-agent-" + __VERSION__;
const ICON = "/agent/icons/icon-192.png";
const BADGE = "/agent/icons/badge-72.png";

interface Offer {
  type: "call.offer";
  call_id: string;
  expires_at?: string;
}

/** `waitUntil` where the event allows it (a test's synthetic event does not). */
function keepAlive(event: ExtendableEvent, work: Promise<unknown>): void {
  try {
    event.waitUntil(work);
  } catch {
    /* untrusted event: the work still runs */
  }
}

self.addEventListener("install", (event) => {
  keepAlive(
    event,
    caches
      .open(CACHE)
      .then((c) => c.addAll(__PRECACHE__))
      .catch(() => undefined)
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  keepAlive(
    event,
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((k) => k.startsWith("pushdial-agent-") && k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const req = event.request;
  const url = new URL(req.url);
  if (req.method !== "GET" || url.origin !== self.location.origin) return;
  if (!url.pathname.startsWith("/agent/") || url.pathname.startsWith("/agent/v1/")) return;
  if (url.pathname.startsWith("/agent/assets/")) {
    // Hashed names: a cached copy is the right one.
    event.respondWith(caches.match(req).then((hit) => hit || fetch(req)));
    return;
  }
  event.respondWith(
    fetch(req)
      .then((res) => {
        if (res.ok && req.mode === "navigate" && url.search === "") {
          const copy = res.clone();
          void caches.open(CACHE).then((c) => c.put("/agent/", copy));
        }
        return res;
      })
      .catch(async () => (await caches.match(req.mode === "navigate" ? "/agent/" : req)) || Response.error()),
  );
});

/** The open windows of the app (controlled or not yet). */
async function appWindows(): Promise<WindowClient[]> {
  const all = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
  return all.filter((c) => new URL(c.url).pathname.startsWith("/agent/"));
}

async function tellWindows(message: unknown): Promise<void> {
  for (const w of await appWindows()) w.postMessage(message);
}

async function notify(title: string, options: NotificationOptions & Record<string, unknown>): Promise<void> {
  await self.registration.showNotification(title, { icon: ICON, badge: BADGE, ...options });
}

async function onOffer(offer: Offer): Promise<void> {
  const id = offer.call_id;
  const dev = await device().catch(() => undefined);
  if (!dev) return;
  if (offer.expires_at && expired(offer.expires_at)) {
    await notify("Missed call request", { body: "It expired before it reached this phone.", tag: id });
    return;
  }
  // Acknowledge now: it tells the server this phone has the offer.
  const acked = await acknowledge(dev.token, id);
  let to: string | undefined;
  let expiresAt = offer.expires_at;
  if (acked.ok) {
    to = acked.call.to;
    expiresAt = acked.call.expires_at;
  } else if (acked.outcome.kind === "gone" || acked.outcome.code === "unpaired") {
    await notify("Call request no longer available", { body: acked.outcome.message, tag: id });
    await tellWindows({ type: "call.gone", call_id: id, message: acked.outcome.message });
    return;
  }
  // Not acknowledged (network): still ask; tapping retries the ack.
  await notify("Incoming call request", {
    body: to ? "Tap to call " + to : "Tap to call",
    tag: id,
    renotify: true,
    requireInteraction: true,
    data: { call_id: id, expires_at: expiresAt },
    actions: [
      { action: "call", title: "Call" },
      { action: "decline", title: "Decline" },
    ],
  });
  await tellWindows({ type: "call.offer", call_id: id, expires_at: expiresAt, to });
}

self.addEventListener("push", (event) => {
  let offer: Offer | undefined;
  try {
    offer = event.data ? (event.data.json() as Offer) : undefined;
  } catch {
    offer = undefined;
  }
  if (!offer || offer.type !== "call.offer" || typeof offer.call_id !== "string") return;
  keepAlive(event, onOffer(offer).catch(() => undefined));
});

/** Opens the dial page; where a window may not be opened, turns an app window into it. */
async function openDialer(url: string): Promise<void> {
  try {
    const win = await self.clients.openWindow(url);
    if (win) return;
  } catch {
    /* not allowed here */
  }
  const [first] = await appWindows();
  if (first) {
    await first.focus().catch(() => undefined);
    await first.navigate(url).catch(() => first.postMessage({ type: "dial", url }));
  }
}

async function onClick(callId: string, action: string, expiresAt?: string): Promise<Outcome> {
  await closeNotification(callId);
  const decision = action === "decline" ? "decline" : "call";
  const outcome = await answer(callId, decision, expiresAt);
  await tellWindows({ type: "call.handled", call_id: callId, outcome: outcome.kind });
  if (outcome.kind === "dial") {
    await openDialer("/agent/?dial=" + encodeURIComponent(outcome.call.to) + "&call=" + encodeURIComponent(callId));
  } else if (outcome.kind === "gone" || outcome.kind === "error") {
    await notify("Call request not placed", { body: outcome.message, tag: callId });
  }
  return outcome;
}

async function closeNotification(callId: string): Promise<void> {
  const shown = await self.registration.getNotifications({ tag: callId });
  shown.forEach((n) => n.close());
}

self.addEventListener("notificationclick", (event) => {
  const n = event.notification;
  n.close();
  const data = (n.data || {}) as { call_id?: string; expires_at?: string };
  if (!data.call_id) {
    keepAlive(event, appWindows().then((ws) => (ws[0] ? ws[0].focus() : self.clients.openWindow("/agent/"))));
    return;
  }
  keepAlive(event, onClick(data.call_id, event.action, data.expires_at).catch(() => undefined));
});

self.addEventListener("message", (event) => {
  const msg = event.data as { type?: string; call_id?: string };
  // The page answered an offer itself: the notification has nothing left to ask.
  if (msg && msg.type === "call.handled" && msg.call_id) keepAlive(event, closeNotification(msg.call_id));
});

/** The browser replaced the subscription (expired or rotated): register the new one. */
self.addEventListener("pushsubscriptionchange", (event) => {
  const e = event as Event & { oldSubscription?: PushSubscription; newSubscription?: PushSubscription };
  keepAlive(
    e as ExtendableEvent,
    (async () => {
      const dev = await device();
      if (!dev) return;
      let sub = e.newSubscription || (await self.registration.pushManager.getSubscription());
      if (!sub) {
        const cfg = await apiCall<{ webpush_public_key?: string | null }>("GET", "/agent/v1/push_config", { token: dev.token });
        if (!cfg.ok || !cfg.data.webpush_public_key) return;
        sub = await self.registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(cfg.data.webpush_public_key) });
      }
      const put = await apiCall("PUT", "/agent/v1/device", {
        token: dev.token,
        body: { push: { provider: "webpush", token: sub.toJSON() }, capabilities: ["tel_link"] },
      });
      if (put.ok) await kv.set("push", { endpoint: sub.endpoint, at: new Date().toISOString() });
    })().catch(() => undefined),
  );
});

// Hooks for browser tests, which cannot tap a real notification or push service:
// `await self.pushdial.offer({type: "call.offer", call_id, expires_at})` and
// `await self.pushdial.click(call_id, "call" | "decline")` run the same code as the events.
(self as unknown as { pushdial: unknown }).pushdial = {
  offer: (o: Offer) => onOffer(o),
  click: (id: string, action: string) => onClick(id, action),
};

void pruneCalls().catch(() => undefined);
