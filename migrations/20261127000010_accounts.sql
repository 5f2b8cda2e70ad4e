-- People and their access: users with identities from OAuth/OIDC providers, memberships
-- (user × organization × role), console sessions, pending sign-ins, invitations, API key
-- management (names, creators, last use, rolling) and the audit log. Forward-only.

create table users (
    id          text primary key,
    name        text not null,
    email       text,
    created_at  timestamptz not null default now()
);

-- Keyed by (issuer, subject), never by e-mail: two providers asserting the same address
-- are two identities, and a user may link several.
create table identities (
    id            text not null unique,
    issuer        text not null,
    subject       text not null,
    user_id       text not null references users (id) on delete cascade,
    provider      text not null,
    email         text,
    created_at    timestamptz not null default now(),
    last_used_at  timestamptz not null default now(),
    primary key (issuer, subject)
);
create index identities_user_idx on identities (user_id);

-- The agent is the member: a member's calls and devices belong to the agent row bound to
-- the user (created when they join). Agents created through the API have no user.
alter table agents add column user_id text references users (id) on delete set null;
create unique index agents_org_user_idx on agents (org_id, user_id) where user_id is not null;

create table memberships (
    org_id      text not null references organizations (id) on delete cascade,
    user_id     text not null references users (id) on delete cascade,
    role        text not null check (role in ('owner', 'admin', 'agent')),
    agent_id    text not null references agents (id) on delete cascade,
    created_at  timestamptz not null default now(),
    primary key (org_id, user_id)
);
create index memberships_user_idx on memberships (user_id);

-- Console sessions. Redis holds the hot copy; this table is the durable one (and the
-- fallback when Redis is down). Only the SHA-256 of the cookie value is stored.
create table sessions (
    id_hash       bytea primary key,
    user_id       text not null references users (id) on delete cascade,
    created_at    timestamptz not null default now(),
    last_seen_at  timestamptz not null default now(),
    -- the absolute limit; the idle limit is counted from last_seen_at
    expires_at    timestamptz not null,
    revoked_at    timestamptz,
    ip            text,
    user_agent    text
);
create index sessions_user_idx on sessions (user_id) where revoked_at is null;

-- Authorization requests in flight: state (hashed), the PKCE verifier and nonce (sealed),
-- single use, ten minutes.
create table sign_ins (
    state_hash    bytea primary key,
    provider      text not null,
    secrets       bytea not null,
    return_to     text,
    -- set when a signed-in user links another identity: the user, and the session that
    -- asked (it must still be live when the link completes)
    link_user_id  text references users (id) on delete cascade,
    link_session_hash bytea,
    created_at    timestamptz not null default now(),
    used_at       timestamptz
);
create index sign_ins_created_idx on sign_ins (created_at);

create table invitations (
    id           text primary key,
    org_id       text not null references organizations (id) on delete cascade,
    email        text,
    role         text not null check (role in ('owner', 'admin', 'agent')),
    token_hash   bytea not null,
    invited_by   text references users (id) on delete set null,
    created_at   timestamptz not null default now(),
    expires_at   timestamptz not null,
    accepted_at  timestamptz,
    accepted_by  text references users (id) on delete set null,
    revoked_at   timestamptz,
    constraint invitations_token_hash_key unique (token_hash)
);
create index invitations_org_idx on invitations (org_id, id desc);

alter table api_keys
    add column name          text not null default '',
    add column created_by    text references users (id) on delete set null,
    add column last_used_at  timestamptz,
    -- set when the key was rolled: it keeps working until then
    add column expires_at    timestamptz,
    add column rolled_to     text;

create table audit_events (
    id           text primary key,
    -- null for acts outside any organization (a failed sign-in of an unknown identity)
    org_id       text references organizations (id) on delete cascade,
    action       text not null,
    actor_type   text not null check (actor_type in ('user', 'api_key', 'device', 'system', 'anonymous')),
    actor_id     text,
    target_type  text,
    target_id    text,
    ip           text,
    user_agent   text,
    data         jsonb not null default '{}',
    created_at   timestamptz not null default now()
);
create index audit_events_org_idx on audit_events (org_id, id desc);
