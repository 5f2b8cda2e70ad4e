/**
 * The web agent's page (`/agent/`): pairs this browser as an agent's phone, registers it
 * for Web Push, shows offers that arrive while it is open, and opens the dialer
 * (`/agent/?dial=…&call=…`, opened by the service worker when a notification is tapped).
 */
import { call, Device, expired, keyBytes, PairResponse } from "./shared/api";
import { answer, markDialed } from "./shared/flow";
import { callRecord, device, DeviceRecord, kv } from "./shared/idb";

declare const __VERSION__: string;

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const E164 = /^\+[1-9]\d{3,14}$/;

type PushState = "pending" | "enabled" | "prompt" | "blocked" | "unsupported" | "unavailable" | "error";

function show(view: "pair" | "home" | "dial"): void {
  for (const v of ["pair", "home", "dial"]) $("view-" + v).hidden = v !== view;
}

// ---------------------------------------------------------------------------------------
// Pairing

/** "Chrome on Android", "Safari on iPhone"…: a default name for the device. */
export function guessName(ua = navigator.userAgent): string {
  const browser = /Edg\//.test(ua)
    ? "Edge"
    : /OPR\//.test(ua)
      ? "Opera"
      : /SamsungBrowser/.test(ua)
        ? "Samsung Internet"
        : /Firefox\/|FxiOS/.test(ua)
          ? "Firefox"
          : /Chrome\/|CriOS/.test(ua)
            ? "Chrome"
            : /Safari\//.test(ua)
              ? "Safari"
              : "Browser";
  const os = /iPhone/.test(ua)
    ? "iPhone"
    : /iPad/.test(ua) || (/Macintosh/.test(ua) && navigator.maxTouchPoints > 1)
      ? "iPad"
      : /Android/.test(ua)
        ? "Android"
        : /Windows/.test(ua)
          ? "Windows"
          : /Mac OS X|Macintosh/.test(ua)
            ? "Mac"
            : /CrOS/.test(ua)
              ? "ChromeOS"
              : /Linux/.test(ua)
                ? "Linux"
                : "";
  return os ? `${browser} on ${os}` : browser;
}

/**
 * The code from what was typed: the bare code, the QR code's token (`pd_pair_…`), a
 * `pushdial://pair?server=…&token=…` (or `&code=…`) link, or an `https://…/agent/?token=…`
 * (or `?code=…`) link. `server`, when given, must be this origin. A token is returned as
 * `code` too: `pairBody` tells them apart.
 */
export function parseCode(input: string): { code: string; server?: string } | { error: string } {
  const text = input.trim();
  if (!text) return { error: "Enter the pairing code." };
  if (/^[a-z][a-z0-9+.-]*:/i.test(text)) {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      return { error: "That link is not a pairing link." };
    }
    const code = url.searchParams.get("token") || url.searchParams.get("code");
    if (!code) return { error: "That link has no pairing code." };
    const server = url.protocol === "pushdial:" ? url.searchParams.get("server") || undefined : url.origin;
    if (server) {
      let origin: string;
      try {
        origin = new URL(server).origin;
      } catch {
        return { error: "That link names no valid server." };
      }
      if (origin !== location.origin) return { code: code.trim(), server: origin };
    }
    return { code: code.trim() };
  }
  return { code: text.replace(/\s+/g, "") };
}

/** The QR code's one-time token goes as `token`, a typed code as `code`. */
export function pairBody(secret: string): { code: string } | { token: string } {
  return /^pd_pair_[0-9a-f]{64}$/i.test(secret) ? { token: secret.toLowerCase() } : { code: secret };
}

function showPair(message?: string): void {
  show("pair");
  const params = new URLSearchParams(location.search);
  const code = $<HTMLInputElement>("pair-code");
  const fromUrl = params.get("token") || params.get("code") || params.get("pair_uri");
  if (fromUrl) {
    if (!code.value) {
      const parsed = parseCode(fromUrl);
      code.value = "code" in parsed ? parsed.code : fromUrl;
    }
    // The secret now lives in the input (kept there for a retry): take it out of the
    // address bar and the history at once, not only once pairing succeeds.
    history.replaceState(null, "", "/agent/");
  }
  const name = $<HTMLInputElement>("pair-name");
  if (!name.value) name.value = guessName();
  $("pair-error").textContent = message || "";
  (code.value ? $("pair-submit") : code).focus();
}

