// Webhook verification end to end: the server delivers signed events to a receiver here,
// and verifyWebhook accepts them as delivered (with Node's headers or a Headers object,
// with the secret before and after a rotation) and refuses anything changed.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { verifyWebhook, WebhookVerificationError } from '../src/index.js';
import { client, eventually } from './support.js';

interface Delivery {
  headers: IncomingHttpHeaders;
  body: Buffer;
}

describe('webhooks', () => {
  let server: Server;
  let url: string;
  const got: Delivery[] = [];
  beforeAll(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        got.push({ headers: req.headers, body: Buffer.concat(chunks) });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/pushdial`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  const next = (after: number) => eventually('a delivery', async () => got[after]);

  test('a delivery verifies and gives its event; a changed one does not', async () => {
    const pd = client();
    const endpoint = await pd.webhookEndpoints.create({ url, event_types: ['webhook.test'] });
    const secret = endpoint.secret!;
    expect(secret).toMatch(/^whsec_/);

    const n = got.length;
    await pd.webhookEndpoints.test(endpoint.id);
    const d = await next(n);

    // As Node's http gives it, and as a fetch Request's Headers.
    const event = verifyWebhook(d.body, d.headers, secret);
    expect(event.type).toBe('webhook.test');
    expect(event.id).toBe(d.headers['webhook-id']);
    const headers = new Headers(Object.entries(d.headers).map(([k, v]) => [k, String(v)] as [string, string]));
    expect(verifyWebhook(d.body.toString('utf8'), headers, secret)).toEqual(event);

    const refused = (payload: string | Uint8Array, h: Record<string, string | string[] | undefined>, s = secret) => {
      try {
        verifyWebhook(payload, h, s);
        return undefined;
      } catch (e) {
        return e;
      }
    };
    const tampered = d.body.toString('utf8').replace('webhook.test', 'call.completed');
    expect(refused(tampered, d.headers)).toBeInstanceOf(WebhookVerificationError);
    expect(refused(d.body, d.headers, 'whsec_' + Buffer.from('another secret of 32 bytes......').toString('base64'))).toBeInstanceOf(
      WebhookVerificationError,
    );
    expect(refused(d.body, { ...d.headers, 'webhook-timestamp': String(Number(d.headers['webhook-timestamp']) - 1) })).toBeInstanceOf(
      WebhookVerificationError,
    );
    const { 'webhook-signature': _, ...unsigned } = d.headers;
    expect(refused(d.body, unsigned)).toBeInstanceOf(WebhookVerificationError);
    expect(refused(d.body, d.headers, 'not a secret')).toBeInstanceOf(WebhookVerificationError);

    // After a rotation the deliveries carry both signatures: either secret verifies.
    const rotated = await pd.webhookEndpoints.rotateSecret(endpoint.id, { grace_period_s: 600 });
    const newSecret = rotated.secret!;
    expect(newSecret).not.toBe(secret);
    const m = got.length;
    await pd.webhookEndpoints.test(endpoint.id);
    const after = await next(m);
    expect(verifyWebhook(after.body, after.headers, newSecret).type).toBe('webhook.test');
    expect(verifyWebhook(after.body, after.headers, secret).type).toBe('webhook.test');

    await pd.webhookEndpoints.delete(endpoint.id);
  });
});
