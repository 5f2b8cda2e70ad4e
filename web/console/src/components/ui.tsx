// Small building blocks shared by the pages: loading data, errors, copy buttons,
// confirmations, times, secrets shown once.
import type { ComponentChildren, JSX } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { errorMessage, ProblemError } from '../api';

export interface Async<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  reload: () => Promise<void>;
  setData: (d: T | undefined) => void;
}

/** Runs `load` on mount and whenever `deps` change; keeps the last data while reloading. */
export function useAsync<T>(load: () => Promise<T>, deps: unknown[]): Async<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(true);
  const seq = useRef(0);
  const run = useCallback(async () => {
    const mine = ++seq.current;
    setLoading(true);
    try {
      const d = await load();
      if (mine === seq.current) {
        setData(d);
        setError(null);
      }
    } catch (e) {
      if (mine === seq.current) setError(e);
    } finally {
      if (mine === seq.current) setLoading(false);
    }
  }, deps);
  useEffect(() => {
    void run();
  }, [run]);
  return { data, error, loading, reload: run, setData };
}

/** Calls `tick` every `ms` while mounted (and once at once when `immediate`). */
export function useInterval(tick: () => void, ms: number | null): void {
  const saved = useRef(tick);
  saved.current = tick;
  useEffect(() => {
    if (ms === null) return;
    const id = setInterval(() => saved.current(), ms);
    return () => clearInterval(id);
  }, [ms]);
}

/** Re-renders every `ms` (for countdowns and "x ago"). */
export function useNow(ms = 1000): number {
  const [now, setNow] = useState(Date.now());
  useInterval(() => setNow(Date.now()), ms);
  return now;
}

/** An error for people: the problem's `detail`, as an alert. */
export function ErrorNote({ error, testid = 'error' }: { error: unknown; testid?: string }) {
  if (!error) return null;
  const forbidden = error instanceof ProblemError && error.status === 403;
  return (
    <div class={`note note-error${forbidden ? ' note-forbidden' : ''}`} role="alert" data-testid={testid}>
      {forbidden ? <strong>Not allowed. </strong> : null}
      {errorMessage(error)}
      {error instanceof ProblemError && error.errors.length > 0 ? (
        <ul>
          {error.errors.map((f) => (
            <li key={f.field}>
              <code>{f.field}</code>: {f.message}
            </li>
          ))}
        </ul>
      ) : null}
      {error instanceof ProblemError && error.requestId ? <small class="muted"> (request {error.requestId})</small> : null}
    </div>
  );
}

export function Loading({ label = 'Loading…' }: { label?: string }) {
  return (
    <p class="muted" role="status" aria-live="polite">
      {label}
    </p>
  );
}

async function copyText(text: string): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // Clipboard API unavailable (plain http, permissions): fall back to a selection.
    const area = document.createElement('textarea');
    area.value = text;
    area.setAttribute('readonly', '');
    area.style.position = 'fixed';
    area.style.opacity = '0';
    document.body.appendChild(area);
    area.select();
    let ok = false;
    try {
      ok = document.execCommand('copy');
    } catch {
      ok = false;
    }
    area.remove();
    return ok;
  }
}

export function CopyButton({ text, label = 'Copy', testid }: { text: string; label?: string; testid?: string }) {
  const [state, setState] = useState<'idle' | 'copied' | 'failed'>('idle');
  useEffect(() => {
    if (state === 'idle') return;
    const t = setTimeout(() => setState('idle'), 2000);
    return () => clearTimeout(t);
  }, [state]);
  return (
    <button
      type="button"
      class="btn btn-small"
      data-testid={testid}
      onClick={async () => setState((await copyText(text)) ? 'copied' : 'failed')}
    >
      {state === 'copied' ? 'Copied' : state === 'failed' ? 'Copy failed — select the text' : label}
      <span class="sr-only" aria-live="polite">
        {state === 'copied' ? ' copied to the clipboard' : ''}
      </span>
    </button>
  );
}