async function pair(event: Event): Promise<void> {
  event.preventDefault();
  const codeInput = $<HTMLInputElement>("pair-code");
  const nameInput = $<HTMLInputElement>("pair-name");
  const error = $("pair-error");
  const submit = $<HTMLButtonElement>("pair-submit");
  const fail = (msg: string, input: HTMLInputElement = codeInput) => {
    error.textContent = msg;
    input.setAttribute("aria-invalid", "true");
    input.focus();
  };
  codeInput.removeAttribute("aria-invalid");
  nameInput.removeAttribute("aria-invalid");
  error.textContent = "";
  const parsed = parseCode(codeInput.value);
  if ("error" in parsed) return fail(parsed.error);
  if (parsed.server) {
    return fail(`This code is for another server (${parsed.server}). Open ${parsed.server}/agent/ on this phone to pair there.`);
  }
  const name = nameInput.value.trim() || guessName();
  if (name.length > 100) return fail("The name is too long (100 characters at most).", nameInput);

  submit.disabled = true;
  submit.textContent = "Pairing…";
  const res = await call<PairResponse>("POST", "/agent/v1/pair", { body: { ...pairBody(parsed.code), name, platform: "web" } });
  submit.disabled = false;
  submit.textContent = "Pair this phone";
  if (!res.ok) {
    const p = res.problem;
    if (p.status === 404) return fail("This code is not valid or has expired. Create a new one in the console.");
    if (p.status === 429) return fail("Too many attempts. Wait a minute and try again, or scan the QR code.");
    if (p.status === 503) return fail("Pairing is unavailable for a moment. Try again in a few seconds.");
    return fail(p.detail);
  }
  const record: DeviceRecord = {
    token: res.data.token,
    device_id: res.data.id,
    agent_id: res.data.agent_id,
    name,
    paired_at: new Date().toISOString(),
  };
  await kv.set("device", record);
  history.replaceState(null, "", "/agent/");
  showHome(record);
  // Still inside the tap on "Pair": the best moment to ask for notifications.
  void setupPush(record, true);
}

// ---------------------------------------------------------------------------------------
// Home: status and push

let current: DeviceRecord | undefined;

function showHome(dev: DeviceRecord): void {
  current = dev;
  show("home");
  $("paired-status").textContent = `Paired as “${dev.name}” (agent ${dev.agent_id}).`;
  $("paired-status").dataset.deviceId = dev.device_id;
  $("paired-status").dataset.agentId = dev.agent_id;
  ($("ios-help") as HTMLDetailsElement).open = isIos() && !isStandalone();
  $("main").focus();
}

const isIos = () => /iPhone|iPad|iPod/.test(navigator.userAgent) || (/Macintosh/.test(navigator.userAgent) && navigator.maxTouchPoints > 1);
const isStandalone = () =>
  matchMedia("(display-mode: standalone)").matches || (navigator as Navigator & { standalone?: boolean }).standalone === true;

function setPush(state: PushState, text: string): void {
  const el = $("push-status");
  el.dataset.state = state;
  el.textContent = text;
  const button = $<HTMLButtonElement>("push-enable");
  button.hidden = !(state === "prompt" || state === "error");
  button.textContent = state === "error" ? "Try again" : "Turn on notifications";
}

function pushSupported(): boolean {
  return "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;
}

/** The device token stopped working (revoked): forget it and pair again. */
async function unpaired(): Promise<void> {
  await forget();
  showPair("This phone was unpaired. Pair it again with a new code.");
}

async function forget(): Promise<void> {
  current = undefined;
  try {
    const reg = await navigator.serviceWorker?.getRegistration("/agent/");
    const sub = await reg?.pushManager.getSubscription();
    await sub?.unsubscribe();
  } catch {
    /* nothing to undo */
  }
  await kv.clear();
}

function sameKey(sub: PushSubscription, key: Uint8Array): boolean {
  const have = sub.options && sub.options.applicationServerKey;
  if (!have) return true;
  const a = new Uint8Array(have);
  return a.length === key.length && a.every((b, i) => b === key[i]);
}

/**
 * Subscribes to Web Push and registers the subscription with the server. Asks for the
 * permission only when `interactive` (a tap), since browsers refuse or hide prompts
 * that come from nowhere.
 */
