import type { PairingCode } from '@pushdial/sdk';
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, unwrap } from '../api';
import { DeviceList, useDevices } from '../components/Devices';
import { CopyButton, ErrorNote, PageTitle, useNow } from '../components/ui';
import { Link } from '../router';
import { useSession } from '../session';

/** The QR code of the pair URI, drawn locally (uqr, loaded only on this page). */
function QrCode({ text }: { text: string }) {
  const [svg, setSvg] = useState<string | null>(null);
  useEffect(() => {
    let live = true;
    import('uqr')
      .then(({ renderSVG }) => {
        if (live) setSvg(renderSVG(text, { border: 2, ecc: 'M' }));
      })
      .catch(() => setSvg(null));
    return () => {
      live = false;
    };
  }, [text]);
  return (
    <figure class="qr" data-testid="pair-qr">
      {svg ? <div class="qr-img" role="img" aria-label={`QR code of ${text}`} dangerouslySetInnerHTML={{ __html: svg }} /> : <div class="qr-img qr-placeholder" />}
      <figcaption class="mono small" data-testid="pair-uri">
        {text}
      </figcaption>
    </figure>
  );
}

function countdown(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

export function Pair() {
  const { membership } = useSession();
  const now = useNow(1000);
  const [code, setCode] = useState<PairingCode | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const phones = useDevices(membership.agent_id, code ? 3000 : null);
  const knownIds = useRef<Set<string> | null>(null);

  useEffect(() => {
    if (phones.devices && knownIds.current === null) knownIds.current = new Set(phones.devices.map((d) => d.id));
  }, [phones.devices]);

  const create = async () => {
    setBusy(true);
    setError(null);
    try {
      knownIds.current = phones.devices ? new Set(phones.devices.map((d) => d.id)) : knownIds.current;
      setCode(await unwrap(api.POST('/v1/pairing_codes', { body: {} })));
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  const left = code ? new Date(code.expires_at).getTime() - now : 0;
  const expired = !!code && left <= 0;
  const paired = code && knownIds.current ? (phones.devices ?? []).filter((d) => !knownIds.current?.has(d.id)) : [];
  const origin = location.origin;
  const command = code ? `cargo run -p pushdial-sdk --bin pushdial-agent -- pair --server ${origin} --code ${code.code}` : '';

  return (
    <main id="main" data-testid="pair-page">
      <PageTitle>Pair a phone</PageTitle>
      <p>
        A pairing code links one phone (or the reference agent) to you, <strong>{membership.name || 'you'}</strong>. It works once and
        only for a few minutes. The QR code carries a long one-time token rather than the code: scanning it is the safest way to pair,
        and using either the code or the QR code spends both.
      </p>
      <div class="grid-2">
        <section class="card" aria-labelledby="pair-code-title">
          <h2 id="pair-code-title" class="h3">
            Pairing code
          </h2>
          {code && !expired ? (
            <>
              <p class="pair-code mono" data-testid="pair-code" aria-label={`Code ${code.code.split('').join(' ')}`}>
                {code.code}
              </p>
              <p class="muted" data-testid="pair-expiry" aria-live="off">
                Expires in <time dateTime={code.expires_at}>{countdown(left)}</time>
              </p>
              <QrCode text={code.pair_uri} />
            </>
          ) : null}
          {expired ? (
            <p class="note note-warn" data-testid="pair-expired" role="status">
              This code has expired. Create a new one.
            </p>
          ) : null}
          {paired.length > 0 ? (
            <div class="note note-ok" role="status" data-testid="pair-success">
              <p>
                <strong>Paired:</strong> {paired.map((d) => d.name).join(', ')}.
              </p>
              <DeviceList devices={paired} now={now} />
              <p>
                <Link to="/">Go to the dialer</Link>
              </p>
            </div>
          ) : null}
          <ErrorNote error={error} />
          <button type="button" class={`btn ${code && !expired ? '' : 'btn-primary'}`} onClick={create} disabled={busy} data-testid="pair-create">
            {busy ? 'Creating…' : code ? 'New code' : 'Create a pairing code'}
          </button>
        </section>
        <section class="card" aria-labelledby="pair-how-title">
          <h2 id="pair-how-title" class="h3">
            How to pair
          </h2>
          <ol class="steps">
            <li>
              <strong>On a phone, with the web agent:</strong> open{' '}
              <a href="/agent/" data-testid="pair-web-agent">
                {origin}/agent/
              </a>{' '}
              in the phone's browser, add it to the home screen (it is an installable app), and enter the code or scan the QR code.
            </li>
            <li>
              <strong>With the pushdial app:</strong> scan the QR code.
            </li>
            <li>
              <strong>With the reference agent</strong> (a computer stands in for the phone):
              {code && !expired ? (
                <div class="copy-row">
                  <code class="code-block" data-testid="pair-command">
                    {command}
                  </code>
                  <CopyButton text={command} testid="pair-command-copy" />
                </div>
              ) : (
                <p class="muted">Create a code to see the command.</p>
              )}
            </li>
          </ol>
        </section>
      </div>
    </main>
  );
}
