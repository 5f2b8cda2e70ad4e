import { useMemo, useState } from 'preact/hooks';
import { ConfirmButton, CopyButton, ErrorNote, Field, Loading, PageTitle, TableWrap, Time, useAsync } from '../components/ui';
import { Link, navigate } from '../router';
import { useSession } from '../session';
import { type BusinessHours, createWidget, DAYS, type Day, deleteWidget, getWidget, listWidgets, updateWidget, type Widget, type WidgetInput } from '../widgets-api';
import { useAgents } from './Calls';

export function Widgets() {
  const widgets = useAsync(() => listWidgets(), []);
  return (
    <main id="main" data-testid="widgets-page">
      <PageTitle
        actions={
          <Link to="/widgets/new" class="btn btn-primary" data-testid="widget-new">
            New widget
          </Link>
        }
      >
        Widgets
      </PageTitle>
      <p>A widget puts a “call me” button on your website: a visitor leaves their number and an available agent's phone calls them.</p>
      <section class="card" aria-label="Widgets">
        {widgets.loading && !widgets.data ? <Loading /> : null}
        <ErrorNote error={widgets.error} />
        {widgets.data && widgets.data.data.length > 0 ? (
          <TableWrap label="Widgets">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Allowed origins</th>
                <th scope="col">When unavailable</th>
                <th scope="col">Created</th>
              </tr>
            </thead>
            <tbody>
              {widgets.data.data.map((w) => (
                <tr key={w.id} data-testid="widget-row" data-widget-id={w.id}>
                  <td>
                    <Link to={`/widgets/${w.id}`} data-testid="widget-link">
                      {w.name}
                    </Link>
                  </td>
                  <td class="mono small">{w.allowed_origins.join(' ')}</td>
                  <td>{w.when_unavailable}</td>
                  <td>
                    <Time iso={w.created_at} />
                  </td>
                </tr>
              ))}
            </tbody>
          </TableWrap>
        ) : widgets.data ? (
          <p class="muted">No widgets yet.</p>
        ) : null}
      </section>
    </main>
  );
}

interface FormState {
  name: string;
  origins: string;
  agentIds: string[];
  routing: Widget['routing'];
  whenUnavailable: Widget['when_unavailable'];
  color: string;
  position: 'bottom-right' | 'bottom-left';
  alwaysOpen: boolean;
  timezone: string;
  days: Record<Day, [string, string][]>;
  texts: string;
  maxCallbacks: string;
  maxScheduled: string;
}

const DAY_NAMES: Record<Day, string> = { mon: 'Monday', tue: 'Tuesday', wed: 'Wednesday', thu: 'Thursday', fri: 'Friday', sat: 'Saturday', sun: 'Sunday' };

function initialState(w: Widget | null): FormState {
  const days = Object.fromEntries(DAYS.map((d) => [d, [] as [string, string][]])) as Record<Day, [string, string][]>;
  if (w?.business_hours) for (const d of DAYS) days[d] = [...(w.business_hours.days[d] ?? [])];
  else for (const d of ['mon', 'tue', 'wed', 'thu', 'fri'] as Day[]) days[d] = [['09:00', '17:00']];
  return {
    name: w?.name ?? '',
    origins: (w?.allowed_origins ?? []).join('\n'),
    agentIds: w?.agent_ids ?? [],
    routing: w?.routing ?? 'longest_idle',
    whenUnavailable: w?.when_unavailable ?? 'callback',
    color: w?.theme?.color ?? '#0a7cff',
    position: w?.theme?.position ?? 'bottom-right',
    alwaysOpen: w ? w.business_hours === null : true,
    timezone: w?.business_hours?.timezone ?? Intl.DateTimeFormat().resolvedOptions().timeZone ?? 'UTC',
    days,
    texts: w && Object.keys(w.texts ?? {}).length ? JSON.stringify(w.texts, null, 2) : '',
    maxCallbacks: String(w?.max_callbacks_per_hour ?? 30),
    maxScheduled: String(w?.max_scheduled_callbacks_per_hour ?? 30),
  };
}

