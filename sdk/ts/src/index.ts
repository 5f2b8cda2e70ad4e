/**
 * @pushdial/sdk — a thin, typed client of the pushdial public API.
 *
 * Every path, parameter and body comes from the types generated from openapi/openapi.json
 * (`./schema`); requests go through openapi-fetch. Two ways to authenticate:
 * - a secret key (`pd_sk_…`), server to server: `createPushdial({ baseUrl, apiKey })`;
 * - the console's session cookie, in the browser on the deployment's own origin:
 *   `createPushdial({ organization: 'org_…' })` sends `Pushdial-Organization` and the cookie.
 */
import createClient, { type Client, type Middleware } from 'openapi-fetch';
import type { components, paths } from './schema.js';
import { ProblemError } from './problem.js';

export type { components, operations, paths, webhooks } from './schema.js';
export { ProblemError, isProblem } from './problem.js';
export type { Problem, ProblemField } from './problem.js';

/** Every schema of the API by name, e.g. `Schemas['Call']`. */
export type Schemas = components['schemas'];
export type Agent = Schemas['Agent'];
export type ApiKey = Schemas['ApiKey'];
export type AuditEvent = Schemas['AuditEvent'];
export type BlockedNumber = Schemas['BlockedNumber'];
export type Callback = Schemas['Callback'];
export type Call = Schemas['Call'];
export type CallEvent = Schemas['CallEvent'];
export type Device = Schemas['Device'];
export type Event = Schemas['Event'];
export type Identity = Schemas['Identity'];
export type Invitation = Schemas['Invitation'];
export type Me = Schemas['Me'];
export type Membership = Schemas['Membership'];
export type Organization = Schemas['Organization'];
export type PairingCode = Schemas['PairingCode'];
export type Presence = Schemas['Presence'];
export type PushCredential = Schemas['PushCredential'];
export type WebhookAttempt = Schemas['WebhookAttempt'];
export type WebhookEndpoint = Schemas['WebhookEndpoint'];
export type Widget = Schemas['Widget'];

/** The HTTP header that names the organization a session request acts in. */
export const ORGANIZATION_HEADER = 'Pushdial-Organization';

/** Call statuses after which nothing more happens. */
export const TERMINAL_CALL_STATUSES: readonly string[] = ['completed', 'declined', 'canceled', 'expired', 'failed'];

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
}

/** The openapi-fetch client of the pushdial API: `GET`, `POST`, `PATCH`, `DELETE`, `PUT`, … */
export type PushdialClient = Client<paths>;

/**
 * Creates a client. With `apiKey` every request carries `Authorization: Bearer <apiKey>`;
 * without one, requests carry the browser's cookies for the same origin
 * (`credentials: 'same-origin'`) and `Pushdial-Organization` when an organization is set.
 */
export function createPushdial(options: PushdialOptions = {}): PushdialClient {
  const { baseUrl = '', apiKey, organization, headers } = options;
  const client = createClient<paths>({
    baseUrl: baseUrl.replace(/\/+$/, ''),
    headers,
    ...(options.fetch ? { fetch: options.fetch } : {}),
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
 * Awaits an openapi-fetch call and returns its data, or throws a ProblemError built
 * from the problem document of a failed answer (or a network failure).
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
    if (e instanceof ProblemError) throw e;
    throw new ProblemError({
      status: 0,
      code: 'network_error',
      title: 'Network error',
      detail: e instanceof Error ? `could not reach the server: ${e.message}` : 'could not reach the server',
    });
  }
  if (!result.response.ok || result.error !== undefined) {
    throw ProblemError.fromResponse(result.response, result.error);
  }
  return result.data as T;
}

/**
 * The URL of a call's live Server-Sent Events stream, for `new EventSource(url)` in the
 * console: the organization is a query parameter since EventSource cannot set headers;
 * the session cookie authenticates. Events: `call` (the Call, first and on every
 * change) and `call_event` (each new CallEvent, oldest first).
 */
export function callStreamUrl(callId: string, organization: string, baseUrl = ''): string {
  const q = new URLSearchParams({ organization });
  return `${baseUrl.replace(/\/+$/, '')}/v1/calls/${encodeURIComponent(callId)}/stream?${q}`;
}