async function setupPush(dev: DeviceRecord, interactive: boolean): Promise<void> {
  if (!pushSupported()) {
    return setPush(
      "unsupported",
      isIos() && !isStandalone()
        ? "To get call requests on iPhone or iPad, add this app to the Home Screen first (iOS 16.4+): see below."
        : "This browser cannot receive push notifications; call requests reach this phone only while this page is open.",
    );
  }
  let permission = Notification.permission;
  if (permission === "denied") {
    return setPush("blocked", "Notifications are blocked for this site. Allow them in the browser's site settings, then reload.");
  }
  if (permission === "default" && !interactive) {
    return setPush("prompt", "Notifications are off: turn them on to receive call requests.");
  }
  setPush("pending", "Turning on notifications…");
  const cfg = await call<{ webpush_public_key?: string | null }>("GET", "/agent/v1/push_config", { token: dev.token });
  if (!cfg.ok) {
    if (cfg.status === 401) return unpaired();
    return setPush("error", "Could not read the push settings: " + cfg.problem.detail);
  }
  const publicKey = cfg.data.webpush_public_key;
  if (!publicKey) {
    return setPush("unavailable", "This server has no Web Push key configured, so notifications cannot be sent. Ask your administrator.");
  }
  if (permission === "default") {
    setPush("pending", "Allow notifications when your browser asks.");
    permission = await Notification.requestPermission();
    if (permission === "denied") {
      return setPush("blocked", "Notifications are blocked for this site. Allow them in the browser's site settings, then reload.");
    }
    if (permission !== "granted") return setPush("prompt", "Notifications are off: turn them on to receive call requests.");
  }
  let sub: PushSubscription;
  try {
    const reg = await swReady();
    const key = keyBytes(publicKey);
    let existing = await reg.pushManager.getSubscription();
    if (existing && !sameKey(existing, key)) {
      await existing.unsubscribe();
      existing = null;
    }
    sub = existing || (await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key }));
  } catch (e) {
    return setPush("error", "Could not subscribe to notifications: " + ((e as Error).message || String(e)));
  }
  const put = await call<Device>("PUT", "/agent/v1/device", {
    token: dev.token,
    body: {
      push: { provider: "webpush", token: sub.toJSON() },
      capabilities: ["tel_link"],
      app_version: "web-" + __VERSION__,
    },
  });
  if (!put.ok) {
    if (put.status === 401) return unpaired();
    return setPush("error", "Could not register for notifications: " + put.problem.detail);
  }
  await kv.set("push", { endpoint: sub.endpoint, at: new Date().toISOString() });
  setPush("enabled", "Notifications are on: call requests reach this phone even when this page is closed.");
}

let registration: Promise<ServiceWorkerRegistration> | undefined;

function swReady(): Promise<ServiceWorkerRegistration> {
  if (!registration) return Promise.reject(new Error("no service worker"));
  return Promise.race([
    registration.then(() => navigator.serviceWorker.ready),
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error("the service worker did not start")), 10000)),
  ]);
}

// ---------------------------------------------------------------------------------------
// Offers shown in the page

interface OfferMessage {
  type: string;
  call_id: string;
  expires_at?: string;
  to?: string;
  message?: string;
}

let offer: OfferMessage | undefined;
let offerTimer: number | undefined;

function showOffer(o: OfferMessage): void {
  if (o.expires_at && expired(o.expires_at)) return;
  offer = o;
  const box = $("offer");
  box.dataset.callId = o.call_id;
  box.hidden = false;
  $("offer-number").textContent = o.to || "Number shown when you call";
  $("offer-status").textContent = "";
  $<HTMLButtonElement>("offer-call").disabled = false;
  $<HTMLButtonElement>("offer-decline").disabled = false;
  window.clearInterval(offerTimer);
  const tick = () => {
    if (!offer || offer.call_id !== o.call_id) return;
    if (!o.expires_at) return ($("offer-expiry").textContent = "");
    const left = Math.ceil((Date.parse(o.expires_at) - Date.now()) / 1000);
    if (left <= 0) return endOffer(o.call_id, "The call request expired.");
    $("offer-expiry").textContent = `Expires in ${left} s`;
  };
  tick();
  offerTimer = window.setInterval(tick, 1000);
  $("offer-call").focus();
}

function endOffer(callId: string, message?: string): void {
  if (!offer || offer.call_id !== callId) return;
  offer = undefined;
  window.clearInterval(offerTimer);
  $("offer").hidden = true;
  $("offer").removeAttribute("data-call-id");
  if (message) $("last-event").textContent = message;
}

async function answerOffer(decision: "call" | "decline"): Promise<void> {
  const o = offer;
  if (!o) return;
  const callBtn = $<HTMLButtonElement>("offer-call");
  const declineBtn = $<HTMLButtonElement>("offer-decline");
  callBtn.disabled = declineBtn.disabled = true;
  $("offer-status").textContent = decision === "call" ? "Opening the dialer…" : "Declining…";
  const outcome = await answer(o.call_id, decision, o.expires_at);
  navigator.serviceWorker?.controller?.postMessage({ type: "call.handled", call_id: o.call_id });
  void closeNotification(o.call_id);
  if (outcome.kind === "dial") {
    endOffer(o.call_id, `Called ${outcome.call.to}.`);
    await markDialed(o.call_id).catch(() => undefined);
    showDialLink(outcome.call.to, "Your phone's dialer should open now.");
    location.href = "tel:" + outcome.call.to;
  } else if (outcome.kind === "declined") {
    endOffer(o.call_id, "You declined the call request.");
  } else if (outcome.kind === "gone") {
    endOffer(o.call_id, outcome.message);
  } else if (outcome.code === "unpaired") {
    await unpaired();
  } else {
    // A network failure: nothing was dialled; the person may try again.
    $("offer-status").textContent = outcome.message + " Try again.";
    callBtn.disabled = declineBtn.disabled = false;
  }
}

