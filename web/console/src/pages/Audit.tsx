import { useState } from 'preact/hooks';
import { api, unwrap } from '../api';
import { ErrorNote, Field, LoadMore, Loading, PageTitle, TableWrap, Time, usePaged } from '../components/ui';

const ACTIONS = [
  'user.signed_in',
  'user.signed_out',
  'user.sign_in_failed',
  'user.identity_linked',
  'user.identity_unlinked',
  'organization.created',
  'organization.dialing_updated',
  'member.invited',
  'member.joined',
  'member.left',
  'member.removed',
  'member.role_changed',
  'invitation.revoked',
  'api_key.created',
  'api_key.rolled',
  'api_key.revoked',
  'webhook_endpoint.created',
  'webhook_endpoint.updated',
  'webhook_endpoint.deleted',
  'webhook_endpoint.secret_rotated',
  'push_credential.uploaded',
  'push_credential.deleted',
  'device.pairing_code_created',
  'device.paired',
  'device.revoked',
  'agent.created',
  'blocked_number.created',
  'blocked_number.deleted',
  'widget.created',
  'widget.updated',
  'widget.deleted',
];

export function Audit() {
  const [action, setAction] = useState('');
  const [applied, setApplied] = useState('');
  const events = usePaged(
    (after) => unwrap(api.GET('/v1/audit_events', { params: { query: { limit: 50, ...(applied ? { action: applied } : {}), ...(after ? { starting_after: after } : {}) } } })),
    [applied],
  );
  return (
    <main id="main" data-testid="audit-page">
      <PageTitle>Audit log</PageTitle>
      <form
        class="filters card"
        aria-label="Filter the audit log"
        onSubmit={(e) => {
          e.preventDefault();
          setApplied(action.trim());
        }}
      >
        <Field label="Action" hint="Exact action name; pick one or type it.">
          {(p) => (
            <>
              <input {...p} list="audit-actions" value={action} onInput={(e) => setAction(e.currentTarget.value)} data-testid="audit-action" placeholder="all actions" />
              <datalist id="audit-actions">
                {ACTIONS.map((a) => (
                  <option key={a} value={a} />
                ))}
              </datalist>
            </>
          )}
        </Field>
        <div class="row">
          <button type="submit" class="btn" data-testid="audit-filter">
            Filter
          </button>
          {applied ? (
            <button
              type="button"
              class="btn btn-quiet"
              onClick={() => {
                setAction('');
                setApplied('');
              }}
            >
              Clear
            </button>
          ) : null}
        </div>
      </form>
      <ErrorNote error={events.error} />
      {events.items.length > 0 ? (
        <TableWrap label="Audit events">
          <thead>
            <tr>
              <th scope="col">Time</th>
              <th scope="col">Action</th>
              <th scope="col">Actor</th>
              <th scope="col">Target</th>
              <th scope="col">From</th>
              <th scope="col">Details</th>
            </tr>
          </thead>
          <tbody>
            {events.items.map((e) => (
              <tr key={e.id} data-testid="audit-row" data-action={e.action}>
                <td>
                  <Time iso={e.created_at} />
                </td>
                <td>
                  <code>{e.action}</code>
                </td>
                <td>
                  {e.actor_type}
                  {e.actor_id ? <div class="mono small">{e.actor_id}</div> : null}
                </td>
                <td>
                  {e.target_type ?? '—'}
                  {e.target_id ? <div class="mono small">{e.target_id}</div> : null}
                </td>
                <td>
                  {e.ip ?? '—'}
                  {e.user_agent ? (
                    <div class="muted small ua" title={e.user_agent}>
                      {e.user_agent}
                    </div>
                  ) : null}
                </td>
                <td>
                  {e.data && typeof e.data === 'object' && Object.keys(e.data as object).length > 0 ? (
                    <details>
                      <summary class="small">Data</summary>
                      <pre class="code-block">{JSON.stringify(e.data, null, 2)}</pre>
                    </details>
                  ) : (
                    <span class="muted">—</span>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </TableWrap>
      ) : !events.loading ? (
        <p class="muted">No audit events{applied ? ` for ${applied}` : ''}.</p>
      ) : null}
      {events.loading ? <Loading /> : null}
      <LoadMore paged={events} testid="audit-more" />
    </main>
  );
}
