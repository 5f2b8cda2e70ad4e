import type { WebhookEndpoint } from '@pushdial/sdk';
import { useState } from 'preact/hooks';
import { api, unwrap } from '../api';
import { ConfirmButton, ErrorNote, Field, LoadMore, Loading, PageTitle, SecretOnce, StatusBadge, TableWrap, Time, useAsync, usePaged } from '../components/ui';
import { Link, navigate } from '../router';

export const EVENT_TYPES = [
  'call.queued',
  'call.offered',
  'call.delivered',
  'call.accepted',
  'call.dialing',
  'call.connected',
  'call.completed',
  'call.declined',
  'call.failed',
  'call.canceled',
  'call.expired',
  'device.reachable',
  'device.unreachable',
  'endpoint.disabled',
];

function EventTypePicker({ value, onChange }: { value: string[]; onChange: (v: string[]) => void }) {
  return (
    <fieldset class="field">
      <legend>Event types</legend>
      <small class="hint">None checked: every event type, including ones added later.</small>
      <div class="checks">
        {EVENT_TYPES.map((t) => (
          <label key={t} class="check">
            <input
              type="checkbox"
              checked={value.includes(t)}
              data-testid={`webhook-type-${t}`}
              onChange={(e) => onChange(e.currentTarget.checked ? [...value, t] : value.filter((x) => x !== t))}
            />{' '}
            <code>{t}</code>
          </label>
        ))}
      </div>
    </fieldset>
  );
}

export function Webhooks() {
  const endpoints = usePaged((after) => unwrap(api.GET('/v1/webhook_endpoints', { params: { query: { limit: 100, ...(after ? { starting_after: after } : {}) } } })), []);
  const [url, setUrl] = useState('');
  const [description, setDescription] = useState('');
  const [types, setTypes] = useState<string[]>([]);
  const [rate, setRate] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [created, setCreated] = useState<WebhookEndpoint | null>(null);
  return (
    <main id="main" data-testid="webhooks-page">
      <PageTitle>Webhooks</PageTitle>
      <p>
        Events are signed following the Standard Webhooks specification (<code>webhook-id</code>, <code>webhook-timestamp</code>,{' '}
        <code>webhook-signature</code>); verify them with the endpoint's <code>whsec_…</code> secret.
      </p>
      {created?.secret ? (
        <SecretOnce value={created.secret} label={`Signing secret of ${created.url}`} testid="webhook-secret" onDone={() => setCreated(null)} />
      ) : null}
      <section class="card" aria-labelledby="endpoints-title">
        <h2 id="endpoints-title" class="h3">
          Endpoints
        </h2>
        <ErrorNote error={endpoints.error} />
        {endpoints.items.length > 0 ? (
          <TableWrap label="Webhook endpoints">
            <thead>
              <tr>
                <th scope="col">URL</th>
                <th scope="col">Events</th>
                <th scope="col">State</th>
                <th scope="col">Created</th>
              </tr>
            </thead>
            <tbody>
              {endpoints.items.map((w) => (
                <tr key={w.id} data-testid="webhook-row" data-endpoint-id={w.id}>
                  <td>
                    <Link to={`/webhooks/${w.id}`} class="mono" data-testid="webhook-link">
                      {w.url}
                    </Link>
                    {w.description ? <div class="muted small">{w.description}</div> : null}
                  </td>
                  <td>{w.event_types.length === 0 ? 'all' : w.event_types.join(', ')}</td>
                  <td>
                    <StatusBadge status={w.enabled ? 'enabled' : 'disabled'} />
                    {w.failing_since ? <span class="muted small"> failing since <Time iso={w.failing_since} /></span> : null}
                  </td>
                  <td>
                    <Time iso={w.created_at} />
                  </td>
                </tr>
              ))}
            </tbody>
          </TableWrap>
        ) : !endpoints.loading ? (
          <p class="muted">No endpoints yet.</p>
        ) : null}
        {endpoints.loading ? <Loading /> : null}
        <LoadMore paged={endpoints} />
      </section>
      <form
        class="card"
        aria-labelledby="new-endpoint-title"
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setError(null);
          try {
            const w = await unwrap(
              api.POST('/v1/webhook_endpoints', {
                body: {
                  url: url.trim(),
                  ...(description.trim() ? { description: description.trim() } : {}),
                  ...(types.length ? { event_types: types } : {}),
                  ...(rate ? { rate_limit_per_s: Number(rate) } : {}),
                },
              }),
            );
            setCreated(w);
            setUrl('');
            setDescription('');
            setTypes([]);
            setRate('');
            void endpoints.reload();
          } catch (err) {
            setError(err);
          } finally {
            setBusy(false);
          }
        }}
      >
        <h2 id="new-endpoint-title" class="h3">
          Add an endpoint
        </h2>
        <Field label="URL" hint="https://… on a public address.">
          {(p) => <input {...p} type="url" required value={url} onInput={(e) => setUrl(e.currentTarget.value)} data-testid="webhook-url" placeholder="https://example.com/pushdial" />}
        </Field>
        <Field label="Description (optional)">
          {(p) => <input {...p} value={description} onInput={(e) => setDescription(e.currentTarget.value)} data-testid="webhook-description" />}
        </Field>
        <EventTypePicker value={types} onChange={setTypes} />
        <Field label="Rate limit (deliveries per second, optional)">
          {(p) => <input {...p} type="number" min={1} max={10000} value={rate} onInput={(e) => setRate(e.currentTarget.value)} data-testid="webhook-rate" />}
        </Field>
        <ErrorNote error={error} />
        <button class="btn btn-primary" type="submit" disabled={busy || !url.trim()} data-testid="webhook-create">
          {busy ? 'Adding…' : 'Add endpoint'}
        </button>
      </form>
    </main>
  );
}