function toInput(f: FormState): WidgetInput | string {
  let texts: WidgetInput['texts'] = {};
  if (f.texts.trim()) {
    try {
      texts = JSON.parse(f.texts) as WidgetInput['texts'];
    } catch {
      return 'Texts: not valid JSON (for example {"en": {"title": "Talk to sales"}}).';
    }
  }
  const business_hours: BusinessHours | null = f.alwaysOpen ? null : { timezone: f.timezone.trim(), days: f.days };
  const cap = (v: string) => (/^\d+$/.test(v.trim()) ? Number(v.trim()) : NaN);
  const [maxCallbacks, maxScheduled] = [cap(f.maxCallbacks), cap(f.maxScheduled)];
  if (![maxCallbacks, maxScheduled].every((n) => n >= 1 && n <= 1000)) return 'Hourly limits: whole numbers from 1 to 1000.';
  return {
    name: f.name.trim(),
    allowed_origins: f.origins
      .split(/[\s,]+/)
      .map((o) => o.trim().replace(/\/+$/, ''))
      .filter(Boolean),
    agent_ids: f.agentIds,
    routing: f.routing,
    when_unavailable: f.whenUnavailable,
    theme: { color: f.color, position: f.position },
    business_hours,
    texts,
    max_callbacks_per_hour: maxCallbacks,
    max_scheduled_callbacks_per_hour: maxScheduled,
  };
}

let zones: string[] | null = null;
function timeZones(): string[] {
  if (!zones) {
    try {
      zones = (Intl as unknown as { supportedValuesOf(k: string): string[] }).supportedValuesOf('timeZone');
    } catch {
      zones = ['UTC'];
    }
  }
  return zones;
}

function HoursEditor({ f, set }: { f: FormState; set: (f: FormState) => void }) {
  const setDay = (d: Day, ranges: [string, string][]) => set({ ...f, days: { ...f.days, [d]: ranges } });
  return (
    <fieldset class="field">
      <legend>Business hours</legend>
      <label class="check">
        <input type="checkbox" checked={f.alwaysOpen} onChange={(e) => set({ ...f, alwaysOpen: e.currentTarget.checked })} data-testid="widget-always-open" /> Always open
      </label>
      {!f.alwaysOpen ? (
        <>
          <Field label="Time zone">
            {(p) => (
              <>
                <input {...p} list="tz-list" value={f.timezone} onInput={(e) => set({ ...f, timezone: e.currentTarget.value })} data-testid="widget-timezone" />
                <datalist id="tz-list">
                  {timeZones().map((z) => (
                    <option key={z} value={z} />
                  ))}
                </datalist>
              </>
            )}
          </Field>
          <div class="hours">
            {DAYS.map((d) => (
              <div class="hours-day" key={d} role="group" aria-label={DAY_NAMES[d]} data-testid={`widget-hours-${d}`}>
                <span class="hours-name">{DAY_NAMES[d]}</span>
                {f.days[d].length === 0 ? <span class="muted">closed</span> : null}
                {f.days[d].map((r, i) => (
                  <span class="hours-range" key={i}>
                    <input
                      type="time"
                      value={r[0]}
                      aria-label={`${DAY_NAMES[d]} opens`}
                      onInput={(e) => setDay(d, f.days[d].map((x, j) => (j === i ? [e.currentTarget.value, x[1]] : x)))}
                    />
                    –
                    <input
                      type="time"
                      value={r[1]}
                      aria-label={`${DAY_NAMES[d]} closes`}
                      onInput={(e) => setDay(d, f.days[d].map((x, j) => (j === i ? [x[0], e.currentTarget.value] : x)))}
                    />
                    <button type="button" class="btn btn-small btn-quiet" aria-label={`Remove ${DAY_NAMES[d]} range ${i + 1}`} onClick={() => setDay(d, f.days[d].filter((_, j) => j !== i))}>
                      ×
                    </button>
                  </span>
                ))}
                <button type="button" class="btn btn-small" onClick={() => setDay(d, [...f.days[d], ['09:00', '17:00']])} aria-label={`Add hours on ${DAY_NAMES[d]}`}>
                  + hours
                </button>
              </div>
            ))}
          </div>
        </>
      ) : null}
    </fieldset>
  );
}

