// Calls end to end: create (with an Idempotency-Key of the SDK's own, reused on a retry),
// read, follow, cancel; and the typed errors of what the server refuses.
import { describe, expect, test } from 'vitest';
import {
  AuthenticationError,
  BadRequestError,
  ConflictError,
  ConnectionError,
  NotFoundError,
  Pushdial,
  PushdialError,
  TERMINAL_CALL_STATUSES,
  UnprocessableEntityError,
  type Call,
} from '../src/index.js';
import { client, eventually, freshNumber, needServer, recordingFetch } from './support.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

async function settled(pd: Pushdial, id: string): Promise<Call> {
  return eventually(`call ${id} to end`, async () => {
    const call = await pd.calls.get(id);
    return TERMINAL_CALL_STATUSES.includes(call.status) ? call : undefined;
  });
}

describe('calls', () => {
  test('a call is created with a generated Idempotency-Key, read back and followed to completed', async () => {
    const { agentId } = needServer();
    const { attempts, fetch } = recordingFetch();
    const pd = client({ fetch });
    const to = freshNumber();

    const call = await pd.calls.create({ to, agent_id: agentId, confirm: 'auto', metadata: { crm: 'lead-7' } });
    expect(call).toMatchObject({ object: 'call', to, agent_id: agentId, confirm: 'auto', metadata: { crm: 'lead-7' } });
    expect(attempts[0]!.headers.get('idempotency-key')).toMatch(UUID);
    expect(attempts[0]!.headers.get('authorization')).toMatch(/^Bearer pd_sk_/);

    const done = await settled(pd, call.id);
    expect(done.status).toBe('completed');
    const timeline = (await pd.calls.events(call.id)).filter((e) => e.kind === 'status').map((e) => e.status);
    expect(timeline).toEqual(['queued', 'offered', 'delivered', 'accepted', 'dialing', 'connected', 'completed']);

    // Two creates without a key of their own are two calls: each got its own key.
    const again = await pd.calls.create({ to: freshNumber(), agent_id: agentId, confirm: 'auto' });
    expect(again.id).not.toBe(call.id);
    expect(attempts.at(-1)!.headers.get('idempotency-key')).not.toBe(attempts[0]!.headers.get('idempotency-key'));
    await settled(pd, again.id);
  });

  test('a create whose answer was lost is sent again with the same key, and one call exists', async () => {
    const { agentId } = needServer();
    // The first answer is dropped after the server wrote the call: a network failure as the caller sees it.
    const { attempts, fetch } = recordingFetch((attempt, index, response) => {
      if (attempt.method === 'POST' && index === 0) throw new TypeError('fetch failed: connection reset');
      return response;
    });
    const pd = client({ fetch, retry: { baseDelayMs: 10 } });
    const to = freshNumber();

    const call = await pd.calls.create({ to, agent_id: agentId, confirm: 'auto' });
    const posts = attempts.filter((a) => a.method === 'POST');
    expect(posts).toHaveLength(2);
    expect(posts[0]!.status).toBe(201);
    expect(posts[1]!.headers.get('idempotency-key')).toBe(posts[0]!.headers.get('idempotency-key'));

    const toThatNumber = (await pd.calls.list({ agent_id: agentId, limit: 100 }).toArray()).filter((c) => c.to === to);
    expect(toThatNumber.map((c) => c.id)).toEqual([call.id]);

    // A key given by the caller is the one sent, and repeating it answers the first call.
    const key = `order-${Date.now()}`;
    const first = await pd.calls.create({ to: freshNumber(), agent_id: agentId, confirm: 'auto' }, { idempotencyKey: key });
    expect(attempts.at(-1)!.headers.get('idempotency-key')).toBe(key);
    await settled(pd, first.id);
  });

  test('a call not yet dialing is canceled, and canceling it again answers the same call', async () => {
    const { agentId, slowSuffix } = needServer();
    const pd = client();
    // The phone asks its person about this number for a while: the call waits, cancelable.
    const call = await pd.calls.create({ to: freshNumber(slowSuffix), agent_id: agentId });
    const canceled = await pd.calls.cancel(call.id);
    expect(canceled).toMatchObject({ id: call.id, status: 'canceled' });
    const twice = await pd.calls.cancel(call.id);
    expect(twice).toMatchObject({ id: call.id, status: 'canceled' });
    expect((await pd.calls.get(call.id)).status).toBe('canceled');
  });

  test('refusals are typed errors carrying the problem document', async () => {
    const { agentId, url } = needServer();
    const pd = client();

    // 409: a completed call cannot be canceled.
    const call = await pd.calls.create({ to: freshNumber(), agent_id: agentId, confirm: 'auto' });
    await settled(pd, call.id);
    const conflict = await pd.calls.cancel(call.id).catch((e: unknown) => e);
    expect(conflict).toBeInstanceOf(ConflictError);
    expect(conflict).toBeInstanceOf(PushdialError);
    const c = conflict as ConflictError;
    expect(c.status).toBe(409);
    expect(c.code).toBe('call_not_cancelable');
    expect(c.problem).toMatchObject({ status: 409, code: 'call_not_cancelable', errors: [] });
    expect(c.problem.request_id).toMatch(/.+/);
    expect(c.requestId).toBe(c.problem.request_id);
    expect(c.retryAfter).toBeUndefined();
    expect(c.message).toBe(c.detail);

    // 409 no_device_reachable: an agent without a phone; nothing was written.
    const lonely = await pd.agents.create({ name: 'Nobody home' });
    const before = (await pd.calls.list({ agent_id: lonely.id }).toArray()).length;
    const unreachable = await pd.calls.create({ to: freshNumber(), agent_id: lonely.id }).catch((e: unknown) => e);
    expect(unreachable).toBeInstanceOf(ConflictError);
    expect((unreachable as ConflictError).code).toBe('no_device_reachable');
    expect((await pd.calls.list({ agent_id: lonely.id }).toArray()).length).toBe(before);

    // 400 naming the field that is wrong; 422 for a number the organization will not call.
    const malformed = await pd.calls.create({ to: 'not a number', agent_id: agentId }).catch((e: unknown) => e);
    expect(malformed).toBeInstanceOf(BadRequestError);
    expect((malformed as BadRequestError).fieldError('to')).toMatch(/.+/);
    const premium = await pd.calls.create({ to: '+19005550123', agent_id: agentId }).catch((e: unknown) => e);
    expect(premium).toBeInstanceOf(UnprocessableEntityError);
    expect((premium as UnprocessableEntityError).code).toBe('number_type_blocked');

    // 404: an endpoint that was deleted.
    const endpoint = await pd.webhookEndpoints.create({ url: 'https://example.com/pushdial' });
    await pd.webhookEndpoints.delete(endpoint.id);
    const gone = await pd.webhookEndpoints.get(endpoint.id).catch((e: unknown) => e);
    expect(gone).toBeInstanceOf(NotFoundError);
    expect((gone as NotFoundError).status).toBe(404);

    // 401: a wrong key.
    const stranger = new Pushdial({ baseUrl: url, apiKey: 'pd_sk_wrong' });
    const denied = await stranger.calls.get(call.id).catch((e: unknown) => e);
    expect(denied).toBeInstanceOf(AuthenticationError);
    expect((denied as AuthenticationError).status).toBe(401);
  });

  test('network failures: a POST without an Idempotency-Key is sent once, a GET is retried', async () => {
    const { agentId } = needServer();
    const { attempts, fetch } = recordingFetch(undefined, () => {
      throw new TypeError('fetch failed: connection refused');
    });
    const pd = client({ fetch, retry: { baseDelayMs: 5 } });

    // A pairing code has no Idempotency-Key: sending it twice could make two.
    const once = await pd.pairingCodes.create({ agent_id: agentId }).catch((e: unknown) => e);
    expect(once).toBeInstanceOf(ConnectionError);
    expect((once as ConnectionError).status).toBe(0);
    expect((once as ConnectionError).code).toBe('network_error');
    expect(attempts).toHaveLength(1);

    // A read is tried 1 + maxRetries (2) times before failing.
    const read = await pd.agents.get(agentId).catch((e: unknown) => e);
    expect(read).toBeInstanceOf(ConnectionError);
    expect(attempts).toHaveLength(4);
    expect(attempts.slice(1).every((a) => a.method === 'GET')).toBe(true);
  });
});
