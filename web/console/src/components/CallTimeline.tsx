// A call's live timeline: its status and every transition, followed through the call's
// Server-Sent Events stream (falls back to polling when the stream is unavailable).
import { callStreamUrl, type Call, type CallEvent, TERMINAL_CALL_STATUSES } from '@pushdial/sdk';
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, getOrganization, unwrap } from '../api';
import { ErrorNote, formatTime, StatusBadge } from './ui';

/** The happy path, in order. */
export const STEPS = ['queued', 'offered', 'delivered', 'accepted', 'dialing', 'connected', 'completed'] as const;
/** Statuses from which the call can still be canceled. */
export const CANCELABLE = ['queued', 'offered', 'delivered', 'accepted'];

export const isTerminal = (status: string) => TERMINAL_CALL_STATUSES.includes(status);

const STATUS_TEXT: Record<string, string> = {
  queued: 'Queued',
  offered: 'Offered to the phone',
  delivered: 'Delivered to the phone',
  accepted: 'Accepted on the phone',
  declined: 'Declined on the phone',
  dialing: 'Phone dialing',
  connected: 'Connected',
  completed: 'Completed',
  canceled: 'Canceled',
  expired: 'Expired',
  failed: 'Failed',
};

export function statusText(status: string): string {
  return STATUS_TEXT[status] ?? status;
}

function byTime(a: CallEvent, b: CallEvent): number {
  return a.created_at === b.created_at ? (a.id < b.id ? -1 : a.id > b.id ? 1 : 0) : a.created_at < b.created_at ? -1 : 1;
}

function mergeEvents(prev: CallEvent[], more: CallEvent[]): CallEvent[] {
  const byId = new Map(prev.map((e) => [e.id, e]));
  for (const e of more) byId.set(e.id, e);
  return [...byId.values()].sort(byTime);
}

export interface LiveCall {
  call: Call | null;
  events: CallEvent[];
  /** `stream`: following the SSE stream; `polling`: the stream failed, asking every 1.5 s. */
  mode: 'stream' | 'polling' | 'done';
  error: unknown;
  setCall: (c: Call) => void;
}

/** Follows a call until it ends. */
export function useLiveCall(callId: string, initial?: Call | null): LiveCall {
  const [call, setCallState] = useState<Call | null>(initial ?? null);
  const [events, setEvents] = useState<CallEvent[]>([]);
  const [mode, setMode] = useState<LiveCall['mode']>('stream');
  const [error, setError] = useState<unknown>(null);
  const statusRef = useRef<string | null>(initial?.status ?? null);

  const setCall = (c: Call) => {
    statusRef.current = c.status;
    setCallState(c);
  };

  useEffect(() => {
    let stopped = false;
    let source: EventSource | null = null;
    let poll: ReturnType<typeof setInterval> | undefined;
    let finishTimer: ReturnType<typeof setTimeout> | undefined;

    const loadEvents = async () => {
      const list = await unwrap(api.GET('/v1/calls/{call_id}/events', { params: { path: { call_id: callId } } }));
      if (!stopped) setEvents((prev) => mergeEvents(prev, list.data));
    };
    const loadAll = async () => {
      const [c] = await Promise.all([unwrap(api.GET('/v1/calls/{call_id}', { params: { path: { call_id: callId } } })), loadEvents()]);
      if (!stopped) setCall(c);
      return c;
    };
    const finish = () => {
      source?.close();
      source = null;
      if (poll) clearInterval(poll);
      poll = undefined;
      if (!stopped) {
        setMode('done');
        // One last read, so that nothing sent as the stream closed is missed.
        loadAll().catch(() => undefined);
      }
    };
    const startPolling = () => {
      if (stopped || poll) return;
      setMode('polling');
      poll = setInterval(() => {
        loadAll()
          .then((c) => {
            setError(null);
            if (isTerminal(c.status)) finish();
          })
          .catch((e) => setError(e));
      }, 1500);
    };
    const startStream = () => {
      const org = getOrganization();
      if (typeof EventSource === 'undefined' || !org) return startPolling();
      const es = new EventSource(callStreamUrl(callId, org));
      source = es;
      setMode('stream');
      es.addEventListener('call', (m) => {
        try {
          const c = JSON.parse((m as MessageEvent<string>).data) as Call;
          setCall(c);
          setError(null);
          // The server ends the stream after a final status; give the last timeline entry
          // a moment to arrive, then stop (else EventSource would reconnect).
          if (isTerminal(c.status) && !finishTimer) finishTimer = setTimeout(finish, 1500);
        } catch {
          // ignore a malformed message
        }
      });
      es.addEventListener('call_event', (m) => {
        try {
          const e = JSON.parse((m as MessageEvent<string>).data) as CallEvent;
          setEvents((prev) => mergeEvents(prev, [e]));
        } catch {
          // ignore a malformed message
        }
      });
      es.onerror = () => {
        if (stopped) return;
        if (statusRef.current && isTerminal(statusRef.current)) return finish();
        // CLOSED: the server refused the stream (an error status): poll instead.
        // CONNECTING: the browser reconnects by itself and the server replays the timeline.
        if (es.readyState === EventSource.CLOSED) {
          source = null;
          startPolling();
        }
      };
    };

    loadAll()
      .then((c) => {
        if (stopped) return;
        if (isTerminal(c.status)) setMode('done');
        else startStream();
      })
      .catch((e) => {
        if (stopped) return;
        setError(e);
        startStream();
      });

    return () => {
      stopped = true;
      source?.close();
      if (poll) clearInterval(poll);
      if (finishTimer) clearTimeout(finishTimer);
    };
  }, [callId]);

  return { call, events, mode, error, setCall };
}

