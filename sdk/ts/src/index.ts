/**
 * @pushdial/sdk — the TypeScript client of the pushdial public API, for Node 20+ and
 * browsers (fetch and Web Crypto only, no Node built-ins).
 *
 * Every path, parameter and body comes from the types generated from openapi/openapi.json
 * (`./schema`); requests go through openapi-fetch. Two layers:
 * - `new Pushdial({ baseUrl, apiKey })`: resources (`pd.calls.create`, `pd.calls.list`, …)
 *   with Idempotency-Keys, retries, pagination and typed errors;
 * - `createPushdial(...)`: the generated client itself (`pd.GET('/v1/me')`), with the same
 *   authentication and retries; `unwrap` turns its results into data or a PushdialError.
 *
 * Two ways to authenticate: a secret key (`pd_sk_…`), server to server; or, in the
 * browser on the deployment's own origin, the console's session cookie with
 * `organization: 'org_…'` (sent as `Pushdial-Organization`).
 */
import type { components } from './schema.js';

export type { components, operations, paths, webhooks } from './schema.js';
export {
  Agents,
  Calls,
  createPushdial,
  Devices,
  Events,
  newIdempotencyKey,
  ORGANIZATION_HEADER,
  PairingCodes,
  Pushdial,
  unwrap,
  WebhookEndpoints,
} from './client.js';
export type {
  CreateAgent,
  CreateCall,
  CreateOptions,
  CreateWebhookEndpoint,
  ListAgentsParams,
  ListCallsParams,
  ListDevicesParams,
  ListEventsParams,
  ListWebhookEndpointsParams,
  PushdialClient,
  PushdialOptions,
  RequestOptions,
  Schemas,
  UpdateWebhookEndpoint,
} from './client.js';
export {
  AuthenticationError,
  BadRequestError,
  ConflictError,
  ConnectionError,
  InternalServerError,
  isProblem,
  NotFoundError,
  parseRetryAfter,
  PayloadTooLargeError,
  PermissionDeniedError,
  ProblemError,
  PushdialError,
  RateLimitError,
  ServiceUnavailableError,
  UnprocessableEntityError,
} from './errors.js';
export type { Problem, ProblemField, ProblemInit, PushdialErrorOptions } from './errors.js';
export { PagePromise } from './pagination.js';
export type { Cursor, ListPage } from './pagination.js';
export { backoffDelay, isRetryable, retryingFetch } from './retry.js';
export type { RetryOptions } from './retry.js';
export { verifyWebhook, WebhookVerificationError } from './webhooks.js';
export type { WebhookEvent, WebhookEventType, WebhookHeaders, WebhookPayload } from './webhooks.js';

type Schemas = components['schemas'];
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

/** Call statuses after which nothing more happens. */
export const TERMINAL_CALL_STATUSES: readonly string[] = ['completed', 'declined', 'canceled', 'expired', 'failed'];

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
