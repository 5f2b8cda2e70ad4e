/**
 * Retries: a `fetch` that sends a request again when the answer says to try later (429,
 * 503) or none came (a network failure), if sending it twice cannot do anything twice.
 *
 * - Which requests: GET, HEAD, OPTIONS, PUT and DELETE; a POST that carries an
 *   `Idempotency-Key` (the server answers a repeat with the first answer); and the POSTs
 *   that are idempotent by nature (canceling a call). Any other POST or PATCH is sent once.
 * - Which answers: 429 and 503, and `409 idempotency_key_in_use` (the same key is being
 *   answered right now: a moment later its answer is replayed).
 * - How long to wait: exponential backoff with full jitter (a random delay between 0 and
 *   `min(maxDelay, baseDelay × 2^attempt)`), never sooner than the answer's `Retry-After`
 *   (spread over up to half as long again, so that clients refused together do not come
 *   back together); an answer asking for longer than `maxRetryAfter` is not waited for:
 *   it is returned.
 * - It works wherever `fetch` does (Node 20+, browsers, workers): timers only, and the
 *   request's own `AbortSignal` stops a wait.
 */
import { parseRetryAfter } from './errors.js';

export interface RetryOptions {
  /** Retries after the first attempt (default 2, also for a value that is not a finite number; 0 turns retrying off). */
  maxRetries?: number;
  /** The first backoff's upper bound, in milliseconds (default 500). */
  baseDelayMs?: number;
  /** The largest backoff, in milliseconds (default 8000). */
  maxDelayMs?: number;
  /** The longest `Retry-After` (seconds) worth waiting for (default 60); a longer one is returned as is. */
  maxRetryAfter?: number;
  /** Called before each wait: what failed (an answer or an error), the attempt that comes next and the delay. */
  onRetry?: (info: { request: Request; response?: Response; error?: unknown; attempt: number; delayMs: number }) => void;
}

/** The answers worth another attempt. */
const RETRY_STATUSES = new Set([429, 503]);
const IDEMPOTENT_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);
/** POSTs that change nothing the second time: canceling a canceled call answers the call. */
const IDEMPOTENT_POSTS = [/\/v1\/calls\/[^/]+\/cancel$/];

/** Whether sending `request` twice cannot act twice. */
export function isRetryable(request: Request): boolean {
  const method = request.method.toUpperCase();
  if (IDEMPOTENT_METHODS.has(method)) return true;
  if (method !== 'POST') return false;
  if (request.headers.get('idempotency-key')) return true;
  const path = new URL(request.url, 'http://localhost').pathname;
  return IDEMPOTENT_POSTS.some((p) => p.test(path));
}

/** The delay before retry number `attempt` (1 for the first retry), in milliseconds. */
export function backoffDelay(attempt: number, retryAfterS: number | undefined, options: RetryOptions = {}): number {
  const base = options.baseDelayMs ?? 500;
  const cap = options.maxDelayMs ?? 8000;
  const ceiling = Math.min(cap, base * 2 ** (attempt - 1));
  const jittered = Math.random() * ceiling;
  if (retryAfterS === undefined) return jittered;
  return Math.max(jittered, retryAfterS * 1000 * (1 + Math.random() * 0.5));
}

/** `fetch` with retries (see the module's comment). */
export function retryingFetch(
  fetchImpl: (input: Request) => Promise<Response>,
  options: RetryOptions = {},
): (input: Request) => Promise<Response> {
  // A count that is not a finite number (`Number(undefined)` is NaN) would never be
  // exceeded: retry forever. It falls back to the default; a fraction rounds down.
  const n = options.maxRetries ?? 2;
  const maxRetries = Number.isFinite(n) ? Math.max(0, Math.floor(n)) : 2;
  const maxRetryAfter = options.maxRetryAfter ?? 60;
  return async (request: Request) => {
    if (maxRetries === 0 || !isRetryable(request)) return fetchImpl(request);
    for (let attempt = 1; ; attempt++) {
      const last = attempt > maxRetries;
      // A body can be read once: each attempt but the last sends a copy.
      const sent = last ? request : request.clone();
      let response: Response;
      try {
        response = await fetchImpl(sent);
      } catch (error) {
        if (last || request.signal?.aborted || isAbort(error)) throw error;
        const delayMs = backoffDelay(attempt, undefined, options);
        options.onRetry?.({ request, error, attempt, delayMs });
        await sleep(delayMs, request.signal);
        continue;
      }
      if (last || !(await isRetryAnswer(response))) return response;
      const retryAfter = parseRetryAfter(response.headers.get('retry-after'));
      if (retryAfter !== undefined && retryAfter > maxRetryAfter) return response;
      const delayMs = backoffDelay(attempt, retryAfter, options);
      options.onRetry?.({ request, response, attempt, delayMs });
      // The answer is dropped: free its connection before waiting.
      await response.body?.cancel().catch(() => undefined);
      await sleep(delayMs, request.signal);
    }
  };
}

async function isRetryAnswer(response: Response): Promise<boolean> {
  if (RETRY_STATUSES.has(response.status)) return true;
  if (response.status !== 409) return false;
  try {
    const problem = (await response.clone().json()) as { code?: unknown };
    return problem?.code === 'idempotency_key_in_use';
  } catch {
    return false;
  }
}

/** Whether `error` is an abort (the caller's signal, or a timeout signal). */
export function isAbort(error: unknown): boolean {
  return error instanceof Error && (error.name === 'AbortError' || error.name === 'TimeoutError');
}

function sleep(ms: number, signal: AbortSignal | null | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
