import type { ApiKey } from '@pushdial/sdk';
import { useState } from 'preact/hooks';
import { api, unwrap } from '../api';
import { useSession } from '../session';
import { ConfirmButton, ErrorNote, Field, LoadMore, Loading, PageTitle, SecretOnce, StatusBadge, TableWrap, Time, usePaged, useAsync } from '../components/ui';

const OVERLAPS: { label: string; seconds: number }[] = [
  { label: 'stop the old key now', seconds: 0 },
  { label: 'keep the old key 1 hour', seconds: 3600 },
  { label: 'keep the old key 24 hours', seconds: 86400 },
  { label: 'keep the old key 3 days', seconds: 3 * 86400 },
  { label: 'keep the old key 7 days', seconds: 7 * 86400 },
];

function RollControl({ k, onRolled }: { k: ApiKey; onRolled: (fresh: ApiKey) => void }) {
  const [open, setOpen] = useState(false);
  const [overlap, setOverlap] = useState(86400);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  if (!open) {
    return (
      <button type="button" class="btn btn-small" onClick={() => setOpen(true)} data-testid="apikey-roll">
        Roll
      </button>
    );
  }
  return (
    <span class="confirm" role="group" aria-label={`Roll ${k.name}`}>
      <label class="sr-only" for={`overlap-${k.id}`}>
        Overlap for the old key
      </label>
      <select id={`overlap-${k.id}`} value={overlap} onChange={(e) => setOverlap(Number(e.currentTarget.value))} data-testid="apikey-roll-overlap">
        {OVERLAPS.map((o) => (
          <option key={o.seconds} value={o.seconds}>
            {o.label}
          </option>
        ))}
      </select>{' '}
      <button
        type="button"
        class="btn btn-small btn-primary"
        disabled={busy}
        data-testid="apikey-roll-yes"
        onClick={async () => {
          setBusy(true);
          setError(null);
          try {
            onRolled(await unwrap(api.POST('/v1/api_keys/{api_key_id}/roll', { params: { path: { api_key_id: k.id } }, body: { expires_in: overlap } })));
            setOpen(false);
          } catch (e) {
            setError(e);
          } finally {
            setBusy(false);
          }
        }}
      >
        Roll key
      </button>{' '}
      <button type="button" class="btn btn-small btn-quiet" onClick={() => setOpen(false)}>
        Cancel
      </button>
      <ErrorNote error={error} />
    </span>
  );
}

