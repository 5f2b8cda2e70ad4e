import type { PushCredential } from '@pushdial/sdk';
import { type ComponentChildren, Fragment } from 'preact';
import { useState } from 'preact/hooks';
import { api, unwrap } from '../api';
import { ConfirmButton, ErrorNote, Field, Loading, PageTitle, Time, useAsync } from '../components/ui';

type Provider = 'fcm' | 'apns' | 'webpush';
const NAMES: Record<Provider, string> = { fcm: 'Firebase Cloud Messaging (Android)', apns: 'Apple Push Notification service (iOS)', webpush: 'Web Push (VAPID, the web agent)' };

function readFile(file: File): Promise<string> {
  return file.text();
}

function Current({ c, onDeleted }: { c: PushCredential; onDeleted: () => void }) {
  const meta = (c.metadata ?? {}) as Record<string, unknown>;
  return (
    <div class="credential" data-testid={`push-current-${c.provider}`}>
      <dl class="facts">
        {Object.entries(meta).map(([k, v]) => (
          <Fragment key={k}>
            <dt>{k.replace(/_/g, ' ')}</dt>
            <dd class="mono small">
              {String(v)}
            </dd>
          </Fragment>
        ))}
        <dt>Uploaded</dt>
        <dd>
          <Time iso={c.created_at} />
        </dd>
      </dl>
      {c.failing_since ? (
        <p class="note note-error" role="status">
          The provider refuses this credential since <Time iso={c.failing_since} />: {c.last_error ?? 'unknown error'}.
        </p>
      ) : null}
      <ConfirmButton
        label="Delete"
        confirm="Delete it? Wake-ups then use the deployment's own credential, if any."
        testid={`push-delete-${c.provider}`}
        onConfirm={async () => {
          await unwrap(api.DELETE('/v1/push_credentials/{provider}', { params: { path: { provider: c.provider } } }));
          onDeleted();
        }}
      />
    </div>
  );
}

function ProviderCard({
  provider,
  current,
  onChanged,
  onSaved,
  children,
  body,
}: {
  provider: Provider;
  current: PushCredential | undefined;
  onChanged: () => void;
  /** Clears the form's secrets once they are stored. */
  onSaved: () => void;
  children: ComponentChildren;
  body: () => Promise<Record<string, unknown> | string>;
}) {
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [done, setDone] = useState(false);
  return (
    <section class="card" aria-labelledby={`push-${provider}-title`} data-testid={`push-${provider}`}>
      <h2 id={`push-${provider}-title`} class="h3">
        {NAMES[provider]}
      </h2>
      {current ? <Current c={current} onDeleted={onChanged} /> : <p class="muted">Not set: the deployment's credential is used, if it has one.</p>}
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setError(null);
          setDone(false);
          try {
            const b = await body();
            if (typeof b === 'string') throw new Error(b);
            await unwrap(api.PUT('/v1/push_credentials/{provider}', { params: { path: { provider } }, body: b }));
            setDone(true);
            (e.target as HTMLFormElement).reset();
            onSaved();
            onChanged();
          } catch (err) {
            setError(err);
          } finally {
            setBusy(false);
          }
        }}
      >
        <h3 class="h4">{current ? 'Replace' : 'Upload'}</h3>
        {children}
        <ErrorNote error={error} />
        {done ? (
          <p class="note note-ok" role="status">
            Saved.
          </p>
        ) : null}
        <button type="submit" class="btn btn-primary" disabled={busy} data-testid={`push-save-${provider}`}>
          {busy ? 'Uploading…' : 'Save'}
        </button>
      </form>
    </section>
  );
}

