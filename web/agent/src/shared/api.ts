/**
 * The agent API (`/agent/v1`, same origin), for the page and the service worker alike.
 * Every answer is a `Result`: problem documents are data here, not exceptions.
 */
export interface Problem {
  status: number;
  code: string;
  detail: string;
}

export type Result<T> = { ok: true; status: number; data: T } | { ok: false; status: number; problem: Problem };

/** Server clock minus ours, from the `Date` of the last answer (second resolution). */
let skewMs = 0;

/** Now, by the server's clock as far as we know it. */
export function serverNow(): number {
  return Date.now() + skewMs;
}

/** True once `expiresAt` has passed (or cannot be read): never dial then. */
export function expired(expiresAt: string | undefined): boolean {
  const at = expiresAt ? Date.parse(expiresAt) : NaN;
  return !(at > serverNow());
}

export async function call<T>(
  method: string,
  path: string,
  opts: { token?: string; body?: unknown; timeoutMs?: number } = {},
): Promise<Result<T>> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (opts.token) headers.Authorization = "Bearer " + opts.token;
  if (opts.body !== undefined) headers["Content-Type"] = "application/json";
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), opts.timeoutMs || 15000);
  try {
    const res = await fetch(path, {
      method,
      headers,
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      credentials: "omit",
      cache: "no-store",
      signal: abort.signal,
    });
    const date = Date.parse(res.headers.get("date") || "");
    if (date) {
      const skew = date - Date.now();
      // The header has whole seconds: only a clear difference is a skew.
      skewMs = Math.abs(skew) > 2000 ? skew : 0;
    }
    const data = await res.json().catch(() => ({}));
    if (res.ok) return { ok: true, status: res.status, data: data as T };
    return {
      ok: false,
      status: res.status,
      problem: {
        status: res.status,
        code: String((data && data.code) || "http_" + res.status),
        detail: String((data && (data.detail || data.title)) || res.statusText || "request failed"),
      },
    };
  } catch (e) {
    return { ok: false, status: 0, problem: { status: 0, code: "network", detail: "The server could not be reached." } };
  } finally {
    clearTimeout(timer);
  }
}

export interface PairResponse {
  id: string;
  agent_id: string;
  token: string;
}

export interface AckResponse {
  call_id: string;
  to: string;
  confirm: string;
  expires_at: string;
  status: string;
}

export interface Device {
  id: string;
  agent_id: string;
  name: string;
  push_channel?: string;
  reachable?: boolean;
}

export const ack = (token: string, id: string) =>
  call<AckResponse>("POST", `/agent/v1/calls/${encodeURIComponent(id)}/ack`, { token, timeoutMs: 6000 });

export const report = (token: string, id: string, status: string, observed = true) =>
  call<unknown>("POST", `/agent/v1/calls/${encodeURIComponent(id)}/events`, {
    token,
    body: { status, observed },
    timeoutMs: 6000,
  });

/** A base64url VAPID key as the bytes `PushManager.subscribe` takes everywhere. */
export function keyBytes(b64url: string): Uint8Array<ArrayBuffer> {
  const b64 = b64url.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((b64url.length + 3) % 4);
  const bin = atob(b64);
  const out = new Uint8Array(new ArrayBuffer(bin.length));
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