async function closeNotification(callId: string): Promise<void> {
  try {
    const reg = await navigator.serviceWorker?.getRegistration("/agent/");
    (await reg?.getNotifications({ tag: callId }))?.forEach((n) => n.close());
  } catch {
    /* none */
  }
}

/** Offers still on screen as notifications when the page opens. */
async function pendingOffers(): Promise<void> {
  try {
    const reg = await navigator.serviceWorker?.getRegistration("/agent/");
    const shown = (await reg?.getNotifications()) || [];
    for (const n of shown) {
      const data = (n.data || {}) as { call_id?: string; expires_at?: string };
      if (data.call_id && !expired(data.expires_at)) {
        const known = await callRecord(data.call_id).catch(() => undefined);
        showOffer({ type: "call.offer", call_id: data.call_id, expires_at: data.expires_at, to: known && known.to });
      }
    }
  } catch {
    /* no notifications API */
  }
}

function onWorkerMessage(event: MessageEvent): void {
  const msg = event.data as OfferMessage;
  if (!msg || typeof msg !== "object") return;
  if (msg.type === "call.offer" && current) showOffer(msg);
  else if (msg.type === "call.handled") endOffer(msg.call_id);
  else if (msg.type === "call.gone") endOffer(msg.call_id, msg.message);
  else if (msg.type === "dial" && typeof (msg as unknown as { url: string }).url === "string") {
    location.href = (msg as unknown as { url: string }).url;
  }
}

// ---------------------------------------------------------------------------------------
// The dial page: /agent/?dial=+14155550123&call=call_…

function showDialLink(to: string, message: string): void {
  show("dial");
  $("dial-message").textContent = message;
  const link = $<HTMLAnchorElement>("dial-link");
  link.href = "tel:" + to;
  link.textContent = "Call " + to;
  link.hidden = false;
  link.focus();
}

async function dialPage(to: string, callId: string | null): Promise<void> {
  show("dial");
  history.replaceState(null, "", "/agent/");
  if (!E164.test(to) || !callId) {
    $("dial-message").textContent = "This link does not name a call request.";
    return;
  }
  const known = await callRecord(callId).catch(() => undefined);
  if (known && known.to === to && expired(known.expires_at)) {
    $("dial-message").textContent = "This call request expired, so it was not dialled.";
    return;
  }
  if (!known || known.to !== to) {
    // Not a call this phone acknowledged: offer the number, never dial it by itself.
    showDialLink(to, "This phone has no record of this call request: call only if you expected it.");
    return;
  }
  if (await markDialed(callId)) {
    showDialLink(to, "Your phone's dialer should open now. If it does not, tap the button.");
    location.href = "tel:" + to;
  } else {
    showDialLink(to, "This call was already dialled once. Tap to call again.");
  }
}

// ---------------------------------------------------------------------------------------

async function boot(): Promise<void> {
  if ("serviceWorker" in navigator) {
    registration = navigator.serviceWorker.register("/agent/sw.js", { scope: "/agent/", updateViaCache: "none" });
    registration.catch(() => undefined);
    navigator.serviceWorker.addEventListener("message", onWorkerMessage);
    navigator.serviceWorker.startMessages();
  }
  $("pair-form").addEventListener("submit", (e) => void pair(e));
  $("push-enable").addEventListener("click", () => current && void setupPush(current, true));
  $("offer-call").addEventListener("click", () => void answerOffer("call"));
  $("offer-decline").addEventListener("click", () => void answerOffer("decline"));
  $("unpair").addEventListener("click", async () => {
    if (!current || !confirm("Unpair this phone? It will stop receiving call requests.")) return;
    // Stop pushes first (an admin can also revoke the device in the console).
    await call("PUT", "/agent/v1/device", { token: current.token, body: { push: null } });
    await forget();
    showPair("This phone is unpaired. Ask an admin to remove it from the console too.");
  });

  const params = new URLSearchParams(location.search);
  const dial = params.get("dial");
  if (dial !== null) return dialPage(dial, params.get("call"));

  const dev = await device().catch(() => undefined);
  if (!dev) return showPair();
  showHome(dev);
  // Any authenticated request keeps a push device fresh; a 401 means it was revoked.
  const beat = await call("POST", "/agent/v1/heartbeat", { token: dev.token });
  if (!beat.ok && beat.status === 401) return unpaired();
  await setupPush(dev, false);
  await pendingOffers();
}

void boot();
