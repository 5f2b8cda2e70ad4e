import type { Call, Organization } from '@pushdial/sdk';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { api, ProblemError, unwrap } from '../api';
import { isTerminal, LiveCallPanel, useLiveCall } from '../components/CallTimeline';
import { DeviceList, useDevices } from '../components/Devices';
import { CopyButton, ErrorNote, Loading, PageTitle, useAsync, useNow } from '../components/ui';
import { checkNumber, countryName, fromLink } from '../phone';
import { Link, navigate } from '../router';
import { useSession } from '../session';

const PAD = ['1', '2', '3', '4', '5', '6', '7', '8', '9', '+', '0'];
const ACTIVE_KEY = 'pushdial.console.active-call';

/** The call on screen survives a reload or a visit to another page (per tab). */
function rememberCall(id: string | null): void {
  try {
    if (id) sessionStorage.setItem(ACTIVE_KEY, id);
    else sessionStorage.removeItem(ACTIVE_KEY);
  } catch {
    // storage disabled
  }
}

function rememberedCall(): string | null {
  try {
    return sessionStorage.getItem(ACTIVE_KEY);
  } catch {
    return null;
  }
}

function ActiveCall({ call, onClose }: { call: Call; onClose: () => void }) {
  const live = useLiveCall(call.id, call);
  const done = live.mode === 'done';
  return (
    <div class="card" data-testid="active-call" data-call-id={call.id}>
      <LiveCallPanel live={live} />
      <p class="row">
        <Link to={`/calls/${call.id}`} data-testid="call-details-link">
          Call details
        </Link>
        {done ? (
          <button type="button" class="btn" onClick={onClose} data-testid="call-new">
            New call
          </button>
        ) : null}
      </p>
    </div>
  );
}

function ProtocolHandler() {
  const [state, setState] = useState<{ ok: boolean; text: string } | null>(null);
  const origin = location.origin;
  const bookmarklet =
    "javascript:(()=>{document.querySelectorAll('a[href^=\"tel:\"]').forEach(a=>{a.href='" +
    origin +
    "/console/dial?to='+encodeURIComponent(a.getAttribute('href').slice(4));a.target='pushdial'})})()";
  const linkRef = useRef<HTMLAnchorElement>(null);
  useEffect(() => {
    // Preact would not set a javascript: URL from JSX in some setups; set it directly.
    linkRef.current?.setAttribute('href', bookmarklet);
  }, [bookmarklet]);
  return (
    <details class="card tel-links" data-testid="tel-links">
      <summary>Call numbers from other pages (tel: links)</summary>
      <p>
        Let this browser open <code>web+pushdial:</code> links in this console. Web pages and apps can then link to{' '}
        <code>web+pushdial:+14155550123</code>, and <code>{origin}/console/dial?to=+14155550123</code> always works.
      </p>
      <p>
      <button
        type="button"
        class="btn"
        data-testid="register-protocol"
        onClick={() => {
          try {
            if (!('registerProtocolHandler' in navigator)) throw new Error('this browser cannot register link handlers');
            navigator.registerProtocolHandler('web+pushdial', `${origin}/console/dial?to=%s`);
            setState({ ok: true, text: 'Asked the browser: accept its prompt to open web+pushdial: links here.' });
          } catch (e) {
            setState({ ok: false, text: `Could not register: ${e instanceof Error ? e.message : String(e)}` });
          }
        }}
      >
        Open web+pushdial: links with pushdial
      </button>
      </p>
      {state ? (
        <p role="status" class={state.ok ? 'note' : 'note note-error'} data-testid="register-protocol-result">
          {state.text}
        </p>
      ) : null}
      <p>
        <strong>Bookmarklet for any page's tel: links.</strong> Drag this link to your bookmarks bar, then click it on a page
        (a CRM, a directory): its <code>tel:</code> links will open here instead.{' '}
        <a ref={linkRef} class="bookmarklet" data-testid="bookmarklet" onClick={(e) => e.preventDefault()}>
          pushdial tel: links
        </a>
      </p>
      <div class="copy-row">
        <code class="code-block" data-testid="bookmarklet-code">
          {bookmarklet}
        </code>
        <CopyButton text={bookmarklet} testid="bookmarklet-copy" />
      </div>
    </details>
  );
}

