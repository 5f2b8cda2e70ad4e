-- Real push providers. An organization may bring its own credential per provider (its
-- white-labelled app); otherwise the deployment's defaults from configuration are used.
create table push_credentials (
    id             text primary key,
    org_id         text not null references organizations (id) on delete cascade,
    provider       text not null check (provider in ('fcm', 'apns', 'webpush')),
    -- what may be shown: project id, team and key id, topic, VAPID public key …
    metadata       jsonb not null,
    -- the secret part (service-account JSON, .p8 key, VAPID private key), sealed
    secret         bytea not null,
    created_at     timestamptz not null default now(),
    -- set when the provider refused the credential itself; cleared by a later success
    failing_since  timestamptz,
    last_error     text,
    last_error_at  timestamptz,
    constraint push_credentials_org_provider_key unique (org_id, provider)
);

-- A call's timeline holds its status changes and, beside them, what each push provider
-- answered (kind 'push': status is the result, reason the provider's reason).
alter table call_events
    add column kind text not null default 'status' check (kind in ('status', 'push')),
    add column provider text;