const GRACE: { label: string; seconds: number }[] = [
  { label: 'old secret stops now', seconds: 0 },
  { label: 'old secret signs 1 more hour', seconds: 3600 },
  { label: 'old secret signs 24 more hours', seconds: 86400 },
  { label: 'old secret signs 7 more days', seconds: 604800 },
];

function Attempts({ endpointId }: { endpointId: string }) {
  const attempts = usePaged(
    (after) =>
      unwrap(
        api.GET('/v1/webhook_endpoints/{endpoint_id}/attempts', {
          params: { path: { endpoint_id: endpointId }, query: { limit: 50, ...(after ? { starting_after: Number(after) } : {}) } },
        }),
      ),
    [endpointId],
  );
  const [resent, setResent] = useState<Record<string, string>>({});
  const [error, setError] = useState<unknown>(null);
  return (
    <section class="card" aria-labelledby="attempts-title" data-testid="webhook-attempts">
      <div class="row space-between">
        <h2 id="attempts-title" class="h3">
          Delivery attempts
        </h2>
        <button type="button" class="btn btn-small" onClick={() => void attempts.reload()} data-testid="webhook-attempts-refresh">
          Refresh
        </button>
      </div>
      <ErrorNote error={attempts.error ?? error} />
      {attempts.items.length > 0 ? (
        <TableWrap label="Delivery attempts">
          <thead>
            <tr>
              <th scope="col">Time</th>
              <th scope="col">Event</th>
              <th scope="col">Attempt</th>
              <th scope="col">Result</th>
              <th scope="col">Duration</th>
              <th scope="col">
                <span class="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {attempts.items.map((a) => {
              const ok = a.status_code != null && a.status_code >= 200 && a.status_code < 300;
              return (
                <tr key={a.id} data-testid="attempt-row" data-event-id={a.event_id}>
                  <td>
                    <Time iso={a.created_at} />
                  </td>
                  <td class="mono small">{a.event_id}</td>
                  <td>{a.attempt}</td>
                  <td>
                    <StatusBadge status={ok ? 'succeeded' : 'failed'} /> {a.status_code ?? ''} {a.error ? <span class="muted small">{a.error}</span> : null}
                    {a.response_body ? (
                      <details>
                        <summary class="small">Response</summary>
                        <pre class="code-block">{a.response_body}</pre>
                      </details>
                    ) : null}
                  </td>
                  <td>{a.duration_ms} ms</td>
                  <td>
                    <button
                      type="button"
                      class="btn btn-small"
                      data-testid="attempt-resend"
                      onClick={async () => {
                        setError(null);
                        try {
                          await unwrap(
                            api.POST('/v1/webhook_endpoints/{endpoint_id}/events/{event_id}/resend', {
                              params: { path: { endpoint_id: endpointId, event_id: a.event_id } },
                            }),
                          );
                          setResent((r) => ({ ...r, [a.event_id]: 'queued' }));
                        } catch (e) {
                          setError(e);
                        }
                      }}
                    >
                      {resent[a.event_id] ? 'Resend queued' : 'Resend'}
                    </button>
                  </td>
                </tr>
              );
            })}
          </tbody>
        </TableWrap>
      ) : !attempts.loading ? (
        <p class="muted">No deliveries yet.</p>
      ) : null}
      {attempts.loading ? <Loading /> : null}
      <LoadMore paged={attempts} />
    </section>
  );
}

