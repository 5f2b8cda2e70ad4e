import { listProviders, loginUrl } from '../api';
import { ErrorNote, Loading, PageTitle, useAsync } from '../components/ui';

/** Shown whenever /v1/me answers 401: one button per configured provider. */
export function SignIn({ returnTo, reason }: { returnTo: string; reason?: string }) {
  const providers = useAsync(() => listProviders(), []);
  return (
    <main id="main" class="narrow center-page" data-testid="signin-page">
      <div class="card">
        <p class="brand brand-large" aria-hidden="true">
          pushdial
        </p>
        <PageTitle>Sign in</PageTitle>
        <p>{reason ?? 'Sign in to place calls through your phone and manage your organization.'}</p>
        {providers.loading && !providers.data ? <Loading /> : null}
        <ErrorNote error={providers.error} />
        {providers.data && providers.data.data.length === 0 ? (
          <p class="note" data-testid="signin-none">
            No sign-in provider is configured on this deployment. Ask its operator to set one up.
          </p>
        ) : null}
        <ul class="stack" aria-label="Sign-in providers">
          {providers.data?.data.map((p) => (
            <li key={p.id}>
              <a class="btn btn-primary btn-block" href={loginUrl(p, returnTo)} data-testid="signin-provider" data-provider={p.id}>
                Continue with {p.name}
              </a>
            </li>
          ))}
        </ul>
      </div>
    </main>
  );
}