export function Push() {
  const list = useAsync(() => unwrap(api.GET('/v1/push_credentials')), []);
  const by = (p: Provider) => list.data?.data.find((c) => c.provider === p);
  const [fcmFile, setFcmFile] = useState<File | null>(null);
  const [p8File, setP8File] = useState<File | null>(null);
  const [apns, setApns] = useState({ key_id: '', team_id: '', topic: '', sandbox: false });
  const [vapid, setVapid] = useState({ private_key: '', subject: '' });
  const reload = () => void list.reload();
  return (
    <main id="main" data-testid="push-page">
      <PageTitle>Push credentials</PageTitle>
      <p>
        Bring your own push credentials so that wake-ups come from your white-labelled app. Secrets are sealed at rest and never shown again;
        only what identifies them is listed.
      </p>
      {list.loading && !list.data ? <Loading /> : null}
      <ErrorNote error={list.error} />
      <ProviderCard
        provider="fcm"
        current={by('fcm')}
        onChanged={reload}
        onSaved={() => setFcmFile(null)}
        body={async () => {
          if (!fcmFile) return 'Choose the service account JSON key file.';
          try {
            return { service_account: JSON.parse(await readFile(fcmFile)) as unknown };
          } catch {
            return 'That file is not JSON: download the service account key from the Firebase console.';
          }
        }}
      >
        <Field label="Service account key (JSON)">
          {(p) => <input {...p} type="file" accept="application/json,.json" onChange={(e) => setFcmFile(e.currentTarget.files?.[0] ?? null)} data-testid="push-fcm-file" />}
        </Field>
      </ProviderCard>
      <ProviderCard
        provider="apns"
        current={by('apns')}
        onChanged={reload}
        onSaved={() => {
          setP8File(null);
          setApns({ key_id: '', team_id: '', topic: '', sandbox: false });
        }}
        body={async () => {
          if (!p8File) return 'Choose the .p8 token key file.';
          return { key: await readFile(p8File), key_id: apns.key_id.trim(), team_id: apns.team_id.trim(), topic: apns.topic.trim(), sandbox: apns.sandbox };
        }}
      >
        <Field label="Token key (.p8)">
          {(p) => <input {...p} type="file" accept=".p8,application/pkcs8,application/x-pem-file" onChange={(e) => setP8File(e.currentTarget.files?.[0] ?? null)} data-testid="push-apns-file" />}
        </Field>
        <div class="row-fields">
          <Field label="Key ID">{(p) => <input {...p} required value={apns.key_id} onInput={(e) => setApns({ ...apns, key_id: e.currentTarget.value })} data-testid="push-apns-key-id" />}</Field>
          <Field label="Team ID">{(p) => <input {...p} required value={apns.team_id} onInput={(e) => setApns({ ...apns, team_id: e.currentTarget.value })} data-testid="push-apns-team-id" />}</Field>
        </div>
        <Field label="Topic (the app's bundle id)">
          {(p) => <input {...p} required value={apns.topic} onInput={(e) => setApns({ ...apns, topic: e.currentTarget.value })} data-testid="push-apns-topic" placeholder="com.example.dialer" />}
        </Field>
        <label class="check">
          <input type="checkbox" checked={apns.sandbox} onChange={(e) => setApns({ ...apns, sandbox: e.currentTarget.checked })} data-testid="push-apns-sandbox" /> Sandbox (development builds)
        </label>
      </ProviderCard>
      <ProviderCard
        provider="webpush"
        current={by('webpush')}
        onChanged={reload}
        onSaved={() => setVapid({ private_key: '', subject: '' })}
        body={async () => ({ private_key: vapid.private_key.trim(), subject: vapid.subject.trim() })}>
        <Field label="VAPID private key" hint="The raw P-256 private key, base64url. The public key is derived from it.">
          {(p) => <input {...p} required class="mono" autoComplete="off" value={vapid.private_key} onInput={(e) => setVapid({ ...vapid, private_key: e.currentTarget.value })} data-testid="push-vapid-private" />}
        </Field>
        <Field label="Subject" hint="A contact for push services: mailto:ops@example.com or https://example.com.">
          {(p) => <input {...p} required value={vapid.subject} onInput={(e) => setVapid({ ...vapid, subject: e.currentTarget.value })} data-testid="push-vapid-subject" />}
        </Field>
      </ProviderCard>
    </main>
  );
}
