import type { Agent } from '@pushdial/sdk';
import { Fragment } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api, unwrap } from '../api';
import { LiveCallPanel, useLiveCall } from '../components/CallTimeline';
import { ErrorNote, Field, LoadMore, Loading, PageTitle, StatusBadge, TableWrap, Time, useAsync, usePaged } from '../components/ui';
import { Link } from '../router';
import { useSession } from '../session';
import { type Callback, listCallbacks } from '../widgets-api';

const STATUSES = ['queued', 'offered', 'delivered', 'accepted', 'declined', 'dialing', 'connected', 'completed', 'failed', 'canceled', 'expired'];

/** Agents by id, for admins (names in tables and the agent filter). */
export function useAgents(enabled: boolean) {
  return useAsync(async () => {
    if (!enabled) return new Map<string, Agent>();
    const all: Agent[] = [];
    let after: string | undefined;
    for (let i = 0; i < 10; i++) {
      const page = await unwrap(api.GET('/v1/agents', { params: { query: { limit: 100, ...(after ? { starting_after: after } : {}) } } }));
      all.push(...page.data);
      if (!page.has_more || page.data.length === 0) break;
      after = page.data[page.data.length - 1]?.id;
    }
    return new Map(all.map((a) => [a.id, a]));
  }, [enabled]);
}

/** The instant a local calendar day (`YYYY-MM-DD`) starts, `days` later, in RFC 3339. */
function dayStart(day: string, days = 0): string {
  const [y, m, d] = day.split('-').map(Number) as [number, number, number];
  return new Date(y, m - 1, d + days).toISOString();
}

function Callbacks() {
  const [items, setItems] = useState<Callback[]>([]);
  const [hasMore, setHasMore] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(true);
  const [status, setStatus] = useState('');
  const load = async (after?: string) => {
    setLoading(true);
    try {
      const page = await listCallbacks(after);
      setItems((prev) => (after ? [...prev, ...page.data] : page.data));
      setHasMore(page.has_more);
      setError(null);
    } catch (e) {
      setError(e);
    } finally {
      setLoading(false);
    }
  };
  useEffect(() => {
    void load();
  }, []);
  const shown = status ? items.filter((c) => c.status === status) : items;
  return (
    <section class="card" aria-labelledby="callbacks-title" data-testid="callbacks">
      <h2 id="callbacks-title" class="h3">
        Visitor callbacks (widget)
      </h2>
      <div class="filters">
        <Field label="Status">
          {(p) => (
            <select {...p} value={status} onChange={(e) => setStatus(e.currentTarget.value)} data-testid="callbacks-status">
              <option value="">All</option>
              {['scheduled', 'failed', 'calling', 'connected', 'completed'].map((s) => (
                <option key={s} value={s}>
                  {s}
                </option>
              ))}
            </select>
          )}
        </Field>
      </div>
      <ErrorNote error={error} />
      {shown.length > 0 ? (
        <TableWrap label="Visitor callbacks">
          <thead>
            <tr>
              <th scope="col">Requested</th>
              <th scope="col">Visitor</th>
              <th scope="col">Number</th>
              <th scope="col">Status</th>
              <th scope="col">Call</th>
            </tr>
          </thead>
          <tbody>
            {shown.map((c) => (
              <tr key={c.id} data-testid="callback-row" data-status={c.status}>
                <td>
                  <Time iso={c.created_at} />
                </td>
                <td>{c.name || <span class="muted">—</span>}</td>
                <td class="mono">{c.phone}</td>
                <td>
                  <StatusBadge status={c.status} />
                </td>
                <td>{c.call_id ? <Link to={`/calls/${c.call_id}`}>{c.call_id}</Link> : <span class="muted">—</span>}</td>
              </tr>
            ))}
          </tbody>
        </TableWrap>
      ) : !loading && !error ? (
        <p class="muted">No callback requests{status ? ` with status ${status}` : ''}.</p>
      ) : null}
      {loading ? <Loading /> : null}
      {hasMore ? (
        <button type="button" class="btn" onClick={() => load(items[items.length - 1]?.id)} disabled={loading}>
          Load more
        </button>
      ) : null}
    </section>
  );
}

