-- Dialing safety: each organization's home country, the countries it may call, the number
-- types it refuses (premium-rate and friends by default), and its blocklist.
alter table organizations
    add column country text not null default 'US',
    add column allowed_countries text[] not null default '{US}',
    add column blocked_number_types text[] not null
        default '{premium_rate,shared_cost,uan,personal_number}';

create table blocked_numbers (
    id          text primary key,
    org_id      text not null references organizations (id) on delete cascade,
    -- an E.164 number or prefix, e.g. +1900 or +14155550123
    prefix      text not null,
    created_at  timestamptz not null default now(),
    constraint blocked_numbers_org_prefix_key unique (org_id, prefix)
);