/** Home: the member's phones, and a dial pad when one is reachable (patent claim step 3). */
export function Dialer({ initialNumber }: { initialNumber?: string | undefined }) {
  const { membership } = useSession();
  const now = useNow(1000);
  const phones = useDevices(membership.agent_id);
  const org = useAsync(() => unwrap(api.GET('/v1/organization')), []);
  const [number, setNumber] = useState(() => (initialNumber ? fromLink(initialNumber) : ''));
  const [autoDial, setAutoDial] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [call, setCall] = useState<Call | null>(null);
  const inputRef = useRef<HTMLInputElement>(null);
  const country = (org.data as Organization | undefined)?.country ?? null;
  const check = useMemo(() => checkNumber(number, country), [number, country]);

  useEffect(() => {
    if (initialNumber !== undefined) setNumber(fromLink(initialNumber));
  }, [initialNumber]);

  useEffect(() => {
    const id = rememberedCall();
    if (!id || initialNumber) return;
    unwrap(api.GET('/v1/calls/{call_id}', { params: { path: { call_id: id } } }))
      .then((c) => (isTerminal(c.status) ? rememberCall(null) : setCall((cur) => cur ?? c)))
      .catch(() => rememberCall(null));
  }, []);

  const place = async (e: Event) => {
    e.preventDefault();
    if (check.state !== 'valid' || busy) return;
    setBusy(true);
    setError(null);
    try {
      const c = await unwrap(api.POST('/v1/calls', { body: { to: check.e164, ...(autoDial ? { confirm: 'auto' } : {}) } }));
      setCall(c);
      rememberCall(c.id);
      // A /dial?to= link has done its job: back to the plain dialer address.
      if (location.pathname.endsWith('/dial')) navigate('/', { replace: true });
    } catch (err) {
      setError(err);
      if (err instanceof ProblemError && err.code === 'no_device_reachable') void phones.reload();
    } finally {
      setBusy(false);
    }
  };

  const press = (key: string) => {
    setNumber((n) => (key === '+' ? (n.startsWith('+') ? n : `+${n}`) : n + key));
    inputRef.current?.focus();
  };

  const fieldError = error instanceof ProblemError ? error.fieldError('to') : undefined;
  const hint =
    check.state === 'invalid'
      ? check.message
      : check.state === 'valid'
        ? check.national
          ? `Will call ${check.e164} (${countryName(country ?? '')} number).`
          : `Will call ${check.e164}.`
        : country
          ? `E.164 (+ and country code), or a ${countryName(country)} number.`
          : 'E.164: + and the country code, like +14155550123.';

  return (
    <main id="main" data-testid="dialer-page">
      <PageTitle>Dialer</PageTitle>
      <div class="grid-dialer">
        <section class="card" aria-labelledby="phones-title">
          <h2 id="phones-title" class="h3">
            Your phones
          </h2>
          {phones.devices === null && !phones.error ? <Loading label="Checking your phones…" /> : null}
          <ErrorNote error={phones.error} testid="devices-error" />
          {phones.devices && phones.devices.length > 0 ? <DeviceList devices={phones.devices} now={now} /> : null}
          {phones.devices && !phones.reachable ? (
            <div class="note note-warn" data-testid="no-phone-notice" role="status">
              <p>
                <strong>No phone is connected.</strong>{' '}
                {phones.devices.length === 0
                  ? 'Pair your phone with pushdial to place calls from this page.'
                  : 'None of your phones can be reached right now: open the pushdial app on your phone, or pair another one.'}
              </p>
              <p>
                <Link to="/pair" class="btn btn-primary" data-testid="pair-link">
                  Pair a phone
                </Link>
              </p>
            </div>
          ) : null}
          {phones.devices && phones.reachable ? (
            <p class="small">
              <Link to="/pair">Pair another phone</Link>
            </p>
          ) : null}
        </section>

        {call ? (
          <ActiveCall
            key={call.id}
            call={call}
            onClose={() => {
              rememberCall(null);
              setCall(null);
              setNumber('');
              setTimeout(() => inputRef.current?.focus(), 0);
            }}
          />
        ) : phones.reachable ? (
          <form class="card dialer" onSubmit={place} aria-labelledby="dial-title" data-testid="dialer-form">
            <h2 id="dial-title" class="h3">
              Call a number
            </h2>
            <div class="field">
              <label for="dial-number">Number</label>
              <input
                id="dial-number"
                ref={inputRef}
                type="tel"
                inputMode="tel"
                autoComplete="tel"
                class="dial-input"
                value={number}
                onInput={(e) => {
                  setNumber(e.currentTarget.value);
                  setError(null);
                }}
                aria-invalid={check.state === 'invalid' || !!fieldError}
                aria-describedby="dial-hint"
                data-testid="dialer-number"
                data-valid={check.state === 'valid' ? 'true' : 'false'}
                placeholder="+1 415 555 0123"
              />
              <small id="dial-hint" class={check.state === 'invalid' ? 'field-error' : 'hint'} aria-live="polite" data-testid="dialer-hint">
                {hint}
              </small>
            </div>
            <div class="dialpad" role="group" aria-label="Dial pad">
              {PAD.map((k) => (
                <button type="button" key={k} class="key" onClick={() => press(k)} data-testid={`dialpad-${k === '+' ? 'plus' : k}`} aria-label={k === '+' ? 'plus' : k}>
                  {k}
                </button>
              ))}
              <button
                type="button"
                class="key"
                aria-label="Delete last digit"
                data-testid="dialpad-backspace"
                onClick={() => {
                  setNumber((n) => n.slice(0, -1));
                  inputRef.current?.focus();
                }}
              >
                ⌫
              </button>
            </div>
            <label class="check">
              <input type="checkbox" checked={autoDial} onChange={(e) => setAutoDial(e.currentTarget.checked)} data-testid="dialer-auto" /> Dial at
              once (don't ask on the phone)
            </label>
            <ErrorNote error={error} testid="dialer-error" />
            <button type="submit" class="btn btn-primary btn-call" disabled={check.state !== 'valid' || busy} data-testid="dialer-call">
              {busy ? 'Calling…' : 'Call'}
            </button>
          </form>
        ) : null}
      </div>
      <ProtocolHandler />
    </main>
  );
}
