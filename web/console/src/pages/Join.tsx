import { useEffect, useRef, useState } from 'preact/hooks';
import { api, setOrganization, unwrap } from '../api';
import { ErrorNote, Loading, PageTitle } from '../components/ui';
import { Link } from '../router';
import { clearInvitation, takeStoredInvitation } from '../session';

/** Accepts an invitation and makes its organization the current one. */
export async function acceptInvitation(token: string): Promise<string> {
  const m = await unwrap(api.POST('/v1/invitations/accept', { body: { token } }));
  setOrganization(m.organization_id);
  return m.organization_id;
}

/**
 * `/console/join#pd_inv_…`: the app stored the token before anything else (it would not
 * survive the sign-in redirect); here the signed-in user accepts it.
 */
export function Join({ onJoined }: { onJoined: (orgId: string) => void }) {
  const [error, setError] = useState<unknown>(null);
  const [missing, setMissing] = useState(false);
  const started = useRef(false);
  useEffect(() => {
    if (started.current) return;
    started.current = true;
    const token = takeStoredInvitation();
    if (!token) {
      setMissing(true);
      return;
    }
    acceptInvitation(token)
      .then((org) => {
        clearInvitation();
        onJoined(org);
      })
      .catch((e) => {
        clearInvitation();
        setError(e);
      });
  }, [onJoined]);
  return (
    <main id="main" class="narrow" data-testid="join-page">
      <PageTitle>Join organization</PageTitle>
      {missing ? (
        <p class="note" data-testid="join-missing">
          This link holds no invitation. Open the full invitation link you received, or paste it on the{' '}
          <Link to="/">console's start page</Link>.
        </p>
      ) : error ? (
        <>
          <ErrorNote error={error} testid="join-error" />
          <p>
            <Link to="/">Go to the console</Link>
          </p>
        </>
      ) : (
        <Loading label="Accepting the invitation…" />
      )}
    </main>
  );
}
