// Retries: against an organization the server allows 2 requests a second, a refused
// request is sent again no sooner than the Retry-After it was given; with retries off,
// the refusal is a RateLimitError carrying it. What the server cannot be made to answer
// (a 503) comes from a loopback server here.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { backoffDelay, ConflictError, isRetryable, parseRetryAfter, Pushdial, PushdialError, RateLimitError, ServiceUnavailableError } from '../src/index.js';
import { needServer, recordingFetch, sleep } from './support.js';

function limited(options: ConstructorParameters<typeof Pushdial>[0] = {}) {
  const { url, limitedApiKey } = needServer();
  return new Pushdial({ baseUrl: url, apiKey: limitedApiKey, ...options });
}

describe('retries against the real rate limit', () => {
  test('429 answers are retried, never sooner than Retry-After, until every request succeeds', async () => {
    const { attempts, fetch } = recordingFetch();
    const pd = limited({ fetch, maxRetries: 3 });
    // Four reads in a row: the third within the same second is refused.
    for (let i = 0; i < 4; i++) {
      const page = await pd.agents.list({ limit: 1 });
      expect(page.data).toBeDefined();
    }
    const refused = attempts.filter((a) => a.status === 429);
    expect(refused.length).toBeGreaterThan(0);
    for (const r of refused) {
      const next = attempts[attempts.indexOf(r) + 1]!;
      const wait = Number(r.retryAfter);
      expect(wait).toBeGreaterThanOrEqual(1);
      expect(next.startedAt - r.endedAt).toBeGreaterThanOrEqual(wait * 1000 - 1);
    }
    expect(attempts.filter((a) => a.status === 200)).toHaveLength(4);
    await sleep(1100);
  });

  test('with retries off, the refusal is a RateLimitError with its Retry-After', async () => {
    const pd = limited({ maxRetries: 0 });
    let refusal: unknown;
    for (let i = 0; i < 10 && refusal === undefined; i++) {
      await pd.agents.list({ limit: 1 }).then(
        () => undefined,
        (e: unknown) => {
          refusal = e;
        },
      );
    }
    expect(refusal).toBeInstanceOf(RateLimitError);
    expect(refusal).toBeInstanceOf(PushdialError);
    const e = refusal as RateLimitError;
    expect(e.status).toBe(429);
    expect(e.code).toBe('rate_limited');
    expect(e.retryAfter).toBeGreaterThanOrEqual(1);
    expect(e.problem).toMatchObject({ status: 429, code: 'rate_limited', errors: [] });
    await sleep(e.retryAfter! * 1000 + 100);
  });
});

