-- API processes cache what a secret key resolves to (see core/src/keycache.rs). Every
-- change that can alter that answer notifies them, in the changing transaction, whatever
-- made it (the API, `pushdial admin`, SQL by hand): a revoked or rolled key, a deleted
-- key, or an organization's plan limit.
create function pushdial_key_changed() returns trigger language plpgsql as $$
begin
  if tg_table_name = 'organizations' then
    perform pg_notify('pushdial_keys', 'org:' || coalesce(new.id, old.id));
  else
    perform pg_notify('pushdial_keys', 'key:' || coalesce(new.id, old.id));
  end if;
  return null;
end
$$;

create trigger api_keys_changed
  after update of revoked_at, expires_at, kind, org_id, key_hash or delete on api_keys
  for each row execute function pushdial_key_changed();

create trigger organizations_limits_changed
  after update of limit_api_per_second or delete on organizations
  for each row execute function pushdial_key_changed();
