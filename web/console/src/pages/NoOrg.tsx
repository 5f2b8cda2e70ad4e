import type { Me } from '@pushdial/sdk';
import { useState } from 'preact/hooks';
import { api, setOrganization, unwrap } from '../api';
import { ErrorNote, Field, PageTitle } from '../components/ui';
import { countryOptions } from '../phone';
import { invitationToken } from '../session';
import { acceptInvitation } from './Join';

function defaultCountry(): string {
  const tag = navigator.language || 'en-US';
  const region = tag.split('-').find((p, i) => i > 0 && /^[A-Z]{2}$/.test(p));
  return region ?? 'US';
}

/** Create an organization (name, country). */
export function CreateOrgForm({ onCreated }: { onCreated: (orgId: string) => void }) {
  const [name, setName] = useState('');
  const [country, setCountry] = useState(defaultCountry);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const options = countryOptions();
  return (
    <form
      class="card"
      aria-labelledby="create-org-title"
      onSubmit={async (e) => {
        e.preventDefault();
        setBusy(true);
        setError(null);
        try {
          const m = await unwrap(api.POST('/v1/organizations', { body: { name: name.trim(), country } }));
          setOrganization(m.organization_id);
          onCreated(m.organization_id);
        } catch (err) {
          setError(err);
        } finally {
          setBusy(false);
        }
      }}
    >
      <h2 id="create-org-title" class="h3">Create an organization</h2>
      <Field label="Name">
        {(p) => <input {...p} required maxLength={200} value={name} onInput={(e) => setName(e.currentTarget.value)} data-testid="org-name" autoComplete="organization" />}
      </Field>
      <Field label="Country" hint="Calls may go to this country; you can allow more later.">
        {(p) => (
          <select {...p} value={country} onChange={(e) => setCountry(e.currentTarget.value)} data-testid="org-country">
            {options.map((o) => (
              <option key={o.code} value={o.code}>
                {o.name}
              </option>
            ))}
          </select>
        )}
      </Field>
      <ErrorNote error={error} />
      <button class="btn btn-primary" type="submit" disabled={busy || !name.trim()} data-testid="org-create">
        {busy ? 'Creating…' : 'Create organization'}
      </button>
    </form>
  );
}

/** Paste an invitation link or token. */
export function AcceptInvitationForm({ onJoined }: { onJoined: (orgId: string) => void }) {
  const [text, setText] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const token = invitationToken(text);
  return (
    <form
      class="card"
      aria-labelledby="accept-title"
      onSubmit={async (e) => {
        e.preventDefault();
        if (!token) return;
        setBusy(true);
        setError(null);
        try {
          onJoined(await acceptInvitation(token));
        } catch (err) {
          setError(err);
        } finally {
          setBusy(false);
        }
      }}
    >
      <h2 id="accept-title" class="h3">Join with an invitation</h2>
      <Field
        label="Invitation link or token"
        hint="The link looks like …/console/join#pd_inv_…"
        error={text.trim() && !token ? 'This is not an invitation link or token (pd_inv_…).' : undefined}
      >
        {(p) => <input {...p} value={text} onInput={(e) => setText(e.currentTarget.value)} data-testid="invite-token" class="mono" autoComplete="off" />}
      </Field>
      <ErrorNote error={error} />
      <button class="btn" type="submit" disabled={busy || !token} data-testid="invite-accept">
        {busy ? 'Joining…' : 'Join organization'}
      </button>
    </form>
  );
}

/** Shown to a signed-in user who belongs to no organization yet. */
export function NoOrg({ me, onReady }: { me: Me; onReady: (orgId: string) => void }) {
  return (
    <main id="main" class="narrow" data-testid="no-org-page">
      <PageTitle>Welcome{me.name ? `, ${me.name}` : ''}</PageTitle>
      <p>You are not a member of any organization yet. Create one, or join one you were invited to.</p>
      <div class="grid-2">
        <CreateOrgForm onCreated={onReady} />
        <AcceptInvitationForm onJoined={onReady} />
      </div>
    </main>
  );
}