export function Calls() {
  const { isAdmin } = useSession();
  const agents = useAgents(isAdmin);
  const [status, setStatus] = useState('');
  const [agentId, setAgentId] = useState('');
  const [from, setFrom] = useState('');
  const [to, setTo] = useState('');
  const calls = usePaged(
    (after) =>
      unwrap(
        api.GET('/v1/calls', {
          params: {
            query: {
              limit: 50,
              ...(status ? { status } : {}),
              ...(agentId ? { agent_id: agentId } : {}),
              ...(from ? { created_gte: dayStart(from) } : {}),
              ...(to ? { created_lt: dayStart(to, 1) } : {}),
              ...(after ? { starting_after: after } : {}),
            },
          },
        }),
      ),
    [status, agentId, from, to],
  );
  const agentName = (id: string) => agents.data?.get(id)?.name ?? id;

  return (
    <main id="main" data-testid="calls-page">
      <PageTitle>Calls</PageTitle>
      <form class="filters card" onSubmit={(e) => e.preventDefault()} aria-label="Filter calls">
        <Field label="Status">
          {(p) => (
            <select {...p} value={status} onChange={(e) => setStatus(e.currentTarget.value)} data-testid="calls-filter-status">
              <option value="">All</option>
              {STATUSES.map((s) => (
                <option key={s} value={s}>
                  {s}
                </option>
              ))}
            </select>
          )}
        </Field>
        {isAdmin ? (
          <Field label="Agent">
            {(p) => (
              <select {...p} value={agentId} onChange={(e) => setAgentId(e.currentTarget.value)} data-testid="calls-filter-agent">
                <option value="">Everyone</option>
                {[...(agents.data?.values() ?? [])].map((a) => (
                  <option key={a.id} value={a.id}>
                    {a.name}
                  </option>
                ))}
              </select>
            )}
          </Field>
        ) : null}
        <Field label="From">{(p) => <input {...p} type="date" value={from} onInput={(e) => setFrom(e.currentTarget.value)} data-testid="calls-filter-from" />}</Field>
        <Field label="To">{(p) => <input {...p} type="date" value={to} onInput={(e) => setTo(e.currentTarget.value)} data-testid="calls-filter-to" />}</Field>
      </form>
      <ErrorNote error={calls.error} />
      {calls.items.length > 0 ? (
        <TableWrap label="Calls">
          <thead>
            <tr>
              <th scope="col">Created</th>
              <th scope="col">Number</th>
              <th scope="col">Status</th>
              {isAdmin ? <th scope="col">Agent</th> : null}
              <th scope="col">Duration</th>
            </tr>
          </thead>
          <tbody>
            {calls.items.map((c) => (
              <tr key={c.id} data-testid="call-row" data-call-id={c.id} data-status={c.status}>
                <td>
                  <Link to={`/calls/${c.id}`} data-testid="call-link">
                    <Time iso={c.created_at} />
                  </Link>
                </td>
                <td class="mono">{c.to}</td>
                <td>
                  <StatusBadge status={c.status} />
                  {c.reason ? <span class="muted small"> {c.reason.replace(/_/g, ' ')}</span> : null}
                </td>
                {isAdmin ? <td>{agentName(c.agent_id)}</td> : null}
                <td>{c.duration_s != null ? `${c.duration_s} s` : <span class="muted">—</span>}</td>
              </tr>
            ))}
          </tbody>
        </TableWrap>
      ) : !calls.loading && !calls.error ? (
        <p class="muted" data-testid="calls-empty">
          No calls{status || agentId || from || to ? ' match these filters' : ' yet'}
          .
        </p>
      ) : null}
      {calls.loading ? <Loading /> : null}
      <LoadMore paged={calls} testid="calls-more" />
      {isAdmin ? <Callbacks /> : null}
    </main>
  );
}

export function CallDetail({ id }: { id: string }) {
  const { isAdmin } = useSession();
  const agents = useAgents(isAdmin);
  const live = useLiveCall(id);
  const c = live.call;
  return (
    <main id="main" data-testid="call-page">
      <p>
        <Link to="/calls">← Calls</Link>
      </p>
      <PageTitle>Call {id}</PageTitle>
      {!c && !live.error ? <Loading /> : null}
      {!c ? <ErrorNote error={live.error} /> : null}
      {c ? (
        <div class="grid-2">
          <div class="card">
            <LiveCallPanel live={live} />
          </div>
          <section class="card" aria-labelledby="call-facts">
            <h2 id="call-facts" class="h3">
              Details
            </h2>
            <dl class="facts">
              <dt>Number</dt>
              <dd class="mono">{c.to}</dd>
              <dt>Agent</dt>
              <dd>{agents.data?.get(c.agent_id)?.name ?? <span class="mono">{c.agent_id}</span>}</dd>
              <dt>Device</dt>
              <dd class="mono">{c.device_id ?? '—'}</dd>
              <dt>Confirm</dt>
              <dd>{c.confirm === 'auto' ? 'dial at once' : 'ask on the phone'}</dd>
              <dt>Created</dt>
              <dd>
                <Time iso={c.created_at} />
              </dd>
              <dt>Updated</dt>
              <dd>
                <Time iso={c.updated_at} />
              </dd>
              <dt>Expires</dt>
              <dd>
                <Time iso={c.expires_at} />
              </dd>
              {c.duration_s != null ? (
                <>
                  <dt>Duration</dt>
                  <dd>{c.duration_s} s</dd>
                </>
              ) : null}
              {c.reason ? (
                <>
                  <dt>Reason</dt>
                  <dd>{c.reason.replace(/_/g, ' ')}</dd>
                </>
              ) : null}
              {Object.entries(c.metadata ?? {}).map(([k, v]) => (
                <Fragment key={k}>
                  <dt>
                    metadata.<span class="mono">{k}</span>
                  </dt>
                  <dd>{v}</dd>
                </Fragment>
              ))}
            </dl>
          </section>
        </div>
      ) : null}
      {c && live.events.length > 0 ? (
        <section class="card" aria-labelledby="events-title">
          <h2 id="events-title" class="h3">
            Events
          </h2>
          <TableWrap label="Call events">
            <thead>
              <tr>
                <th scope="col">Time</th>
                <th scope="col">Kind</th>
                <th scope="col">Status</th>
                <th scope="col">Observed</th>
                <th scope="col">Reason</th>
                <th scope="col">Device</th>
              </tr>
            </thead>
            <tbody>
              {live.events.map((e) => (
                <tr key={e.id} data-testid="call-event-row" data-status={e.status}>
                  <td>
                    <Time iso={e.created_at} />
                  </td>
                  <td>
                    {e.kind}
                    {e.provider ? ` (${e.provider})` : ''}
                  </td>
                  <td>{e.status}</td>
                  <td>{e.observed ? 'observed' : 'inferred'}</td>
                  <td>{e.reason ?? '—'}</td>
                  <td class="mono">{e.device_id ?? '—'}</td>
                </tr>
              ))}
            </tbody>
          </TableWrap>
        </section>
      ) : null}
    </main>
  );
}
