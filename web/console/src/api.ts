// The console's access to the api: one @pushdial/sdk client that follows the
// organization switcher, plus untyped helpers for the routes the OpenAPI document does
// not describe (sign-in and sign-out under /auth).
import { createPushdial, ProblemError, unwrap } from '@pushdial/sdk';

export { ProblemError, unwrap };

const ORG_KEY = 'pushdial.console.organization';

let currentOrg: string | null = readStoredOrg();

function readStoredOrg(): string | null {
  try {
    return localStorage.getItem(ORG_KEY);
  } catch {
    return null;
  }
}

/** The organization every /v1 call acts in (`Pushdial-Organization`). */
export function getOrganization(): string | null {
  return currentOrg;
}

/** Switches organization and remembers the choice for the next visit. */
export function setOrganization(org: string | null): void {
  currentOrg = org;
  try {
    if (org) localStorage.setItem(ORG_KEY, org);
    else localStorage.removeItem(ORG_KEY);
  } catch {
    // private mode: the choice lasts for this page only
  }
}

type Listener = () => void;
const unauthorizedListeners = new Set<Listener>();

/** Called whenever an answer is 401: the session ended, show the sign-in page. */
export function onUnauthorized(listener: Listener): () => void {
  unauthorizedListeners.add(listener);
  return () => unauthorizedListeners.delete(listener);
}

function notifyUnauthorized(request: Request): void {
  // /v1/me answering 401 is how the app learns it is signed out: no need to re-check.
  if (new URL(request.url).pathname === '/v1/me') return;
  unauthorizedListeners.forEach((l) => l());
}

export const api = createPushdial({ organization: () => currentOrg });
api.use({
  onResponse({ request, response }) {
    if (response.status === 401) notifyUnauthorized(request);
    return undefined;
  },
});

/**
 * A request outside the typed client: same credentials and headers, same errors.
 * Returns the parsed JSON body (or null for an empty answer); throws ProblemError.
 */
export async function request<T>(method: string, path: string, body?: unknown, opts: { org?: boolean } = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (opts.org !== false && currentOrg) headers['Pushdial-Organization'] = currentOrg;
  let response: Response;
  try {
    response = await fetch(path, {
      method,
      headers,
      credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ProblemError({
      status: 0,
      code: 'network_error',
      title: 'Network error',
      detail: `Could not reach the server${e instanceof Error ? `: ${e.message}` : ''}`,
    });
  }
  const text = await response.text();
  let parsed: unknown = null;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = text;
    }
  }
  if (!response.ok) {
    if (response.status === 401) notifyUnauthorized(new Request(new URL(path, location.href)));
    throw ProblemError.fromResponse(response, parsed);
  }
  return parsed as T;
}

/** One page of a cursor-paginated list. */
export interface Page<T> {
  object?: string;
  data: T[];
  has_more: boolean;
}

export interface Provider {
  id: string;
  name: string;
  login_url: string;
}

/** `GET /auth/providers`: the configured sign-in providers. */
export function listProviders(): Promise<Page<Provider>> {
  return request<Page<Provider>>('GET', '/auth/providers', undefined, { org: false });
}

/** `POST /auth/logout`: ends this session, or every session of the user. */
export function signOut(everywhere: boolean): Promise<{ sessions_ended: number }> {
  return request('POST', `/auth/logout${everywhere ? '?everywhere=true' : ''}`, undefined, { org: false });
}

/** The URL that starts a sign-in and comes back to `returnTo` (a path on this site). */
export function loginUrl(provider: Provider, returnTo: string, link = false): string {
  const q = new URLSearchParams({ return_to: returnTo });
  if (link) q.set('link', 'true');
  return `${provider.login_url}?${q}`;
}

/** A human sentence for any error, for an alert. */
export function errorMessage(e: unknown): string {
  if (e instanceof ProblemError) return e.detail;
  if (e instanceof Error) return e.message;
  return String(e);
}