/** A value shown once (a secret key, a signing secret): read-only field, copy button, warning. */
export function SecretOnce({ value, label, testid, onDone }: { value: string; label: string; testid: string; onDone: () => void }) {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => ref.current?.focus(), []);
  return (
    <div class="note note-secret" ref={ref} tabIndex={-1} role="region" aria-label={label} data-testid={`${testid}-box`}>
      <p>
        <strong>{label}</strong> — copy it now: it is shown only once and cannot be seen again.
      </p>
      <div class="copy-row">
        <input readOnly value={value} aria-label={label} data-testid={testid} onFocus={(e) => e.currentTarget.select()} class="mono" />
        <CopyButton text={value} testid={`${testid}-copy`} />
      </div>
      <button type="button" class="btn btn-small btn-quiet" onClick={onDone} data-testid={`${testid}-done`}>
        I have copied it
      </button>
    </div>
  );
}

/** A destructive button that asks inline ("Revoke?" → "Yes, revoke" / "Cancel"); shows the error if it fails. */
export function ConfirmButton({
  label,
  confirm,
  yes,
  onConfirm,
  testid,
  disabled,
}: {
  label: string;
  confirm: string;
  yes?: string;
  onConfirm: () => Promise<unknown> | void;
  testid?: string;
  disabled?: boolean;
}) {
  const [asking, setAsking] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const yesRef = useRef<HTMLButtonElement>(null);
  const firstRef = useRef<HTMLButtonElement>(null);
  const wasAsking = useRef(false);
  useEffect(() => {
    if (asking) yesRef.current?.focus();
    else if (wasAsking.current) firstRef.current?.focus();
    wasAsking.current = asking;
  }, [asking]);
  return (
    <span class="confirm-wrap">
      {!asking ? (
        <button type="button" ref={firstRef} class="btn btn-small btn-danger" data-testid={testid} disabled={disabled} onClick={() => setAsking(true)}>
          {label}
        </button>
      ) : (
        <span class="confirm" role="group" aria-label={confirm}>
          <span>{confirm}</span>{' '}
          <button
            type="button"
            ref={yesRef}
            class="btn btn-small btn-danger"
            disabled={busy}
            data-testid={testid ? `${testid}-yes` : undefined}
            onClick={async () => {
              setBusy(true);
              setError(null);
              try {
                await onConfirm();
              } catch (e) {
                setError(e);
              } finally {
                setBusy(false);
                setAsking(false);
              }
            }}
          >
            {yes ?? `Yes, ${label.toLowerCase()}`}
          </button>{' '}
          <button type="button" class="btn btn-small btn-quiet" onClick={() => setAsking(false)} data-testid={testid ? `${testid}-no` : undefined}>
            Cancel
          </button>
        </span>
      )}
      <ErrorNote error={error} />
    </span>
  );
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
const timeOnly = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });

export function formatDateTime(iso: string | null | undefined): string {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : dateTime.format(d);
}

export function formatTime(iso: string): string {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : timeOnly.format(d);
}

/** "3 minutes ago", "in 40 seconds". */
export function relative(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return 'never';
  const diff = (new Date(iso).getTime() - now) / 1000;
  const abs = Math.abs(diff);
  if (abs < 45) return rtf.format(Math.round(diff), 'second');
  if (abs < 45 * 60) return rtf.format(Math.round(diff / 60), 'minute');
  if (abs < 22 * 3600) return rtf.format(Math.round(diff / 3600), 'hour');
  return rtf.format(Math.round(diff / 86400), 'day');
}

export function Time({ iso, mode = 'datetime' }: { iso: string | null | undefined; mode?: 'datetime' | 'time' | 'relative' }) {
  if (!iso) return <span class="muted">—</span>;
  const text = mode === 'time' ? formatTime(iso) : mode === 'relative' ? relative(iso) : formatDateTime(iso);
  return (
    <time dateTime={iso} title={formatDateTime(iso)}>
      {text}
    </time>
  );
}

/** A page's heading, focused after navigation so screen readers announce the new page. */
export function PageTitle({ children, actions }: { children: ComponentChildren; actions?: ComponentChildren }) {
  const ref = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    if (typeof children === 'string') document.title = `${children} · pushdial`;
    ref.current?.focus({ preventScroll: true });
  }, []);
  return (
    <div class="page-title">
      <h1 tabIndex={-1} ref={ref} data-testid="page-title">
        {children}
      </h1>
      {actions ? <div class="page-actions">{actions}</div> : null}
    </div>
  );
}

