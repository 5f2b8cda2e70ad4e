// What the end-to-end tests share: the server the Rust driver (tests/it/sdk_ts.rs) started
// for them, a fetch that records each attempt, and small waiting helpers.
import { Pushdial, type PushdialOptions } from '../src/index.js';

/** The running pushdial, from the driver's environment; undefined when run without one. */
export const server = (() => {
  const url = process.env.PUSHDIAL_URL;
  const apiKey = process.env.PUSHDIAL_API_KEY;
  const agentId = process.env.PUSHDIAL_AGENT_ID;
  const limitedApiKey = process.env.PUSHDIAL_LIMITED_API_KEY;
  const slowSuffix = process.env.PUSHDIAL_SLOW_SUFFIX ?? '99';
  if (!url || !apiKey || !agentId || !limitedApiKey) return undefined;
  return { url, apiKey, agentId, limitedApiKey, slowSuffix };
})();

/** The server, or a clear failure for a test that needs one. */
export function needServer(): NonNullable<typeof server> {
  if (!server) {
    throw new Error(
      'no pushdial to test against: run these through `cargo nextest run -E "test(sdk_ts)"` ' +
        '(tests/it/sdk_ts.rs sets PUSHDIAL_URL, PUSHDIAL_API_KEY, PUSHDIAL_AGENT_ID, PUSHDIAL_LIMITED_API_KEY)',
    );
  }
  return server;
}

/** One request as it went out, and how it ended. */
export interface Attempt {
  method: string;
  url: URL;
  headers: Headers;
  startedAt: number;
  endedAt: number;
  status?: number;
  retryAfter?: string | null;
  error?: unknown;
}

/**
 * A fetch that records every attempt and passes it to the real fetch; `tamper` may replace
 * what an attempt gives back (throw to play a network failure after the server answered).
 */
export function recordingFetch(
  tamper?: (attempt: Attempt, index: number, response: Response) => Response | Promise<Response>,
  before?: (attempt: Attempt, index: number) => void,
) {
  const attempts: Attempt[] = [];
  const fetch = async (request: Request): Promise<Response> => {
    const attempt: Attempt = {
      method: request.method,
      url: new URL(request.url),
      headers: new Headers(request.headers),
      startedAt: performance.now(),
      endedAt: 0,
    };
    const index = attempts.push(attempt) - 1;
    try {
      before?.(attempt, index);
      let response = await globalThis.fetch(request);
      attempt.status = response.status;
      attempt.retryAfter = response.headers.get('retry-after');
      if (tamper) response = await tamper(attempt, index, response);
      return response;
    } catch (e) {
      attempt.error = e;
      throw e;
    } finally {
      attempt.endedAt = performance.now();
    }
  };
  return { attempts, fetch };
}

/** A client of the test organization (or the one `apiKey` names). */
export function client(options: PushdialOptions = {}): Pushdial {
  const s = needServer();
  return new Pushdial({ baseUrl: s.url, apiKey: s.apiKey, ...options });
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `check` until it returns a value (not undefined), for at most `ms`. */
export async function eventually<T>(what: string, check: () => Promise<T | undefined>, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** A number no other test of this run calls (a number takes at most 10 calls an hour). */
const used = new Set<string>();
export function freshNumber(lastTwo?: string): string {
  for (;;) {
    // Never the slow suffix (99) unless asked: the phone holds those calls.
    const tail = lastTwo ?? String(Math.floor(Math.random() * 99)).padStart(2, '0');
    const n = `+1415555${String(Math.floor(Math.random() * 100)).padStart(2, '0')}${tail}`;
    if (!used.has(n)) {
      used.add(n);
      return n;
    }
  }
}
