-- A key never has more power than its creator (issue 17). A secret key acts with the
-- current role of the member who made it (`created_by` in this organization); a key
-- without a creator (`pushdial admin create-org`'s) is the organization's own and acts as
-- an owner. `creator_role` records the creator's role when the key was made (or handed
-- over): null exactly for the organization's own keys, so that a creator lost later (a
-- user deleted by hand sets `created_by` to null) leaves a key with no member, which is
-- refused, never an owner key.
alter table api_keys
    add column creator_role text check (creator_role in ('owner', 'admin', 'agent'));

update api_keys k set creator_role = m.role
from memberships m
where m.org_id = k.org_id and m.user_id = k.created_by;

-- Keys made by someone who has left since kept working until now (the hole): their
-- secret keys stop, as a removal now revokes them, and the audit log says so. (The ids
-- are made as core/src/ids.rs makes them: milliseconds, then random, in base 32.)
-- Publishable keys stay: they belong to a widget and open only widget calls.
with revoked as (
    update api_keys set revoked_at = now()
    where kind = 'secret' and created_by is not null and creator_role is null
      and revoked_at is null
    returning id, org_id, created_by
)
insert into audit_events (id, org_id, action, actor_type, target_type, target_id, data)
select 'aud_'
       || (select string_agg(substr('0123456789abcdefghjkmnpqrstvwxyz',
                                    (((extract(epoch from clock_timestamp()) * 1000)::bigint
                                      >> (5 * (9 - i))) & 31)::int + 1, 1), '' order by i)
           from generate_series(0, 9) i)
       || (select string_agg(substr('0123456789abcdefghjkmnpqrstvwxyz',
                                    floor(random() * 32)::int + 1, 1), '')
           from generate_series(1, 16 + 0 * length(r.id))),
       r.org_id, 'api_key.revoked', 'system', 'api_key', r.id,
       jsonb_build_object('reason', 'creator_not_a_member', 'creator', r.created_by)
from revoked r;

-- What a key resolves to now depends on its creator's membership: a changed role, a
-- removal or a (re)joining notifies the api processes' key caches (core/src/keycache.rs),
-- like the key's own changes do (migration 0012), now including a handed-over key.
create or replace function pushdial_key_changed() returns trigger language plpgsql as $$
begin
  if tg_table_name = 'organizations' then
    perform pg_notify('pushdial_keys', 'org:' || coalesce(new.id, old.id));
  elsif tg_table_name = 'memberships' then
    perform pg_notify('pushdial_keys',
                      'member:' || coalesce(new.org_id, old.org_id) || ':'
                                || coalesce(new.user_id, old.user_id));
  else
    perform pg_notify('pushdial_keys', 'key:' || coalesce(new.id, old.id));
  end if;
  return null;
end
$$;

drop trigger api_keys_changed on api_keys;
create trigger api_keys_changed
  after update of revoked_at, expires_at, kind, org_id, key_hash, created_by, creator_role
  or delete on api_keys
  for each row execute function pushdial_key_changed();

create trigger memberships_changed
  after insert or update of role, user_id, org_id or delete on memberships
  for each row execute function pushdial_key_changed();

-- Removing a member finds the keys they made.
create index api_keys_creator_idx on api_keys (org_id, created_by) where created_by is not null;