/** A wide table that scrolls sideways on a phone instead of breaking the layout. */
export function TableWrap({ label, children }: { label: string; children: ComponentChildren }) {
  return (
    <div class="table-wrap" role="region" aria-label={label} tabIndex={0}>
      <table>{children}</table>
    </div>
  );
}

export function StatusBadge({ status, testid }: { status: string; testid?: string }) {
  return (
    <span class={`badge badge-${status}`} data-testid={testid} data-status={status}>
      {status.replace(/_/g, ' ')}
    </span>
  );
}

let idSeq = 0;
/** A stable unique id for label/input pairs. */
export function useId(prefix = 'f'): string {
  const ref = useRef<string>();
  if (!ref.current) ref.current = `${prefix}-${++idSeq}`;
  return ref.current;
}

type FieldProps = {
  label: ComponentChildren;
  hint?: ComponentChildren;
  error?: string | undefined;
  children: (props: { id: string; 'aria-describedby'?: string; 'aria-invalid'?: boolean }) => JSX.Element;
};

/** A labelled form control with an optional hint and error, wired for screen readers. */
export function Field({ label, hint, error, children }: FieldProps) {
  const id = useId();
  const hintId = hint ? `${id}-hint` : undefined;
  const errId = error ? `${id}-err` : undefined;
  const describedby = [hintId, errId].filter(Boolean).join(' ') || undefined;
  return (
    <div class="field">
      <label for={id}>{label}</label>
      {children({ id, 'aria-describedby': describedby, 'aria-invalid': error ? true : undefined })}
      {hint ? (
        <small id={hintId} class="hint">
          {hint}
        </small>
      ) : null}
      {error ? (
        <small id={errId} class="field-error">
          {error}
        </small>
      ) : null}
    </div>
  );
}

export interface Paged<T> {
  items: T[];
  hasMore: boolean;
  loading: boolean;
  error: unknown;
  loadMore: () => Promise<void>;
  reload: () => Promise<void>;
  setItems: (update: (items: T[]) => T[]) => void;
}

/** A cursor-paginated list (`starting_after` = the last id), with "Load more". */
export function usePaged<T extends { id: string | number }>(
  fetchPage: (startingAfter?: string) => Promise<{ data: T[]; has_more: boolean }>,
  deps: unknown[],
): Paged<T> {
  const [items, setItemsState] = useState<T[]>([]);
  const [hasMore, setHasMore] = useState(false);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<unknown>(null);
  const seq = useRef(0);
  const itemsRef = useRef<T[]>([]);
  const setItems = (update: (items: T[]) => T[]) => {
    itemsRef.current = update(itemsRef.current);
    setItemsState(itemsRef.current);
  };
  const load = async (append: boolean) => {
    const mine = ++seq.current;
    setLoading(true);
    try {
      const last = append ? itemsRef.current[itemsRef.current.length - 1] : undefined;
      const page = await fetchPage(last ? String(last.id) : undefined);
      if (mine !== seq.current) return;
      setItems((prev) => (append ? [...prev, ...page.data] : page.data));
      setHasMore(page.has_more);
      setError(null);
    } catch (e) {
      if (mine === seq.current) setError(e);
    } finally {
      if (mine === seq.current) setLoading(false);
    }
  };
  useEffect(() => {
    void load(false);
  }, deps);
  return { items, hasMore, loading, error, loadMore: () => load(true), reload: () => load(false), setItems };
}

export function LoadMore({ paged, testid = 'load-more' }: { paged: Pick<Paged<unknown>, 'hasMore' | 'loading' | 'loadMore'>; testid?: string }) {
  if (!paged.hasMore) return null;
  return (
    <button type="button" class="btn" onClick={() => void paged.loadMore()} disabled={paged.loading} data-testid={testid}>
      {paged.loading ? 'Loading…' : 'Load more'}
    </button>
  );
}
