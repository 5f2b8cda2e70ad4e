import type { Me } from '@pushdial/sdk';
import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { api, getOrganization, onUnauthorized, ProblemError, setOrganization, unwrap } from './api';
import { ConfirmButton, ErrorNote, Loading, PageTitle } from './components/ui';
import { Account, doSignOut } from './pages/Account';
import { ApiKeys } from './pages/ApiKeys';
import { Audit } from './pages/Audit';
import { CallDetail, Calls } from './pages/Calls';
import { Dialer } from './pages/Dialer';
import { Dialing } from './pages/Dialing';
import { Join } from './pages/Join';
import { Members } from './pages/Members';
import { AcceptInvitationForm, CreateOrgForm, NoOrg } from './pages/NoOrg';
import { Pair } from './pages/Pair';
import { Push } from './pages/Push';
import { SignIn } from './pages/SignIn';
import { WebhookDetail, Webhooks } from './pages/Webhooks';
import { WidgetEdit, Widgets } from './pages/Widgets';
import { BASE, Link, type Location, match, navigate, useLocation } from './router';
import { type Session, SessionContext } from './session';

type MeState = { kind: 'loading' } | { kind: 'signed-out' } | { kind: 'error'; error: unknown } | { kind: 'ok'; me: Me };

interface NavItem {
  to: string;
  label: string;
  admin?: boolean;
  testid: string;
}

const NAV: NavItem[] = [
  { to: '/', label: 'Dialer', testid: 'nav-dialer' },
  { to: '/pair', label: 'Pair a phone', testid: 'nav-pair' },
  { to: '/calls', label: 'Calls', testid: 'nav-calls' },
  { to: '/members', label: 'Members', admin: true, testid: 'nav-members' },
  { to: '/api-keys', label: 'API keys', admin: true, testid: 'nav-api-keys' },
  { to: '/webhooks', label: 'Webhooks', admin: true, testid: 'nav-webhooks' },
  { to: '/widgets', label: 'Widgets', admin: true, testid: 'nav-widgets' },
  { to: '/push', label: 'Push credentials', admin: true, testid: 'nav-push' },
  { to: '/dialing', label: 'Dialing policy', admin: true, testid: 'nav-dialing' },
  { to: '/audit', label: 'Audit log', admin: true, testid: 'nav-audit' },
];

function isCurrent(item: NavItem, path: string): boolean {
  if (item.to === '/') return path === '/' || path === '/dial';
  return path === item.to || path.startsWith(`${item.to}/`);
}

function NotAllowed() {
  return (
    <main id="main" data-testid="not-allowed">
      <PageTitle>Not allowed</PageTitle>
      <p>Only owners and admins of this organization can open this page.</p>
      <p>
        <Link to="/">Go to the dialer</Link>
      </p>
    </main>
  );
}

function NotFound() {
  return (
    <main id="main" data-testid="not-found">
      <PageTitle>Page not found</PageTitle>
      <p>
        <Link to="/">Go to the dialer</Link>
      </p>
    </main>
  );
}

function NewOrganization({ onReady }: { onReady: (orgId: string) => void }) {
  return (
    <main id="main" data-testid="new-org-page">
      <PageTitle>Another organization</PageTitle>
      <div class="grid-2">
        <CreateOrgForm onCreated={onReady} />
        <AcceptInvitationForm onJoined={onReady} />
      </div>
    </main>
  );
}

