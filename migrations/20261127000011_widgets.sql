-- The embeddable widget: per-widget settings (allowed origins, routing, business hours,
-- texts, theme) bound to a publishable key, and visitors' callback requests.

create table widgets (
    id                text primary key,
    org_id            text not null references organizations (id) on delete cascade,
    name              text not null,
    -- the publishable key the widget's tag carries (its value is public by design)
    key_id            text not null references api_keys (id),
    publishable_key   text not null,
    allowed_origins   text[] not null default '{}',
    -- empty: every agent of the organization
    agent_ids         text[] not null default '{}',
    routing           text not null default 'longest_idle'
                      check (routing in ('round_robin', 'longest_idle')),
    -- {"timezone": "Europe/London", "days": {"mon": [["09:00", "17:30"]], …}}; null: always
    business_hours    jsonb,
    when_unavailable  text not null default 'callback'
                      check (when_unavailable in ('callback', 'hidden')),
    theme             jsonb not null default '{}',
    texts             jsonb not null default '{}',
    -- round robin: the agent that got the last call
    last_agent_id     text,
    created_at        timestamptz not null default now(),
    deleted_at        timestamptz,
    constraint widgets_key_id_key unique (key_id)
);
create index widgets_org_idx on widgets (org_id, id desc);

create table callbacks (
    id           text primary key,
    org_id       text not null references organizations (id) on delete cascade,
    widget_id    text not null references widgets (id) on delete cascade,
    phone        text not null,
    name         text,
    locale       text,
    -- calling (a call is under way), scheduled (an agent should call back later),
    -- completed, canceled
    status       text not null check (status in ('calling', 'scheduled', 'completed', 'canceled')),
    call_id      text references calls (id) on delete set null,
    -- authorises the visitor's status stream (EventSource sends no headers)
    token_hash   bytea not null,
    ip           text,
    created_at   timestamptz not null default now(),
    updated_at   timestamptz not null default now()
);
create index callbacks_org_idx on callbacks (org_id, id desc);
create index callbacks_call_idx on callbacks (call_id) where call_id is not null;

-- Routing picks the agent idle longest: their last call, per agent.
create index calls_org_agent_created_idx on calls (org_id, agent_id, created_at desc);