/** The ordered timeline: reached statuses with their time, then the steps still to come. */
export function CallTimeline({ call, events, showPush = true }: { call: Call | null; events: CallEvent[]; showPush?: boolean }) {
  const statusEvents = events.filter((e) => (e.kind ?? 'status') === 'status');
  const reached = new Set(statusEvents.map((e) => e.status));
  let furthest = -1;
  STEPS.forEach((s, i) => {
    if (reached.has(s) || call?.status === s) furthest = Math.max(furthest, i);
  });
  const pending = call && !isTerminal(call.status) ? STEPS.slice(furthest + 1) : [];
  const shown = events.filter((e) => showPush || (e.kind ?? 'status') === 'status');
  return (
    <ol class="timeline" aria-label="Call timeline" data-testid="timeline">
      {shown.map((e) =>
        (e.kind ?? 'status') === 'status' ? (
          <li key={e.id} class={`tl tl-${e.status}${e.observed ? '' : ' tl-inferred'}`} data-testid="timeline-entry" data-status={e.status} data-observed={String(e.observed)}>
            <span class="tl-dot" aria-hidden="true" />
            <span class="tl-label">{statusText(e.status)}</span>
            <time class="tl-time" dateTime={e.created_at}>
              {formatTime(e.created_at)}
            </time>
            <span class={`tl-mark ${e.observed ? 'observed' : 'inferred'}`} title={e.observed ? 'Reported by the phone or the server' : 'Not reported: inferred from a later status'}>
              {e.observed ? 'observed' : 'inferred'}
            </span>
            {e.reason ? <span class="tl-reason">({e.reason.replace(/_/g, ' ')})</span> : null}
          </li>
        ) : (
          <li key={e.id} class="tl tl-push" data-testid="timeline-push" data-status={e.status}>
            <span class="tl-dot" aria-hidden="true" />
            <span class="tl-label">
              Push{e.provider ? ` via ${e.provider}` : ''}: {e.status.replace(/_/g, ' ')}
            </span>
            <time class="tl-time" dateTime={e.created_at}>
              {formatTime(e.created_at)}
            </time>
            {e.reason ? <span class="tl-reason">({e.reason})</span> : null}
          </li>
        ),
      )}
      {pending.map((s) => (
        <li key={`pending-${s}`} class="tl tl-pending" data-testid="timeline-pending" data-status={s}>
          <span class="tl-dot" aria-hidden="true" />
          <span class="tl-label">{statusText(s)}</span>
          <span class="sr-only"> (not yet)</span>
        </li>
      ))}
    </ol>
  );
}

/** Status line + timeline + cancel, for the dialer and the call page. */
export function LiveCallPanel({ live, onCancelError }: { live: LiveCall; onCancelError?: (e: unknown) => void }) {
  const { call, events, error } = live;
  const [cancelError, setCancelError] = useState<unknown>(null);
  const [canceling, setCanceling] = useState(false);
  if (!call) return <ErrorNote error={error} />;
  const cancel = async () => {
    setCanceling(true);
    setCancelError(null);
    try {
      const c = await unwrap(api.POST('/v1/calls/{call_id}/cancel', { params: { path: { call_id: call.id } } }));
      live.setCall(c);
    } catch (e) {
      setCancelError(e);
      onCancelError?.(e);
    } finally {
      setCanceling(false);
    }
  };
  return (
    <section class="live-call" aria-labelledby={`call-${call.id}-title`}>
      <div class="live-head">
        <h2 id={`call-${call.id}-title`} class="h3">
          Call to <span class="mono">{call.to}</span>
        </h2>
        <p aria-live="polite" class="live-status">
          <StatusBadge status={call.status} testid="call-status" />
          {call.reason ? <span class="muted"> {call.reason.replace(/_/g, ' ')}</span> : null}
          {call.duration_s != null ? <span class="muted"> · {call.duration_s} s</span> : null}
        </p>
      </div>
      <CallTimeline call={call} events={events} />
      {live.mode === 'polling' ? <p class="muted small">Live updates unavailable: refreshing every 1.5 s.</p> : null}
      <ErrorNote error={error} testid="call-error" />
      <ErrorNote error={cancelError} testid="cancel-error" />
      {CANCELABLE.includes(call.status) ? (
        <button type="button" class="btn btn-danger" onClick={cancel} disabled={canceling} data-testid="call-cancel">
          {canceling ? 'Canceling…' : 'Cancel call'}
        </button>
      ) : null}
    </section>
  );
}