function route(loc: Location, isAdmin: boolean, onReady: (orgId: string) => void): ComponentChildren {
  const p = loc.path;
  const admin = (page: ComponentChildren) => (isAdmin ? page : <NotAllowed />);
  if (p === '/') return <Dialer />;
  if (p === '/dial') return <Dialer initialNumber={loc.search.get('to') ?? ''} />;
  if (p === '/pair') return <Pair />;
  if (p === '/calls') return <Calls />;
  let m = match('/calls/:id', p);
  if (m) return <CallDetail id={m.id as string} />;
  if (p === '/account') return <Account />;
  if (p === '/organizations/new') return <NewOrganization onReady={onReady} />;
  if (p === '/members') return admin(<Members />);
  if (p === '/api-keys') return admin(<ApiKeys />);
  if (p === '/webhooks') return admin(<Webhooks />);
  m = match('/webhooks/:id', p);
  if (m) return admin(<WebhookDetail id={m.id as string} />);
  if (p === '/widgets') return admin(<Widgets />);
  if (p === '/widgets/new') return admin(<WidgetEdit id={null} />);
  m = match('/widgets/:id', p);
  if (m) return admin(<WidgetEdit id={m.id as string} />);
  if (p === '/push') return admin(<Push />);
  if (p === '/dialing') return admin(<Dialing />);
  if (p === '/audit') return admin(<Audit />);
  return <NotFound />;
}

function UserMenu({ me }: { me: Me }) {
  const [open, setOpen] = useState(false);
  const ref = useRef<HTMLDivElement>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    if (!open) return;
    const onDoc = (e: MouseEvent) => {
      if (ref.current && !ref.current.contains(e.target as Node)) setOpen(false);
    };
    const onKey = (e: KeyboardEvent) => {
      if (e.key === 'Escape') {
        setOpen(false);
        (ref.current?.querySelector('button') as HTMLButtonElement | null)?.focus();
      }
    };
    document.addEventListener('mousedown', onDoc);
    document.addEventListener('keydown', onKey);
    return () => {
      document.removeEventListener('mousedown', onDoc);
      document.removeEventListener('keydown', onKey);
    };
  }, [open]);
  return (
    <div class="user-menu" ref={ref}>
      <button type="button" class="btn btn-quiet" aria-expanded={open} aria-controls="user-menu-panel" onClick={() => setOpen(!open)} data-testid="user-menu">
        <span class="avatar" aria-hidden="true">
          {(me.name || me.email || '?').slice(0, 1).toUpperCase()}
        </span>
        <span class="user-name">{me.name || me.email || 'Account'}</span>
      </button>
      {open ? (
        <div id="user-menu-panel" class="menu-panel" data-testid="user-menu-panel">
          <p class="small muted">
            Signed in as {me.email ?? me.name}
            {me.identities.length > 0 ? ` with ${me.identities.map((i) => i.provider).join(', ')}` : ''}
          </p>
          <Link to="/account" class="menu-item" onClick={() => setOpen(false)} data-testid="menu-account">
            Account and sign-in identities
          </Link>
          <button type="button" class="menu-item" onClick={() => doSignOut(false).catch(setError)} data-testid="menu-signout">
            Sign out
          </button>
          <ConfirmButton label="Sign out everywhere" confirm="End all your sessions?" yes="Yes" testid="menu-signout-everywhere" onConfirm={() => doSignOut(true)} />
          <ErrorNote error={error} />
        </div>
      ) : null}
    </div>
  );
}

