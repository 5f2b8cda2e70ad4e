import { useState } from 'preact/hooks';
import { api, listProviders, loginUrl, signOut, unwrap } from '../api';
import { ConfirmButton, ErrorNote, PageTitle, Time, useAsync } from '../components/ui';
import { useSession } from '../session';

/** After sign-out: a fresh load shows the sign-in page. */
export async function doSignOut(everywhere: boolean): Promise<void> {
  await signOut(everywhere);
  location.assign('/console/');
}

export function Account() {
  const { me, reloadMe } = useSession();
  const providers = useAsync(() => listProviders(), []);
  const [error, setError] = useState<unknown>(null);
  return (
    <main id="main" data-testid="account-page">
      <PageTitle>Your account</PageTitle>
      <section class="card" aria-labelledby="profile-title">
        <h2 id="profile-title" class="h3">
          {me.name || 'Signed in'}
        </h2>
        <dl class="facts">
          <dt>E-mail</dt>
          <dd>{me.email ?? '—'}</dd>
          <dt>Session ends</dt>
          <dd>
            at the latest <Time iso={me.session_expires_at} />
          </dd>
        </dl>
      </section>
      <section class="card" aria-labelledby="identities-title">
        <h2 id="identities-title" class="h3">
          Sign-in identities
        </h2>
        <ul class="list" data-testid="identities">
          {me.identities.map((i) => (
            <li key={i.id} class="row space-between wrap" data-testid="identity">
              <span>
                <strong>{i.provider}</strong> {i.email ?? i.subject} <span class="muted small">({i.issuer})</span>
                <span class="muted small">
                  {' '}
                  · added <Time iso={i.created_at} />
                </span>
              </span>
              <ConfirmButton
                label="Remove"
                confirm="Remove this way to sign in?"
                testid="identity-remove"
                disabled={me.identities.length < 2}
                onConfirm={async () => {
                  await unwrap(api.DELETE('/v1/me/identities/{identity_id}', { params: { path: { identity_id: i.id } } }));
                  await reloadMe();
                }}
              />
            </li>
          ))}
        </ul>
        <p class="muted small">Linking another sign-in works within 15 minutes of signing in.</p>
        <div class="row wrap">
          {providers.data?.data.map((p) => (
            <a key={p.id} class="btn" href={loginUrl(p, '/console/account', true)} data-testid="identity-link" data-provider={p.id}>
              Link {p.name}
            </a>
          ))}
        </div>
      </section>
      <section class="card" aria-labelledby="signout-title">
        <h2 id="signout-title" class="h3">
          Sign out
        </h2>
        <ErrorNote error={error} />
        <div class="row wrap">
          <button type="button" class="btn" data-testid="signout" onClick={() => doSignOut(false).catch(setError)}>
            Sign out
          </button>
          <ConfirmButton label="Sign out everywhere" confirm="End every session of yours, on every device?" yes="Yes, everywhere" testid="signout-everywhere" onConfirm={() => doSignOut(true)} />
        </div>
      </section>
    </main>
  );
}
