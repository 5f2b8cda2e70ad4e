// Who is signed in and in which organization the console acts.
import type { Me, Membership } from '@pushdial/sdk';
import { createContext } from 'preact';
import { useContext } from 'preact/hooks';

export interface Session {
  me: Me;
  /** The membership of the organization the console acts in. */
  membership: Membership;
  orgId: string;
  role: string;
  /** Owners and admins see the admin pages. */
  isAdmin: boolean;
  isOwner: boolean;
  reloadMe: () => Promise<void>;
  switchOrg: (orgId: string) => void;
}

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error('useSession outside a signed-in organization');
  return s;
}

export const INVITATION_KEY = 'pushdial.console.invitation';

/** Keeps an invitation token for after sign-in (the URL fragment does not survive it). */
export function storeInvitation(token: string): void {
  try {
    sessionStorage.setItem(INVITATION_KEY, token);
  } catch {
    // storage disabled: the token is only in memory
  }
  pendingInvitation = token;
}

let pendingInvitation: string | null = null;

export function takeStoredInvitation(): string | null {
  try {
    return sessionStorage.getItem(INVITATION_KEY) ?? pendingInvitation;
  } catch {
    return pendingInvitation;
  }
}

export function clearInvitation(): void {
  pendingInvitation = null;
  try {
    sessionStorage.removeItem(INVITATION_KEY);
  } catch {
    // nothing stored
  }
}

/** The token in an invitation link or pasted text: `…/console/join#pd_inv_…` or `pd_inv_…`. */
export function invitationToken(text: string): string | null {
  const t = text.trim();
  const hash = t.indexOf('#');
  const candidate = hash >= 0 ? t.slice(hash + 1) : t;
  return /^pd_inv_[A-Za-z0-9_-]+$/.test(candidate) ? candidate : null;
}
