/**
 * Webhook verification: pushdial signs each delivery per Standard Webhooks (`webhook-id`,
 * `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256>`, secrets `whsec_…`),
 * and this checks it with the reference implementation, the `standardwebhooks` package
 * (plain JavaScript: Node, browsers, workers and edge runtimes alike).
 */
import { Webhook, WebhookVerificationError as StandardError } from 'standardwebhooks';
import type { webhooks } from './schema.js';

/** The body of a delivery of event type `K`. */
export type WebhookPayload<K extends keyof webhooks> =
  NonNullable<webhooks[K]['post']['requestBody']>['content'] extends infer C ? C[keyof C] : never;

/** Any delivery's body: `{ id, type, created_at, org_id, data }`. */
export type WebhookEvent = { [K in keyof webhooks]: WebhookPayload<K> }[keyof webhooks];

/** The event types pushdial delivers. */
export type WebhookEventType = keyof webhooks;

/** A delivery's headers: a `Headers`, a plain object, or Node's `IncomingHttpHeaders`. */
export type WebhookHeaders =
  | Headers
  | Record<string, string | readonly string[] | undefined>
  | Iterable<readonly [string, string]>;

/** The delivery is not pushdial's, was changed, or is too old (more than 5 minutes off) to trust. */
export class WebhookVerificationError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'WebhookVerificationError';
  }
}

/**
 * Verifies one delivery and returns its event.
 *
 * `payload` is the request body exactly as received (a string or bytes: parse nothing
 * before verifying, since re-serialized JSON does not match the signature); `headers` the
 * request's headers; `secret` the endpoint's signing secret (`whsec_…`). After a rotation
 * a delivery carries a signature per secret, and either secret verifies it.
 *
 * Throws WebhookVerificationError when a header is missing, no signature matches, or the
 * timestamp is more than five minutes from now.
 *
 * ```ts
 * app.post('/pushdial', express.raw({ type: 'application/json' }), (req, res) => {
 *   const event = verifyWebhook(req.body, req.headers, process.env.PUSHDIAL_WEBHOOK_SECRET!);
 *   if (event.type === 'call.completed') { … }
 *   res.sendStatus(204);
 * });
 * ```
 */
export function verifyWebhook(payload: string | Uint8Array, headers: WebhookHeaders, secret: string): WebhookEvent {
  let webhook: Webhook;
  try {
    webhook = new Webhook(secret);
  } catch (e) {
    throw new WebhookVerificationError(`invalid webhook secret: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  try {
    return webhook.verify(payload, plainHeaders(headers)) as WebhookEvent;
  } catch (e) {
    if (e instanceof StandardError) throw new WebhookVerificationError(e.message, { cause: e });
    // A signed body that is not JSON (JSON.parse's SyntaxError) or not bytes.
    throw new WebhookVerificationError(`invalid webhook payload: ${e instanceof Error ? e.message : String(e)}`, {
      cause: e,
    });
  }
}

/** The three headers the check reads, by lower-case name. */
function plainHeaders(headers: WebhookHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  const put = (name: string, value: string | readonly string[] | undefined) => {
    if (value === undefined) return;
    // A header sent twice: its signatures are space-separated values of one list.
    out[name.toLowerCase()] = typeof value === 'string' ? value : value.join(' ');
  };
  if (typeof Headers !== 'undefined' && headers instanceof Headers) {
    headers.forEach((value, name) => put(name, value));
  } else if (Symbol.iterator in headers) {
    for (const [name, value] of headers as Iterable<readonly [string, string]>) put(name, value);
  } else {
    for (const [name, value] of Object.entries(headers)) put(name, value);
  }
  return out;
}
