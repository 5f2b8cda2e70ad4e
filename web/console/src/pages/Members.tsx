import type { Invitation, Membership } from '@pushdial/sdk';
import { useState } from 'preact/hooks';
import { api, unwrap } from '../api';
import { ConfirmButton, CopyButton, ErrorNote, Field, LoadMore, Loading, PageTitle, StatusBadge, TableWrap, Time, usePaged } from '../components/ui';
import { useSession } from '../session';

const ROLES = ['owner', 'admin', 'agent'] as const;

function MemberRow({ m, onChanged, onRemoved }: { m: Membership; onChanged: (m: Membership) => void; onRemoved: () => void }) {
  const { me, isOwner } = useSession();
  const [error, setError] = useState<unknown>(null);
  const self = m.user_id === me.id;
  const manageable = isOwner || m.role !== 'owner';
  return (
    <tr data-testid="member-row" data-user-id={m.user_id} data-role={m.role}>
      <td>
        {m.name || <span class="muted">—</span>}
        {self ? <span class="muted"> (you)</span> : null}
      </td>
      <td>{m.email ?? <span class="muted">—</span>}</td>
      <td>
        <label class="sr-only" for={`role-${m.user_id}`}>
          Role of {m.name || m.email || m.user_id}
        </label>
        <select
          id={`role-${m.user_id}`}
          value={m.role}
          disabled={!manageable}
          data-testid="member-role"
          onChange={async (e) => {
            const role = e.currentTarget.value;
            setError(null);
            try {
              onChanged(await unwrap(api.PATCH('/v1/members/{user_id}', { params: { path: { user_id: m.user_id } }, body: { role } })));
            } catch (err) {
              setError(err);
              e.currentTarget.value = m.role;
            }
          }}
        >
          {ROLES.filter((r) => isOwner || r !== 'owner' || m.role === 'owner').map((r) => (
            <option key={r} value={r}>
              {r}
            </option>
          ))}
        </select>
        <ErrorNote error={error} />
      </td>
      <td>
        <Time iso={m.created_at} />
      </td>
      <td>
        <ConfirmButton
          label={self ? 'Leave' : 'Remove'}
          confirm={self ? 'Leave this organization? Your phones here are unpaired.' : `Remove ${m.name || 'this member'}? Their phones are unpaired.`}
          testid="member-remove"
          disabled={!manageable}
          onConfirm={async () => {
            await unwrap(api.DELETE('/v1/members/{user_id}', { params: { path: { user_id: m.user_id } } }));
            onRemoved();
          }}
        />
      </td>
    </tr>
  );
}

function InviteForm({ onInvited }: { onInvited: (i: Invitation) => void }) {
  const { isOwner } = useSession();
  const [email, setEmail] = useState('');
  const [role, setRole] = useState('agent');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [created, setCreated] = useState<Invitation | null>(null);
  return (
    <form
      class="card"
      aria-labelledby="invite-title"
      onSubmit={async (e) => {
        e.preventDefault();
        setBusy(true);
        setError(null);
        setCreated(null);
        try {
          const inv = await unwrap(api.POST('/v1/invitations', { body: { role, ...(email.trim() ? { email: email.trim() } : {}) } }));
          setCreated(inv);
          setEmail('');
          onInvited(inv);
        } catch (err) {
          setError(err);
        } finally {
          setBusy(false);
        }
      }}
    >
      <h2 id="invite-title" class="h3">
        Invite someone
      </h2>
      <div class="row-fields">
        <Field label="E-mail (optional)" hint="Sent by e-mail when the deployment can send mail; otherwise you get a link to pass on.">
          {(p) => <input {...p} type="email" value={email} onInput={(e) => setEmail(e.currentTarget.value)} data-testid="invite-email" autoComplete="off" />}
        </Field>
        <Field label="Role">
          {(p) => (
            <select {...p} value={role} onChange={(e) => setRole(e.currentTarget.value)} data-testid="invite-role">
              <option value="agent">agent — places calls with their phone</option>
              <option value="admin">admin — manages the organization</option>
              {isOwner ? <option value="owner">owner</option> : null}
            </select>
          )}
        </Field>
      </div>
      <ErrorNote error={error} />
      {created?.url ? (
        <div class="note note-secret" role="status">
          <p>
            <strong>Invitation link</strong> — give it to the person you invite. It works once, for 7 days, and is shown only now.
          </p>
          <div class="copy-row">
            <input readOnly value={created.url} class="mono" aria-label="Invitation link" data-testid="invite-link" onFocus={(e) => e.currentTarget.select()} />
            <CopyButton text={created.url} testid="invite-link-copy" />
          </div>
        </div>
      ) : created ? (
        <p class="note note-ok" role="status" data-testid="invite-sent">
          Invitation sent by e-mail{created.email ? ` to ${created.email}` : ''}.
        </p>
      ) : null}
      <button class="btn btn-primary" type="submit" disabled={busy} data-testid="invite-create">
        {busy ? 'Inviting…' : 'Create invitation'}
      </button>
    </form>
  );
}

