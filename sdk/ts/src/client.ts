/**
 * The clients: `createPushdial` returns the generated openapi-fetch client (every path of
 * the API, typed from openapi/openapi.json), and `Pushdial` wraps it in resources with
 * the conveniences a caller would otherwise write each time: Idempotency-Keys on creates,
 * retries, pagination and typed errors.
 */
import createClient, { type Client, type Middleware } from 'openapi-fetch';
import { ConnectionError, PushdialError } from './errors.js';
import { PagePromise, type Cursor, type ListPage } from './pagination.js';
import { isAbort, retryingFetch, type RetryOptions } from './retry.js';
import type { components, paths } from './schema.js';

/** Every schema of the API by name, e.g. `Schemas['Call']`. */
export type Schemas = components['schemas'];

/** The HTTP header that names the organization a session request acts in. */
export const ORGANIZATION_HEADER = 'Pushdial-Organization';

export interface PushdialOptions {
  /** Where the API is, e.g. `https://pushdial.example`. Default: the page's own origin (`''`). */
  baseUrl?: string;
  /** A secret key `pd_sk_…`: sent as `Authorization: Bearer`. */
  apiKey?: string;
  /**
   * With a console session (no `apiKey`): the organization to act in, sent as
   * `Pushdial-Organization`. A function is asked on every request, so one client can
   * follow an organization switcher.
   */
  organization?: string | (() => string | null | undefined);
  /** A fetch implementation (default: the global one). */
  fetch?: (input: Request) => Promise<Response>;
  /** Extra headers for every request. */
  headers?: Record<string, string>;
  /** Retries after the first attempt of a request that may be repeated (default 2; 0: none). */
  maxRetries?: number;
  /** How retries wait (see RetryOptions); `maxRetries` above wins over `retry.maxRetries`. */
  retry?: RetryOptions;
}

/** The openapi-fetch client of the pushdial API: `GET`, `POST`, `PATCH`, `DELETE`, `PUT`, … */
export type PushdialClient = Client<paths>;

/**
 * Creates the generated client. With `apiKey` every request carries `Authorization:
 * Bearer <apiKey>`; without one, requests carry the browser's cookies for the same origin
 * (`credentials: 'same-origin'`) and `Pushdial-Organization` when an organization is set.
 * Requests that may be repeated are retried on 429, 503 and network failures (see retry.ts).
 */
export function createPushdial(options: PushdialOptions = {}): PushdialClient {
  const { baseUrl = '', apiKey, organization, headers } = options;
  // Looked up on each request, so that a fetch installed later (a test's, a polyfill) is used.
  const fetchImpl = options.fetch ?? ((request: Request) => globalThis.fetch(request));
  const client = createClient<paths>({
    baseUrl: baseUrl.replace(/\/+$/, ''),
    headers,
    fetch: retryingFetch(fetchImpl, { ...options.retry, maxRetries: options.maxRetries ?? options.retry?.maxRetries ?? 2 }),
    ...(apiKey ? {} : { credentials: 'same-origin' as const }),
  });
  client.use(authMiddleware(apiKey, organization));
  return client;
}

function authMiddleware(apiKey: string | undefined, organization: PushdialOptions['organization']): Middleware {
  return {
    onRequest({ request }) {
      if (apiKey) {
        request.headers.set('Authorization', `Bearer ${apiKey}`);
        return request;
      }
      const org = typeof organization === 'function' ? organization() : organization;
      if (org && !request.headers.has(ORGANIZATION_HEADER)) {
        request.headers.set(ORGANIZATION_HEADER, org);
      }
      return request;
    },
  };
}

/** What every openapi-fetch method resolves to. */
interface FetchResult<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

/**
 * Awaits an openapi-fetch call and returns its data, or throws the PushdialError of a
 * failed answer (its subclass by status) or a ConnectionError when no answer came (an
 * aborted request throws its AbortError).
 *
 * ```ts
 * const call = await unwrap(pd.POST('/v1/calls', { body: { to: '+14155550123' } }));
 * ```
 */
