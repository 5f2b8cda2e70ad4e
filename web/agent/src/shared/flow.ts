/**
 * Answering an offer, the same from the notification (service worker) and from the page:
 * ack (which returns the number), then `declined`, or `accepted` and `dialing` — checking
 * `expires_at` before each step, so nothing is dialled or reported after it.
 */
import { ack, expired, Problem, report } from "./api";
import { CallRecord, callRecord, device, kv, saveCall } from "./idb";

/** Why an offer was not taken: it is over for this phone (`gone`), or a request failed. */
export type Failure = { kind: "gone"; code: string; message: string } | { kind: "error"; code: string; message: string };

export type Outcome = { kind: "dial"; call: CallRecord } | { kind: "declined" } | Failure;

const GONE: Record<string, string> = {
  call_taken: "Another phone took this call.",
  call_expired: "This call request expired.",
  call_not_active: "This call request is over.",
  not_found: "This call request is not for this phone.",
  expired: "This call request expired.",
};

function fromProblem(p: Problem): Failure {
  if (p.status === 401) return { kind: "error", code: "unpaired", message: "This phone is no longer paired." };
  if (p.status === 404) return { kind: "gone", code: "not_found", message: GONE.not_found };
  if (p.status === 409) return { kind: "gone", code: p.code, message: GONE[p.code] || p.detail };
  return { kind: "error", code: p.code, message: p.detail };
}

const gone = (): Failure => ({ kind: "gone", code: "expired", message: GONE.expired });

/** Acks an offer and keeps what the ack says (the number, the expiry) for the dial page. */
export async function acknowledge(token: string, callId: string): Promise<{ ok: true; call: CallRecord } | { ok: false; outcome: Failure }> {
  const a = await ack(token, callId);
  if (!a.ok) return { ok: false, outcome: fromProblem(a.problem) };
  const known = await callRecord(callId).catch(() => undefined);
  const call: CallRecord = {
    call_id: callId,
    to: a.data.to,
    confirm: a.data.confirm,
    expires_at: a.data.expires_at,
    dialed_at: known && known.dialed_at,
  };
  await saveCall(call).catch(() => undefined);
  return { ok: true, call };
}

/** The person said yes (`call`) or no (`decline`) to an offer. */
export async function answer(callId: string, decision: "call" | "decline", expiresAt?: string): Promise<Outcome> {
  const dev = await device().catch(() => undefined);
  if (!dev) return { kind: "error", code: "unpaired", message: "This phone is not paired." };
  if (expiresAt && expired(expiresAt)) return gone();
  const acked = await acknowledge(dev.token, callId);
  if (!acked.ok) return acked.outcome;
  const c = acked.call;
  if (decision === "decline") {
    const r = await report(dev.token, callId, "declined");
    return r.ok ? { kind: "declined" } : fromProblem(r.problem);
  }
  for (const status of ["accepted", "dialing"]) {
    if (expired(c.expires_at)) return gone();
    const r = await report(dev.token, callId, status, true);
    if (!r.ok) return fromProblem(r.problem);
  }
  if (expired(c.expires_at)) return gone();
  return { kind: "dial", call: c };
}

/** Marks a call as dialled, once: true the first time. */
export async function markDialed(callId: string): Promise<boolean> {
  const c = await callRecord(callId).catch(() => undefined);
  if (!c || c.dialed_at) return false;
  c.dialed_at = new Date().toISOString();
  await saveCall(c);
  return true;
}

/** Forgets calls acknowledged more than a day ago (the store would otherwise only grow). */
export async function pruneCalls(): Promise<void> {
  const keys = await kv.keys();
  const dayAgo = Date.now() - 86400000;
  for (const key of keys) {
    if (typeof key !== "string" || !key.startsWith("call:")) continue;
    const c = await kv.get<CallRecord>(key);
    if (!c || Date.parse(c.expires_at) < dayAgo) await kv.del(key);
  }
}