export function Members() {
  const { me, reloadMe } = useSession();
  const members = usePaged((after) => unwrap(api.GET('/v1/members', { params: { query: { limit: 100, ...(after ? { starting_after: after } : {}) } } })).then((p) => ({ ...p, data: p.data.map((m) => ({ ...m, id: m.user_id })) })), []);
  const invitations = usePaged((after) => unwrap(api.GET('/v1/invitations', { params: { query: { limit: 50, ...(after ? { starting_after: after } : {}) } } })), []);
  return (
    <main id="main" data-testid="members-page">
      <PageTitle>Members</PageTitle>
      <section class="card">
        <ErrorNote error={members.error} />
        {members.items.length > 0 ? (
          <TableWrap label="Members">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">E-mail</th>
                <th scope="col">Role</th>
                <th scope="col">Joined</th>
                <th scope="col">
                  <span class="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {members.items.map((m) => (
                <MemberRow
                  key={m.user_id}
                  m={m}
                  onChanged={(nm) => {
                    members.setItems((items) => items.map((x) => (x.user_id === nm.user_id ? { ...nm, id: nm.user_id } : x)));
                    if (nm.user_id === me.id) void reloadMe();
                  }}
                  onRemoved={() => {
                    members.setItems((items) => items.filter((x) => x.user_id !== m.user_id));
                    if (m.user_id === me.id) void reloadMe();
                  }}
                />
              ))}
            </tbody>
          </TableWrap>
        ) : null}
        {members.loading ? <Loading /> : null}
        <LoadMore paged={members} />
      </section>
      <InviteForm onInvited={() => void invitations.reload()} />
      <section class="card" aria-labelledby="invitations-title">
        <h2 id="invitations-title" class="h3">
          Invitations
        </h2>
        <ErrorNote error={invitations.error} />
        {invitations.items.length > 0 ? (
          <TableWrap label="Invitations">
            <thead>
              <tr>
                <th scope="col">E-mail</th>
                <th scope="col">Role</th>
                <th scope="col">Status</th>
                <th scope="col">Sent</th>
                <th scope="col">Expires</th>
                <th scope="col">
                  <span class="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {invitations.items.map((i) => (
                <tr key={i.id} data-testid="invitation-row" data-status={i.status}>
                  <td>{i.email ?? <span class="muted">link</span>}</td>
                  <td>{i.role}</td>
                  <td>
                    <StatusBadge status={i.status} />
                  </td>
                  <td>
                    <Time iso={i.created_at} />
                  </td>
                  <td>
                    <Time iso={i.expires_at} />
                  </td>
                  <td>
                    {i.status === 'pending' ? (
                      <ConfirmButton
                        label="Revoke"
                        confirm="Revoke this invitation?"
                        testid="invitation-revoke"
                        onConfirm={async () => {
                          const r = await unwrap(api.DELETE('/v1/invitations/{invitation_id}', { params: { path: { invitation_id: i.id } } }));
                          invitations.setItems((items) => items.map((x) => (x.id === r.id ? r : x)));
                        }}
                      />
                    ) : null}
                  </td>
                </tr>
              ))}
            </tbody>
          </TableWrap>
        ) : !invitations.loading ? (
          <p class="muted">No invitations.</p>
        ) : null}
        <LoadMore paged={invitations} />
      </section>
    </main>
  );
}