function Preview({ w }: { w: Widget }) {
  const srcdoc = useMemo(() => {
    const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');
    return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<style>body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;padding:16px;min-height:100vh;box-sizing:border-box;background:#f4f5f7;color:#333}
.fake{height:12px;background:#dde0e5;border-radius:6px;margin:10px 0}.fake.s{width:60%}</style></head>
<body><h1 style="font-size:18px">Your website</h1><div class="fake"></div><div class="fake s"></div><div class="fake"></div>
<script src="${esc(location.origin)}/widget.js" data-key="${esc(w.publishable_key)}" async></script></body></html>`;
  }, [w.publishable_key]);
  return (
    <section class="card" aria-labelledby="preview-title">
      <h2 id="preview-title" class="h3">
        Live preview
      </h2>
      <p class="muted small">The saved settings, as a visitor sees them now (availability included).</p>
      <iframe key={JSON.stringify(w)} class="preview" title={`Preview of the widget ${w.name}`} srcdoc={srcdoc} data-testid="widget-preview" />
    </section>
  );
}

export function WidgetEdit({ id }: { id: string | null }) {
  const { isAdmin } = useSession();
  const agents = useAgents(isAdmin);
  const existing = useAsync(() => (id ? getWidget(id) : Promise.resolve(null)), [id]);
  if (id && existing.loading && !existing.data) return <Loading />;
  if (id && existing.error) return <ErrorNote error={existing.error} />;
  return <WidgetForm key={existing.data?.id ?? 'new'} widget={existing.data ?? null} agents={[...(agents.data?.values() ?? [])]} onSaved={(w) => existing.setData(w)} />;
}

function WidgetForm({ widget, agents, onSaved }: { widget: Widget | null; agents: { id: string; name: string }[]; onSaved: (w: Widget) => void }) {
  const [f, set] = useState<FormState>(() => initialState(widget));
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [saved, setSaved] = useState(false);
  return (
    <main id="main" data-testid="widget-page">
      <p>
        <Link to="/widgets">← Widgets</Link>
      </p>
      <PageTitle>{widget ? widget.name : 'New widget'}</PageTitle>
      {widget ? (
        <section class="card" aria-labelledby="embed-title">
          <h2 id="embed-title" class="h3">
            Embed
          </h2>
          <p>Paste this tag into your website's pages, before &lt;/body&gt;:</p>
          <div class="copy-row">
            <code class="code-block" data-testid="widget-snippet">
              {widget.embed_snippet}
            </code>
            <CopyButton text={widget.embed_snippet} testid="widget-snippet-copy" />
          </div>
        </section>
      ) : null}
      <div class="grid-2">
        <form
          class="card"
          aria-label="Widget settings"
          onSubmit={async (e) => {
            e.preventDefault();
            const input = toInput(f);
            if (typeof input === 'string') return setError(new Error(input));
            setBusy(true);
            setError(null);
            setSaved(false);
            try {
              const w = widget ? await updateWidget(widget.id, input) : await createWidget(input);
              if (widget) {
                onSaved(w);
                setSaved(true);
              } else navigate(`/widgets/${w.id}`, { replace: true });
            } catch (err) {
              setError(err);
            } finally {
              setBusy(false);
            }
          }}
        >
          <Field label="Name">{(p) => <input {...p} required maxLength={100} value={f.name} onInput={(e) => set({ ...f, name: e.currentTarget.value })} data-testid="widget-name" />}</Field>
          <Field label="Allowed origins" hint="One per line, exactly as in the address bar: https://shop.example (scheme, host and port, no path).">
            {(p) => (
              <textarea {...p} rows={3} required class="mono" value={f.origins} onInput={(e) => set({ ...f, origins: e.currentTarget.value })} data-testid="widget-origins" placeholder="https://shop.example" />
            )}
          </Field>
          <fieldset class="field">
            <legend>Agents who take its calls</legend>
            <small class="hint">None checked: every agent of the organization.</small>
            <div class="checks">
              {agents.map((a) => (
                <label key={a.id} class="check">
                  <input
                    type="checkbox"
                    checked={f.agentIds.includes(a.id)}
                    onChange={(e) => set({ ...f, agentIds: e.currentTarget.checked ? [...f.agentIds, a.id] : f.agentIds.filter((x) => x !== a.id) })}
                    data-testid="widget-agent"
                  />{' '}
                  {a.name}
                </label>
              ))}
            </div>
          </fieldset>
          <div class="row-fields">
            <Field label="Routing">
              {(p) => (
                <select {...p} value={f.routing} onChange={(e) => set({ ...f, routing: e.currentTarget.value as Widget['routing'] })} data-testid="widget-routing">
                  <option value="longest_idle">longest idle agent first</option>
                  <option value="round_robin">round robin</option>
                </select>
              )}
            </Field>
            <Field label="When nobody is available">
              {(p) => (
                <select {...p} value={f.whenUnavailable} onChange={(e) => set({ ...f, whenUnavailable: e.currentTarget.value as Widget['when_unavailable'] })} data-testid="widget-when-unavailable">
                  <option value="callback">take a callback request</option>
                  <option value="hidden">hide the widget</option>
                </select>
              )}
            </Field>
          </div>
          <div class="row-fields">
            <Field label="Colour">{(p) => <input {...p} type="color" value={f.color} onInput={(e) => set({ ...f, color: e.currentTarget.value })} data-testid="widget-color" />}</Field>
            <Field label="Position">
              {(p) => (
                <select {...p} value={f.position} onChange={(e) => set({ ...f, position: e.currentTarget.value as FormState['position'] })} data-testid="widget-position">
                  <option value="bottom-right">bottom right</option>
                  <option value="bottom-left">bottom left</option>
                </select>
              )}
            </Field>
          </div>
          <HoursEditor f={f} set={set} />
          <fieldset class="field">
            <legend>Hourly limits</legend>
            <small class="hint">
              The widget's key is public and anyone's script can use it, whatever the allowed origins: these caps bound what it can cause in an hour. Past them, visitors are asked to try again later.
            </small>
            <div class="row-fields">
              <Field label="Calls to visitors per hour" hint="Callbacks that ring an agent's phone now (1 to 1000).">
                {(p) => <input {...p} type="number" min={1} max={1000} step={1} required value={f.maxCallbacks} onInput={(e) => set({ ...f, maxCallbacks: e.currentTarget.value })} data-testid="widget-max-callbacks" />}
              </Field>
              <Field label="Requests for later per hour" hint="Callback requests kept while nobody is available (1 to 1000).">
                {(p) => <input {...p} type="number" min={1} max={1000} step={1} required value={f.maxScheduled} onInput={(e) => set({ ...f, maxScheduled: e.currentTarget.value })} data-testid="widget-max-scheduled" />}
              </Field>
            </div>
          </fieldset>
          <Field label="Texts (optional JSON overrides)" hint={'By language, e.g. {"en": {"title": "Talk to sales"}, "zh": {"title": "联系销售"}}.'}>
            {(p) => <textarea {...p} rows={4} class="mono" value={f.texts} onInput={(e) => set({ ...f, texts: e.currentTarget.value })} data-testid="widget-texts" />}
          </Field>
          <ErrorNote error={error} />
          {saved ? (
            <p class="note note-ok" role="status">
              Saved.
            </p>
          ) : null}
          <div class="row wrap">
            <button class="btn btn-primary" type="submit" disabled={busy} data-testid="widget-save">
              {busy ? 'Saving…' : widget ? 'Save' : 'Create widget'}
            </button>
            {widget ? (
              <ConfirmButton
                label="Delete"
                confirm="Delete this widget? Its tag stops working on every site."
                testid="widget-delete"
                onConfirm={async () => {
                  await deleteWidget(widget.id);
                  navigate('/widgets');
                }}
              />
            ) : null}
          </div>
        </form>
        {widget ? <Preview w={widget} /> : null}
      </div>
    </main>
  );
}