export function WebhookDetail({ id }: { id: string }) {
  const ep = useAsync(() => unwrap(api.GET('/v1/webhook_endpoints/{endpoint_id}', { params: { path: { endpoint_id: id } } })), [id]);
  const [error, setError] = useState<unknown>(null);
  const [info, setInfo] = useState<string | null>(null);
  const [secret, setSecret] = useState<string | null>(null);
  const [grace, setGrace] = useState(86400);
  const [edit, setEdit] = useState<{ url: string; description: string; types: string[]; rate: string } | null>(null);
  const w = ep.data;
  const act = async (f: () => Promise<unknown>, done?: string) => {
    setError(null);
    setInfo(null);
    try {
      await f();
      if (done) setInfo(done);
    } catch (e) {
      setError(e);
    }
  };
  const params = { params: { path: { endpoint_id: id } } };
  return (
    <main id="main" data-testid="webhook-page">
      <p>
        <Link to="/webhooks">← Webhooks</Link>
      </p>
      <PageTitle>Webhook endpoint</PageTitle>
      {ep.loading && !w ? <Loading /> : null}
      <ErrorNote error={ep.error} />
      {secret ? <SecretOnce value={secret} label="New signing secret" testid="webhook-secret" onDone={() => setSecret(null)} /> : null}
      {w ? (
        <>
          <section class="card" aria-label="Endpoint">
            <dl class="facts">
              <dt>URL</dt>
              <dd class="mono">{w.url}</dd>
              <dt>Description</dt>
              <dd>{w.description || '—'}</dd>
              <dt>Events</dt>
              <dd>{w.event_types.length ? w.event_types.join(', ') : 'all'}</dd>
              <dt>Rate limit</dt>
              <dd>{w.rate_limit_per_s ? `${w.rate_limit_per_s}/s` : 'none'}</dd>
              <dt>State</dt>
              <dd data-testid="webhook-state" data-enabled={String(w.enabled)}>
                <StatusBadge status={w.enabled ? 'enabled' : 'disabled'} />
                {w.disabled_reason ? <span class="muted"> {w.disabled_reason}</span> : null}
                {w.failing_since ? (
                  <span class="muted">
                    {' '}
                    failing since <Time iso={w.failing_since} />
                  </span>
                ) : null}
              </dd>
            </dl>
            <ErrorNote error={error} />
            {info ? (
              <p class="note note-ok" role="status" data-testid="webhook-info">
                {info}
              </p>
            ) : null}
            <div class="row wrap">
              <button
                type="button"
                class="btn"
                data-testid="webhook-toggle"
                onClick={() =>
                  act(async () => ep.setData(await unwrap(api.PATCH('/v1/webhook_endpoints/{endpoint_id}', { ...params, body: { enabled: !w.enabled } }))))
                }
              >
                {w.enabled ? 'Disable' : 'Enable'}
              </button>
              <button type="button" class="btn" data-testid="webhook-test" onClick={() => act(() => unwrap(api.POST('/v1/webhook_endpoints/{endpoint_id}/test', params)), 'Test event queued.')}>
                Send test event
              </button>
              <button
                type="button"
                class="btn"
                data-testid="webhook-edit"
                onClick={() => setEdit({ url: w.url, description: w.description ?? '', types: w.event_types, rate: w.rate_limit_per_s ? String(w.rate_limit_per_s) : '' })}
              >
                Edit
              </button>
              <ConfirmButton
                label="Delete"
                confirm="Delete this endpoint? Nothing more is delivered to it."
                testid="webhook-delete"
                onConfirm={async () => {
                  await unwrap(api.DELETE('/v1/webhook_endpoints/{endpoint_id}', params));
                  navigate('/webhooks');
                }}
              />
            </div>
          </section>
          {edit ? (
            <form
              class="card"
              aria-labelledby="edit-endpoint-title"
              onSubmit={(e) => {
                e.preventDefault();
                void act(async () => {
                  ep.setData(
                    await unwrap(
                      api.PATCH('/v1/webhook_endpoints/{endpoint_id}', {
                        ...params,
                        body: {
                          url: edit.url.trim(),
                          description: edit.description.trim(),
                          event_types: edit.types,
                          ...(edit.rate ? { rate_limit_per_s: Number(edit.rate) } : {}),
                        },
                      }),
                    ),
                  );
                  setEdit(null);
                }, 'Saved.');
              }}
            >
              <h2 id="edit-endpoint-title" class="h3">
                Edit endpoint
              </h2>
              <Field label="URL">{(p) => <input {...p} type="url" required value={edit.url} onInput={(e) => setEdit({ ...edit, url: e.currentTarget.value })} />}</Field>
              <Field label="Description">{(p) => <input {...p} value={edit.description} onInput={(e) => setEdit({ ...edit, description: e.currentTarget.value })} />}</Field>
              <EventTypePicker value={edit.types} onChange={(types) => setEdit({ ...edit, types })} />
              <Field label="Rate limit (per second)">
                {(p) => <input {...p} type="number" min={1} max={10000} value={edit.rate} onInput={(e) => setEdit({ ...edit, rate: e.currentTarget.value })} />}
              </Field>
              <div class="row">
                <button type="submit" class="btn btn-primary" data-testid="webhook-save">
                  Save
                </button>
                <button type="button" class="btn btn-quiet" onClick={() => setEdit(null)}>
                  Cancel
                </button>
              </div>
            </form>
          ) : null}
          <section class="card" aria-labelledby="rotate-title">
            <h2 id="rotate-title" class="h3">
              Signing secret
            </h2>
            <p>Rotating gives a new secret (shown once). During the grace period events carry both signatures.</p>
            <div class="row wrap">
              <label class="sr-only" for="grace">
                Grace period
              </label>
              <select id="grace" value={grace} onChange={(e) => setGrace(Number(e.currentTarget.value))} data-testid="webhook-rotate-grace">
                {GRACE.map((g) => (
                  <option key={g.seconds} value={g.seconds}>
                    {g.label}
                  </option>
                ))}
              </select>
              <ConfirmButton
                label="Rotate secret"
                confirm="Rotate the signing secret?"
                yes="Yes, rotate"
                testid="webhook-rotate"
                onConfirm={async () => {
                  const r = await unwrap(api.POST('/v1/webhook_endpoints/{endpoint_id}/rotate_secret', { ...params, body: { grace_period_s: grace } }));
                  if (r.secret) setSecret(r.secret);
                  ep.setData({ ...r, secret: null });
                }}
              />
            </div>
          </section>
          <Attempts endpointId={id} />
        </>
      ) : null}
    </main>
  );
}