describe('retries of what the server cannot be made to answer', () => {
  // Answers each request with the next of `script` (then 200 with an empty list).
  let server: Server;
  let base: string;
  const script: { status: number; headers?: Record<string, string>; code?: string }[] = [];
  const seen: { method: string; at: number; key: string | undefined }[] = [];
  beforeAll(async () => {
    server = createServer((req, res) => {
      seen.push({ method: req.method!, at: performance.now(), key: req.headers['idempotency-key'] as string | undefined });
      req.resume();
      const next = script.shift() ?? { status: 200 };
      const problem =
        next.status === 200
          ? { object: 'list', data: [], has_more: false }
          : { type: 'about:blank', title: 'Refused', status: next.status, detail: 'try later', code: next.code ?? 'overloaded', request_id: 'req_1', errors: [] };
      res.writeHead(next.status, { 'content-type': next.status === 200 ? 'application/json' : 'application/problem+json', ...next.headers });
      res.end(JSON.stringify(problem));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  test('a 503 with Retry-After is retried after it; a PATCH is not retried', async () => {
    const pd = new Pushdial({ baseUrl: base, apiKey: 'pd_sk_test' });
    seen.length = 0;
    script.push({ status: 503, headers: { 'retry-after': '1' } });
    const page = await pd.agents.list();
    expect(page).toEqual({ object: 'list', data: [], has_more: false });
    expect(seen).toHaveLength(2);
    expect(seen[1]!.at - seen[0]!.at).toBeGreaterThanOrEqual(1000);

    seen.length = 0;
    script.push({ status: 503, headers: { 'retry-after': '1' } });
    const patch = await pd.webhookEndpoints.update('ep_1', { description: 'x' }).catch((e: unknown) => e);
    expect(patch).toBeInstanceOf(ServiceUnavailableError);
    expect((patch as ServiceUnavailableError).retryAfter).toBe(1);
    expect((patch as ServiceUnavailableError).code).toBe('overloaded');
    expect(seen).toHaveLength(1);
  });

  test('409 idempotency_key_in_use is retried with the same key; another 409 is not', async () => {
    const pd = new Pushdial({ baseUrl: base, apiKey: 'pd_sk_test', retry: { baseDelayMs: 10 } });
    seen.length = 0;
    script.push({ status: 409, code: 'idempotency_key_in_use' });
    await pd.agents.create({ name: 'Ada' });
    expect(seen).toHaveLength(2);
    expect(seen[0]!.key).toMatch(/.+/);
    expect(seen[1]!.key).toBe(seen[0]!.key);

    seen.length = 0;
    script.push({ status: 409, code: 'idempotency_key_reused' });
    const e = await pd.agents.create({ name: 'Ada' }).catch((e: unknown) => e);
    expect(e).toBeInstanceOf(ConflictError);
    expect((e as ConflictError).code).toBe('idempotency_key_reused');
    expect(seen).toHaveLength(1);
  });

  test("the request's signal stops a wait between retries, and the abort is thrown as it is", async () => {
    const pd = new Pushdial({ baseUrl: base, apiKey: 'pd_sk_test' });
    seen.length = 0;
    script.push({ status: 503, headers: { 'retry-after': '5' } });
    const started = performance.now();
    const e = await pd.agents.list({}, { signal: AbortSignal.timeout(200) }).catch((e: unknown) => e);
    expect((e as Error).name).toBe('TimeoutError');
    expect(performance.now() - started).toBeLessThan(2000);
    expect(seen).toHaveLength(1);
  });

  test('a Retry-After longer than maxRetryAfter is not waited for', async () => {
    const pd = new Pushdial({ baseUrl: base, apiKey: 'pd_sk_test', retry: { maxRetryAfter: 5 } });
    seen.length = 0;
    script.push({ status: 429, headers: { 'retry-after': '3600' } });
    const e = await pd.agents.list().catch((e: unknown) => e);
    expect(e).toBeInstanceOf(RateLimitError);
    expect((e as RateLimitError).retryAfter).toBe(3600);
    expect(seen).toHaveLength(1);
  });
});

describe('a retry count that is not a number', () => {
  // Answers 503 to every request, for ever.
  let server: Server;
  let base: string;
  let requests = 0;
  beforeAll(async () => {
    server = createServer((req, res) => {
      requests++;
      req.resume();
      res.writeHead(503, { 'content-type': 'application/problem+json' });
      res.end(JSON.stringify({ type: 'about:blank', title: 'Unavailable', status: 503, detail: 'try later', code: 'overloaded', request_id: 'req_1', errors: [] }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  test('maxRetries NaN (Number(undefined)) gives up after the default 2 retries instead of looping', async () => {
    for (const options of [{ maxRetries: Number(undefined) }, { retry: { maxRetries: NaN } }]) {
      const pd = new Pushdial({ baseUrl: base, apiKey: 'pd_sk_test', ...options, retry: { baseDelayMs: 1, ...options.retry } });
      requests = 0;
      // Without the fallback the loop never ends: the timeout stops it and the count shows it.
      const e = await pd.agents.list({}, { signal: AbortSignal.timeout(3000) }).catch((e: unknown) => e);
      expect(e).toBeInstanceOf(ServiceUnavailableError);
      expect(requests).toBe(3);
    }
  });
});

describe('retry policy', () => {
  test('backoff is full jitter under an exponential ceiling, never below Retry-After', () => {
    for (let i = 0; i < 2000; i++) {
      const attempt = 1 + (i % 5);
      const d = backoffDelay(attempt, undefined, { baseDelayMs: 100, maxDelayMs: 1000 });
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThanOrEqual(Math.min(1000, 100 * 2 ** (attempt - 1)));
      const r = backoffDelay(attempt, 2, { baseDelayMs: 100, maxDelayMs: 1000 });
      expect(r).toBeGreaterThanOrEqual(2000);
      expect(r).toBeLessThanOrEqual(3000);
    }
    // Jitter: the delays spread over the range rather than repeat.
    const spread = new Set(Array.from({ length: 50 }, () => Math.round(backoffDelay(3, undefined))));
    expect(spread.size).toBeGreaterThan(40);
  });

  test('a Retry-After is delta-seconds (a fraction too) or an HTTP date, nothing else', () => {
    expect(parseRetryAfter('2')).toBe(2);
    // Date.parse reads "1.5" as a day in 2001, which was a wait of 0.
    expect(parseRetryAfter('1.5')).toBe(1.5);
    expect(parseRetryAfter(' 0.25 ')).toBe(0.25);
    const inTen = new Date(Date.now() + 10_000);
    expect(parseRetryAfter(inTen.toUTCString())).toBeGreaterThanOrEqual(9);
    expect(parseRetryAfter(inTen.toUTCString())).toBeLessThanOrEqual(11);
    expect(parseRetryAfter('Sun, 06 Nov 1994 08:49:37 GMT')).toBe(0);
    expect(parseRetryAfter('Sunday, 06-Nov-94 08:49:37 GMT')).toBe(0);
    expect(parseRetryAfter('Sun Nov  6 08:49:37 1994')).toBe(0);
    for (const unreadable of ['', '-1', '1e3', '1.', '.5', '2001-01-01', '12/31/2099', 'soon', null, undefined]) {
      expect(parseRetryAfter(unreadable), String(unreadable)).toBeUndefined();
    }
  });

  test('only requests that cannot act twice are retried', () => {
    const r = (method: string, path: string, headers: Record<string, string> = {}) =>
      isRetryable(new Request(`http://x${path}`, { method, headers }));
    expect(r('GET', '/v1/calls')).toBe(true);
    expect(r('DELETE', '/v1/devices/dev_1')).toBe(true);
    expect(r('POST', '/v1/calls', { 'Idempotency-Key': 'k' })).toBe(true);
    expect(r('POST', '/v1/calls/call_1/cancel')).toBe(true);
    expect(r('POST', '/v1/calls')).toBe(false);
    expect(r('POST', '/v1/pairing_codes')).toBe(false);
    expect(r('PATCH', '/v1/webhook_endpoints/ep_1')).toBe(false);
  });
});
