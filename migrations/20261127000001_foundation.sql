-- Foundation schema: tenants, agents and their devices, calls with their events,
-- idempotency records and the durable job queue. Forward-only.

create table organizations (
    id          text primary key,
    name        text not null,
    created_at  timestamptz not null default now()
);

create table api_keys (
    id          text primary key,
    org_id      text not null references organizations (id) on delete cascade,
    kind        text not null check (kind in ('secret', 'publishable')),
    key_hash    bytea not null,
    last4       text not null,
    created_at  timestamptz not null default now(),
    revoked_at  timestamptz,
    constraint api_keys_key_hash_key unique (key_hash)
);
create index api_keys_org_idx on api_keys (org_id, id);

create table agents (
    id          text primary key,
    org_id      text not null references organizations (id) on delete cascade,
    name        text not null,
    email       text,
    created_at  timestamptz not null default now()
);
create index agents_org_idx on agents (org_id, id);

create table pairing_codes (
    code_hash   bytea primary key,
    org_id      text not null references organizations (id) on delete cascade,
    agent_id    text not null references agents (id) on delete cascade,
    expires_at  timestamptz not null,
    used_at     timestamptz,
    created_at  timestamptz not null default now()
);

create table devices (
    id                text primary key,
    org_id            text not null references organizations (id) on delete cascade,
    agent_id          text not null references agents (id) on delete cascade,
    name              text not null,
    platform          text not null,
    token_hash        bytea not null,
    push_channel      text,
    push_token        text,
    push_rejected_at  timestamptz,
    app_version       text,
    capabilities      text[] not null default '{}',
    auto_dial         boolean not null default false,
    -- any authenticated agent request; makes a push channel count as fresh
    last_seen_at      timestamptz,
    -- last heartbeat on a live socket; presence fallback when Redis is down
    stream_seen_at    timestamptz,
    created_at        timestamptz not null default now(),
    revoked_at        timestamptz,
    constraint devices_token_hash_key unique (token_hash)
);
create index devices_org_agent_idx on devices (org_id, agent_id);

create table calls (
    id                   text primary key,
    org_id               text not null references organizations (id) on delete cascade,
    agent_id             text not null references agents (id) on delete cascade,
    -- the device the caller asked for, if any (then no other device is tried)
    target_device_id     text references devices (id) on delete set null,
    -- the device the call is offered to, or that took it
    device_id            text references devices (id) on delete set null,
    attempted_device_ids text[] not null default '{}',
    to_number            text not null,
    confirm              text not null check (confirm in ('prompt', 'auto')),
    status               text not null,
    reason               text,
    metadata             jsonb not null default '{}',
    duration_s           integer,
    expires_at           timestamptz not null,
    created_at           timestamptz not null default now(),
    updated_at           timestamptz not null default now()
);
create index calls_org_idx on calls (org_id, id desc);
create index calls_org_status_idx on calls (org_id, status, id desc);

create table call_events (
    -- insertion order: events of one call are written under the call's row lock
    seq         bigint generated always as identity,
    id          text primary key,
    org_id      text not null references organizations (id) on delete cascade,
    call_id     text not null references calls (id) on delete cascade,
    status      text not null,
    observed    boolean not null,
    reason      text,
    device_id   text,
    created_at  timestamptz not null default now()
);
create index call_events_call_idx on call_events (call_id, seq);

create table idempotency_keys (
    org_id        text not null references organizations (id) on delete cascade,
    key           text not null,
    request_hash  bytea not null,
    status        smallint not null,
    body          jsonb not null,
    created_at    timestamptz not null default now(),
    primary key (org_id, key)
);
create index idempotency_keys_created_idx on idempotency_keys (created_at);

create table jobs (
    id                bigint generated always as identity primary key,
    kind              text not null,
    payload           jsonb not null,
    run_at            timestamptz not null default now(),
    attempts          integer not null default 0,
    max_attempts      integer not null default 20,
    lease_owner       text,
    lease_expires_at  timestamptz,
    last_error        text,
    dead_at           timestamptz,
    created_at        timestamptz not null default now()
);
-- the claim query: ready, unleased, live jobs by due time
create index jobs_ready_idx on jobs (run_at) where lease_owner is null and dead_at is null;
create index jobs_lease_idx on jobs (lease_expires_at) where lease_owner is not null;