export function ApiKeys() {
  const { me, isOwner } = useSession();
  const [includeInactive, setIncludeInactive] = useState(false);
  const keys = usePaged(
    (after) => unwrap(api.GET('/v1/api_keys', { params: { query: { limit: 100, include_inactive: includeInactive, ...(after ? { starting_after: after } : {}) } } })),
    [includeInactive],
  );
  const members = useAsync(
    () => unwrap(api.GET('/v1/members', { params: { query: { limit: 100 } } })).then((p) => new Map(p.data.map((m) => [m.user_id, m.name || m.email || m.user_id]))),
    [],
  );
  const [name, setName] = useState('');
  const [type, setType] = useState<'secret' | 'publishable'>('secret');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [secret, setSecret] = useState<{ value: string; label: string } | null>(null);

  const showSecret = (k: ApiKey, verb: string) => {
    if (k.secret) setSecret({ value: k.secret, label: `${verb} ${k.type} key “${k.name}”` });
  };

  return (
    <main id="main" data-testid="apikeys-page">
      <PageTitle>API keys</PageTitle>
      <p>
        Secret keys (<code>pd_sk_…</code>) give a server the API access of the member who created them, with that member's
        role as it is now; they stop working when that member leaves the organization (an owner may take a key over first to
        keep it). Keep them out of browsers and code repositories. Publishable keys (<code>pd_pk_…</code>) only open the widget
        API.
      </p>
      {secret ? <SecretOnce value={secret.value} label={secret.label} testid="apikey-secret" onDone={() => setSecret(null)} /> : null}
      <form
        class="card"
        aria-labelledby="newkey-title"
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setError(null);
          try {
            const k = await unwrap(api.POST('/v1/api_keys', { body: { name: name.trim(), type } }));
            showSecret(k, 'New');
            setName('');
            void keys.reload();
          } catch (err) {
            setError(err);
          } finally {
            setBusy(false);
          }
        }}
      >
        <h2 id="newkey-title" class="h3">
          Create a key
        </h2>
        <div class="row-fields">
          <Field label="Name" hint="What it is for, e.g. “CRM integration”.">
            {(p) => <input {...p} required maxLength={100} value={name} onInput={(e) => setName(e.currentTarget.value)} data-testid="apikey-name" />}
          </Field>
          <Field label="Type">
            {(p) => (
              <select {...p} value={type} onChange={(e) => setType(e.currentTarget.value as 'secret' | 'publishable')} data-testid="apikey-type">
                <option value="secret">secret (server to server)</option>
                <option value="publishable">publishable (widget)</option>
              </select>
            )}
          </Field>
        </div>
        <ErrorNote error={error} />
        <button class="btn btn-primary" type="submit" disabled={busy || !name.trim()} data-testid="apikey-create">
          {busy ? 'Creating…' : 'Create key'}
        </button>
      </form>
      <section class="card" aria-labelledby="keys-title">
        <div class="row space-between">
          <h2 id="keys-title" class="h3">
            Keys
          </h2>
          <label class="check">
            <input type="checkbox" checked={includeInactive} onChange={(e) => setIncludeInactive(e.currentTarget.checked)} data-testid="apikey-include-inactive" /> Show
            revoked and expired
          </label>
        </div>
        <ErrorNote error={keys.error} />
        {keys.items.length > 0 ? (
          <TableWrap label="API keys">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Key</th>
                <th scope="col">Created by</th>
                <th scope="col">Created</th>
                <th scope="col">Last used</th>
                <th scope="col">Status</th>
                <th scope="col">
                  <span class="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {keys.items.map((k) => (
                <tr key={k.id} data-testid="apikey-row" data-key-id={k.id} data-status={k.status}>
                  <td>
                    {k.name} <span class="muted small">{k.type}</span>
                  </td>
                  <td class="mono">{k.redacted}</td>
                  <td>
                    {k.created_by ? members.data?.get(k.created_by) ?? k.created_by : <span class="muted">organization</span>}
                    {k.type === 'secret' ? (
                      <span class="muted small" data-testid="apikey-role">
                        {' '}
                        {k.role ? `acts as ${k.role}` : 'creator gone'}
                      </span>
                    ) : null}
                  </td>
                  <td>
                    <Time iso={k.created_at} />
                  </td>
                  <td>{k.last_used_at ? <Time iso={k.last_used_at} mode="relative" /> : <span class="muted">never</span>}</td>
                  <td>
                    <StatusBadge status={k.status} />
                    {k.expires_at && k.status === 'expiring' ? (
                      <span class="muted small">
                        {' '}
                        until <Time iso={k.expires_at} />
                      </span>
                    ) : null}
                  </td>
                  <td class="actions">
                    {k.status === 'active' ? (
                      <>
                        <RollControl
                          k={k}
                          onRolled={(fresh) => {
                            showSecret(fresh, 'Rolled');
                            void keys.reload();
                          }}
                        />{' '}
                        {isOwner && k.type === 'secret' && k.created_by && k.created_by !== me?.id ? (
                          <>
                            <ConfirmButton
                              label="Take over"
                              confirm={`Make yourself the creator of “${k.name}”? It then acts as you, and keeps working when its creator leaves.`}
                              testid="apikey-transfer"
                              onConfirm={async () => {
                                const r = await unwrap(api.POST('/v1/api_keys/{api_key_id}/transfer', { params: { path: { api_key_id: k.id } } }));
                                keys.setItems((items) => items.map((x) => (x.id === r.id ? r : x)));
                              }}
                            />{' '}
                          </>
                        ) : null}
                        <ConfirmButton
                          label="Revoke"
                          confirm={`Revoke “${k.name}”? Requests with it fail at once.`}
                          testid="apikey-revoke"
                          onConfirm={async () => {
                            const r = await unwrap(api.DELETE('/v1/api_keys/{api_key_id}', { params: { path: { api_key_id: k.id } } }));
                            keys.setItems((items) => (includeInactive ? items.map((x) => (x.id === r.id ? r : x)) : items.filter((x) => x.id !== r.id)));
                          }}
                        />
                      </>
                    ) : k.status === 'expiring' ? (
                      <ConfirmButton
                        label="Revoke"
                        confirm="Stop this key now?"
                        testid="apikey-revoke"
                        onConfirm={async () => {
                          await unwrap(api.DELETE('/v1/api_keys/{api_key_id}', { params: { path: { api_key_id: k.id } } }));
                          void keys.reload();
                        }}
                      />
                    ) : null}
                  </td>
                </tr>
              ))}
            </tbody>
          </TableWrap>
        ) : !keys.loading ? (
          <p class="muted">No keys yet.</p>
        ) : null}
        {keys.loading ? <Loading /> : null}
        <LoadMore paged={keys} />
      </section>
    </main>
  );
}
