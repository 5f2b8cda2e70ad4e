-- The database enforces tenancy (issue 17, hole 9): a row that references another row of
-- the same tenant references it by (org_id, id), so that a child can never point at another
-- organization's parent, even through a bug. Every foreign key from a table with org_id to
-- another table with org_id includes org_id (tests/it/attack_tenancy.rs reads the catalog
-- and fails for a new one that does not); the ON DELETE behaviour is kept, and a SET NULL
-- names its column, so that org_id is never nulled with it (PostgreSQL 15).
--
-- Each parent gets unique (org_id, id). Where a plain (org_id, id) index already served the
-- organization's lists, the unique one replaces it (a b-tree reads backwards as well as
-- forwards, so `order by id desc` keeps its index): no table gets an index more to maintain
-- on insert except devices and webhook_messages.

alter table agents add constraint agents_org_id_id_key unique (org_id, id);
drop index agents_org_idx;

alter table api_keys add constraint api_keys_org_id_id_key unique (org_id, id);
drop index api_keys_org_idx;

alter table calls add constraint calls_org_id_id_key unique (org_id, id);
drop index calls_org_idx;

alter table events add constraint events_org_id_id_key unique (org_id, id);
drop index events_org_idx;

alter table webhook_endpoints add constraint webhook_endpoints_org_id_id_key unique (org_id, id);
drop index webhook_endpoints_org_idx;

alter table widgets add constraint widgets_org_id_id_key unique (org_id, id);
drop index widgets_org_idx;

alter table devices add constraint devices_org_id_id_key unique (org_id, id);
alter table webhook_messages add constraint webhook_messages_org_id_id_key unique (org_id, id);

alter table pairing_codes
    drop constraint pairing_codes_agent_id_fkey,
    add constraint pairing_codes_agent_id_fkey foreign key (org_id, agent_id)
        references agents (org_id, id) on delete cascade;

alter table devices
    drop constraint devices_agent_id_fkey,
    add constraint devices_agent_id_fkey foreign key (org_id, agent_id)
        references agents (org_id, id) on delete cascade;

alter table memberships
    drop constraint memberships_agent_id_fkey,
    add constraint memberships_agent_id_fkey foreign key (org_id, agent_id)
        references agents (org_id, id) on delete cascade;

alter table calls
    drop constraint calls_agent_id_fkey,
    add constraint calls_agent_id_fkey foreign key (org_id, agent_id)
        references agents (org_id, id) on delete cascade,
    drop constraint calls_device_id_fkey,
    add constraint calls_device_id_fkey foreign key (org_id, device_id)
        references devices (org_id, id) on delete set null (device_id),
    drop constraint calls_target_device_id_fkey,
    add constraint calls_target_device_id_fkey foreign key (org_id, target_device_id)
        references devices (org_id, id) on delete set null (target_device_id);

alter table call_events
    drop constraint call_events_call_id_fkey,
    add constraint call_events_call_id_fkey foreign key (org_id, call_id)
        references calls (org_id, id) on delete cascade;

alter table webhook_messages
    drop constraint webhook_messages_endpoint_id_fkey,
    add constraint webhook_messages_endpoint_id_fkey foreign key (org_id, endpoint_id)
        references webhook_endpoints (org_id, id) on delete cascade,
    drop constraint webhook_messages_event_id_fkey,
    add constraint webhook_messages_event_id_fkey foreign key (org_id, event_id)
        references events (org_id, id) on delete cascade;

alter table webhook_attempts
    drop constraint webhook_attempts_endpoint_id_fkey,
    add constraint webhook_attempts_endpoint_id_fkey foreign key (org_id, endpoint_id)
        references webhook_endpoints (org_id, id) on delete cascade,
    drop constraint webhook_attempts_message_id_fkey,
    add constraint webhook_attempts_message_id_fkey foreign key (org_id, message_id)
        references webhook_messages (org_id, id) on delete cascade;

alter table widgets
    drop constraint widgets_key_id_fkey,
    add constraint widgets_key_id_fkey foreign key (org_id, key_id)
        references api_keys (org_id, id);

alter table callbacks
    drop constraint callbacks_widget_id_fkey,
    add constraint callbacks_widget_id_fkey foreign key (org_id, widget_id)
        references widgets (org_id, id) on delete cascade,
    drop constraint callbacks_call_id_fkey,
    add constraint callbacks_call_id_fkey foreign key (org_id, call_id)
        references calls (org_id, id) on delete set null (call_id);
