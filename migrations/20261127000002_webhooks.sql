-- Webhooks: the organization's event log, its endpoints, one message per event and
-- endpoint, and every delivery attempt. Forward-only.

create table events (
    seq           bigint generated always as identity,
    id            text primary key,
    org_id        text not null references organizations (id) on delete cascade,
    type          text not null,
    -- events with the same key reach an endpoint in order (the call id for call events)
    ordering_key  text,
    data          jsonb not null,
    created_at    timestamptz not null default now()
);
create index events_org_idx on events (org_id, id desc);
create index events_org_type_idx on events (org_id, type, id desc);

create table webhook_endpoints (
    id                          text primary key,
    org_id                      text not null references organizations (id) on delete cascade,
    url                         text not null,
    description                 text,
    -- empty: every event type
    event_types                 text[] not null default '{}',
    enabled                     boolean not null default true,
    disabled_reason             text,
    -- AES-256-GCM sealed `whsec_…` secrets; the previous one signs too until it expires
    secret_sealed               bytea not null,
    previous_secret_sealed      bytea,
    previous_secret_expires_at  timestamptz,
    -- first failure of the current run of failures; null while deliveries succeed
    failing_since               timestamptz,
    created_at                  timestamptz not null default now(),
    updated_at                  timestamptz not null default now()
);
create index webhook_endpoints_org_idx on webhook_endpoints (org_id, id desc);

create table webhook_messages (
    id               bigint generated always as identity primary key,
    org_id           text not null references organizations (id) on delete cascade,
    endpoint_id      text not null references webhook_endpoints (id) on delete cascade,
    event_id         text not null references events (id) on delete cascade,
    ordering_key     text,
    status           text not null default 'pending' check (status in ('pending', 'delivered', 'failed')),
    attempts         integer not null default 0,
    next_attempt_at  timestamptz,
    last_status      integer,
    last_error       text,
    created_at       timestamptz not null default now(),
    delivered_at     timestamptz
);
-- the head of each (endpoint, ordering key) chain: earlier pending messages block later ones
create index webhook_messages_chain_idx on webhook_messages (endpoint_id, ordering_key, id) where status = 'pending';
create index webhook_messages_event_idx on webhook_messages (event_id);

create table webhook_attempts (
    id            bigint generated always as identity primary key,
    org_id        text not null references organizations (id) on delete cascade,
    endpoint_id   text not null references webhook_endpoints (id) on delete cascade,
    message_id    bigint not null references webhook_messages (id) on delete cascade,
    event_id      text not null,
    attempt       integer not null,
    status_code   integer,
    response_body text,
    error         text,
    duration_ms   integer not null,
    created_at    timestamptz not null default now()
);
create index webhook_attempts_endpoint_idx on webhook_attempts (endpoint_id, id desc);