export async function unwrap<T>(pending: Promise<FetchResult<T>>): Promise<T> {
  let result: FetchResult<T>;
  try {
    result = await pending;
  } catch (e) {
    // An abort is the caller's own doing: it stays an AbortError (or TimeoutError).
    if (e instanceof PushdialError || isAbort(e)) throw e;
    throw new ConnectionError(e);
  }
  if (!result.response.ok || result.error !== undefined) {
    throw PushdialError.fromResponse(result.response, result.error);
  }
  return result.data as T;
}

/** A fresh Idempotency-Key: a random UUID (from Web Crypto, present in Node 20+ and browsers). */
export function newIdempotencyKey(): string {
  const crypto = globalThis.crypto;
  if (typeof crypto?.randomUUID === 'function') return crypto.randomUUID();
  // randomUUID is only in secure contexts in browsers; getRandomValues is everywhere.
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Per-request options of the resource methods. */
export interface RequestOptions {
  /** Stops the request (and any wait between its retries). */
  signal?: AbortSignal;
}

/** Options of a create that the server deduplicates. */
export interface CreateOptions extends RequestOptions {
  /**
   * Makes repeating the create safe for 24 hours: the same key and body answer the first
   * result. Default: a new random key per call of the method, sent again on its retries.
   */
  idempotencyKey?: string;
}

type Query<P extends keyof paths> = paths[P] extends { get: { parameters: { query?: infer Q } } } ? NonNullable<Q> : never;
/** A list's filters and page size, without the cursor (which the iterator moves). */
type ListParams<P extends keyof paths> = Omit<Query<P>, 'starting_after' | 'ending_before'> & Cursor;

export type Agent = Schemas['Agent'];
export type Call = Schemas['Call'];
export type CallEvent = Schemas['CallEvent'];
export type Device = Schemas['Device'];
export type Event = Schemas['Event'];
export type PairingCode = Schemas['PairingCode'];
export type WebhookEndpoint = Schemas['WebhookEndpoint'];
export type WebhookAttempt = Schemas['WebhookAttempt'];
export type CreateCall = Schemas['CreateCall'];
export type CreateAgent = Schemas['CreateAgent'];
export type CreateWebhookEndpoint = Schemas['CreateWebhookEndpoint'];
export type UpdateWebhookEndpoint = Schemas['UpdateWebhookEndpoint'];

export type ListCallsParams = ListParams<'/v1/calls'>;
export type ListAgentsParams = ListParams<'/v1/agents'>;
export type ListDevicesParams = ListParams<'/v1/devices'>;
export type ListEventsParams = ListParams<'/v1/events'>;
export type ListWebhookEndpointsParams = ListParams<'/v1/webhook_endpoints'>;

/**
 * The pushdial API with conveniences, for servers (a secret key) and browsers alike:
 *
 * ```ts
 * const pd = new Pushdial({ baseUrl: 'https://pushdial.example', apiKey: 'pd_sk_…' });
 * const call = await pd.calls.create({ to: '+14155550123', agent_id: 'agt_…' });
 * for await (const c of pd.calls.list({ status: 'completed' })) console.log(c.id);
 * ```
 *
 * - creates send an `Idempotency-Key` (yours, or a new one) and repeat it on retries;
 * - requests that may be repeated are retried on 429, 503 and network failures, with
 *   backoff and full jitter, never sooner than `Retry-After`;
 * - failures throw a PushdialError (its subclass by status) with the problem document;
 * - lists are awaited for a page or iterated with `for await` over every page.
 *
 * `pd.raw` is the generated client, for every other path of the API.
 */
export class Pushdial {
  /** The generated openapi-fetch client, with the same key, retries and base URL. */
  readonly raw: PushdialClient;
  readonly calls: Calls;
  readonly agents: Agents;
  readonly devices: Devices;
  readonly pairingCodes: PairingCodes;
  readonly webhookEndpoints: WebhookEndpoints;
  readonly events: Events;

  constructor(options: PushdialOptions = {}) {
    this.raw = createPushdial(options);
    this.calls = new Calls(this.raw);
    this.agents = new Agents(this.raw);
    this.devices = new Devices(this.raw);
    this.pairingCodes = new PairingCodes(this.raw);
    this.webhookEndpoints = new WebhookEndpoints(this.raw);
    this.events = new Events(this.raw);
  }
}

/** A list's pages: the caller's filters, then each page's cursor. */
function pager<T extends { id: string }, P extends Cursor>(
  load: (query: P) => Promise<ListPage<T>>,
  params: P,
): PagePromise<T> {
  const { starting_after, ending_before, ...filters } = params;
  return new PagePromise<T>((cursor) => load({ ...filters, ...cursor } as P), { starting_after, ending_before });
}

function path<K extends string>(key: K, id: string): Record<K, string> {
  return { [key]: id } as Record<K, string>;
}

/** `/v1/calls`: place, list, read and cancel calls. */
export class Calls {
  constructor(private readonly raw: PushdialClient) {}

  /**
   * Places a call through an agent's (or a device's) phone. `409 no_device_reachable`
   * (a ConflictError) when no phone of theirs can be reached now, with nothing written.
   */
  create(body: CreateCall, options: CreateOptions = {}): Promise<Call> {
    const key = options.idempotencyKey ?? newIdempotencyKey();
    return unwrap(this.raw.POST('/v1/calls', { body, params: { header: { 'Idempotency-Key': key } }, signal: options.signal }));
  }

  /** Calls, newest first: await for a page, `for await` for all. */
  list(params: ListCallsParams = {}, options: RequestOptions = {}): PagePromise<Call> {
    return pager(
      (query) => unwrap(this.raw.GET('/v1/calls', { params: { query }, signal: options.signal })),
      params,
    );
  }

  get(callId: string, options: RequestOptions = {}): Promise<Call> {
    return unwrap(this.raw.GET('/v1/calls/{call_id}', { params: { path: path('call_id', callId) }, signal: options.signal }));
  }

  /** Cancels a call that is not dialing yet (else `409 call_not_cancelable`); canceling twice answers the call. */
  cancel(callId: string, options: RequestOptions = {}): Promise<Call> {
    return unwrap(
      this.raw.POST('/v1/calls/{call_id}/cancel', { params: { path: path('call_id', callId) }, signal: options.signal }),
    );
  }

  /** The call's timeline, oldest first. */
  async events(callId: string, options: RequestOptions = {}): Promise<CallEvent[]> {
    const page = await unwrap(
      this.raw.GET('/v1/calls/{call_id}/events', { params: { path: path('call_id', callId) }, signal: options.signal }),
    );
    return page.data;
  }
}

/** `/v1/agents`: the people who take calls. */
export class Agents {
  constructor(private readonly raw: PushdialClient) {}

  create(body: CreateAgent, options: CreateOptions = {}): Promise<Agent> {
    const key = options.idempotencyKey ?? newIdempotencyKey();
    return unwrap(this.raw.POST('/v1/agents', { body, params: { header: { 'Idempotency-Key': key } }, signal: options.signal }));
  }

  list(params: ListAgentsParams = {}, options: RequestOptions = {}): PagePromise<Agent> {
    return pager(
      (query) => unwrap(this.raw.GET('/v1/agents', { params: { query }, signal: options.signal })),
      params,
    );
  }

  get(agentId: string, options: RequestOptions = {}): Promise<Agent> {
    return unwrap(this.raw.GET('/v1/agents/{agent_id}', { params: { path: path('agent_id', agentId) }, signal: options.signal }));
  }
}

/** `/v1/devices`: the agents' paired phones. */
export class Devices {
  constructor(private readonly raw: PushdialClient) {}

  list(params: ListDevicesParams = {}, options: RequestOptions = {}): PagePromise<Device> {
    return pager(
      (query) => unwrap(this.raw.GET('/v1/devices', { params: { query }, signal: options.signal })),
      params,
    );
  }

  get(deviceId: string, options: RequestOptions = {}): Promise<Device> {
    return unwrap(this.raw.GET('/v1/devices/{device_id}', { params: { path: path('device_id', deviceId) }, signal: options.signal }));
  }

  /** Unpairs a device: its token stops working at once. */
  revoke(deviceId: string, options: RequestOptions = {}): Promise<Device> {
    return unwrap(
      this.raw.DELETE('/v1/devices/{device_id}', { params: { path: path('device_id', deviceId) }, signal: options.signal }),
    );
  }
}

/** `/v1/pairing_codes`: one-time codes a phone pairs with. */
export class PairingCodes {
  constructor(private readonly raw: PushdialClient) {}

  create(body: Schemas['CreatePairingCode'], options: RequestOptions = {}): Promise<PairingCode> {
    return unwrap(this.raw.POST('/v1/pairing_codes', { body, signal: options.signal }));
  }
}

/** `/v1/webhook_endpoints`: where events are delivered (verify them with verifyWebhook). */
export class WebhookEndpoints {
  constructor(private readonly raw: PushdialClient) {}

  /** Creates an endpoint; the answer carries its signing secret (`whsec_…`), shown only here. */
  create(body: CreateWebhookEndpoint, options: RequestOptions = {}): Promise<WebhookEndpoint> {
    return unwrap(this.raw.POST('/v1/webhook_endpoints', { body, signal: options.signal }));
  }

  list(params: ListWebhookEndpointsParams = {}, options: RequestOptions = {}): PagePromise<WebhookEndpoint> {
    return pager(
      (query) => unwrap(this.raw.GET('/v1/webhook_endpoints', { params: { query }, signal: options.signal })),
      params,
    );
  }

  get(endpointId: string, options: RequestOptions = {}): Promise<WebhookEndpoint> {
    return unwrap(
      this.raw.GET('/v1/webhook_endpoints/{endpoint_id}', {
        params: { path: path('endpoint_id', endpointId) },
        signal: options.signal,
      }),
    );
  }

  update(endpointId: string, body: UpdateWebhookEndpoint, options: RequestOptions = {}): Promise<WebhookEndpoint> {
    return unwrap(
      this.raw.PATCH('/v1/webhook_endpoints/{endpoint_id}', {
        params: { path: path('endpoint_id', endpointId) },
        body,
        signal: options.signal,
      }),
    );
  }

  /** Deletes the endpoint; answers it as it was. */
  delete(endpointId: string, options: RequestOptions = {}): Promise<WebhookEndpoint> {
    return unwrap(
      this.raw.DELETE('/v1/webhook_endpoints/{endpoint_id}', {
        params: { path: path('endpoint_id', endpointId) },
        signal: options.signal,
      }),
    );
  }

  /** A new signing secret; the old one keeps signing alongside it for a grace period. */
  rotateSecret(endpointId: string, body: Schemas['RotateSecret'] = {}, options: RequestOptions = {}): Promise<WebhookEndpoint> {
    return unwrap(
      this.raw.POST('/v1/webhook_endpoints/{endpoint_id}/rotate_secret', {
        params: { path: path('endpoint_id', endpointId) },
        body,
        signal: options.signal,
      }),
    );
  }

  /** Sends the endpoint a `webhook.test` event (delivered, and retried, in the background). */
  test(endpointId: string, options: RequestOptions = {}): Promise<Schemas['Queued']> {
    return unwrap(
      this.raw.POST('/v1/webhook_endpoints/{endpoint_id}/test', {
        params: { path: path('endpoint_id', endpointId) },
        signal: options.signal,
      }),
    );
  }
}

/** `/v1/events`: the organization's events, as delivered to webhooks. */
export class Events {
  constructor(private readonly raw: PushdialClient) {}

  list(params: ListEventsParams = {}, options: RequestOptions = {}): PagePromise<Event> {
    return pager(
      (query) => unwrap(this.raw.GET('/v1/events', { params: { query }, signal: options.signal })),
      params,
    );
  }
}