function Shell({ session, loc }: { session: Session; loc: Location }) {
  const [navOpen, setNavOpen] = useState(false);
  useEffect(() => setNavOpen(false), [loc.path]);
  const { me, orgId, isAdmin } = session;
  const onReady = (id: string) => {
    void session.reloadMe().then(() => {
      session.switchOrg(id);
      navigate('/');
    });
  };
  return (
    <SessionContext.Provider value={session}>
      <a class="skip-link" href="#main">
        Skip to content
      </a>
      <header class="topbar">
        <button type="button" class="btn btn-quiet menu-toggle" aria-expanded={navOpen} aria-controls="main-nav" onClick={() => setNavOpen(!navOpen)} data-testid="nav-toggle">
          <span aria-hidden="true">☰</span>
          <span class="sr-only">Menu</span>
        </button>
        <Link to="/" class="brand" data-testid="brand">
          pushdial
        </Link>
        <div class="org-switcher">
          <label for="org-switcher" class="sr-only">
            Organization
          </label>
          <select
            id="org-switcher"
            value={orgId}
            data-testid="org-switcher"
            onChange={(e) => {
              const v = e.currentTarget.value;
              if (v === '__new') {
                e.currentTarget.value = orgId;
                navigate('/organizations/new');
              } else session.switchOrg(v);
            }}
          >
            {me.memberships.map((m) => (
              <option key={m.organization_id} value={m.organization_id}>
                {m.organization_name} ({m.role})
              </option>
            ))}
            <option value="__new">+ Create or join another…</option>
          </select>
        </div>
        <UserMenu me={me} />
      </header>
      <div class="layout">
        <nav id="main-nav" aria-label="Main" class={navOpen ? 'open' : ''} data-testid="nav">
          <ul>
            {NAV.filter((n) => !n.admin || isAdmin).map((n) => (
              <li key={n.to}>
                <Link to={n.to} aria-current={isCurrent(n, loc.path) ? 'page' : undefined} data-testid={n.testid}>
                  {n.label}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
        <div class="content" key={orgId}>
          {route(loc, isAdmin, onReady)}
        </div>
      </div>
    </SessionContext.Provider>
  );
}

export function App() {
  const loc = useLocation();
  const [state, setState] = useState<MeState>({ kind: 'loading' });
  const [orgId, setOrgId] = useState<string | null>(getOrganization());

  const loadMe = useCallback(async () => {
    try {
      const me = await unwrap(api.GET('/v1/me'));
      setState({ kind: 'ok', me });
    } catch (e) {
      if (e instanceof ProblemError && e.status === 401) setState({ kind: 'signed-out' });
      else setState({ kind: 'error', error: e });
    }
  }, []);

  useEffect(() => {
    void loadMe();
  }, [loadMe]);
  useEffect(() => onUnauthorized(() => setState({ kind: 'signed-out' })), []);

  const me = state.kind === 'ok' ? state.me : null;
  const membership = useMemo(() => {
    if (!me || me.memberships.length === 0) return null;
    return me.memberships.find((m) => m.organization_id === orgId) ?? me.memberships[0] ?? null;
  }, [me, orgId]);

  useEffect(() => {
    if (membership && membership.organization_id !== getOrganization()) {
      setOrganization(membership.organization_id);
      setOrgId(membership.organization_id);
    }
  }, [membership]);

  const switchOrg = useCallback((id: string) => {
    setOrganization(id);
    setOrgId(id);
  }, []);

  const afterJoin = useCallback(
    (id: string) => {
      switchOrg(id);
      void loadMe().then(() => navigate('/', { replace: true }));
    },
    [loadMe, switchOrg],
  );

  if (state.kind === 'loading') {
    return (
      <main id="main" class="center-page">
        <Loading />
      </main>
    );
  }
  if (state.kind === 'signed-out') {
    const join = loc.path === '/join';
    const here = `${BASE}${loc.path === '/' ? '/' : loc.path}${loc.search.toString() ? `?${loc.search}` : ''}`;
    return (
      <SignIn
        returnTo={join ? `${BASE}/join` : here.length <= 500 ? here : `${BASE}/`}
        reason={join ? 'Sign in (or create an account with your sign-in provider) to accept your invitation.' : undefined}
      />
    );
  }
  if (state.kind === 'error') {
    return (
      <main id="main" class="narrow center-page" data-testid="load-error">
        <PageTitle>Cannot load the console</PageTitle>
        <ErrorNote error={state.error} />
        <button type="button" class="btn" onClick={() => void loadMe()}>
          Try again
        </button>
      </main>
    );
  }
  const current = state.me;
  if (loc.path === '/join') return <Join onJoined={afterJoin} />;
  if (!membership) return <NoOrg me={current} onReady={afterJoin} />;
  const role = membership.role;
  const session: Session = {
    me: current,
    membership,
    orgId: membership.organization_id,
    role,
    isAdmin: role === 'owner' || role === 'admin',
    isOwner: role === 'owner',
    reloadMe: loadMe,
    switchOrg,
  };
  return <Shell session={session} loc={loc} />;
}
