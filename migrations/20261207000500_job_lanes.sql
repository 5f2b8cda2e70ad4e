-- Issue 18, tenant fairness. Every job waited in one line by run_at, so an organization's
-- webhook deliveries to a slow receiver (a slot each for up to the delivery timeout) held
-- every worker slot while other organizations' calls expired behind them. Jobs now have a
-- lane — `0` the work that moves a call (`call.*`), `1` bulk work (webhook deliveries) —
-- each claimed by its own loop with its own slots; the organization and the lane key (the
-- endpoint of a delivery) let claims take turns between organizations and endpoints.
--
-- Deliveries name their organization and endpoint in the payload from now on; those
-- already queued get them from their message.
update jobs j
   set payload = j.payload || jsonb_build_object('org_id', m.org_id, 'endpoint_id', m.endpoint_id)
  from webhook_messages m
 where j.kind = 'webhook.deliver' and m.id = (j.payload ->> 'message_id')::bigint;

-- Generated, so that every enqueue site (and the hot create-call insert) stays as it is.
alter table jobs
    add column lane smallint not null
        generated always as (case when kind like 'call.%' then 0 else 1 end) stored,
    add column org_id text not null
        generated always as (coalesce(payload ->> 'org_id', '')) stored,
    add column lane_key text not null
        generated always as (coalesce(payload ->> 'endpoint_id', payload ->> 'org_id', '')) stored;

-- The claim of each lane, and when its next job falls due, read their own index: the call
-- lane never walks past a backlog of deliveries.
drop index jobs_ready_idx;
create index jobs_ready_call_idx on jobs (run_at)
    where lease_owner is null and dead_at is null and lane = 0;
create index jobs_ready_bulk_idx on jobs (run_at)
    where lease_owner is null and dead_at is null and lane = 1;
-- The bulk claim visits each lane key (endpoint) with jobs waiting, one index probe each,
-- and takes the oldest due jobs of each: an organization's backlog of thousands costs it
-- a probe per endpoint, not a scan of the backlog.
create index jobs_ready_bulk_key_idx on jobs (lane_key, run_at)
    where lease_owner is null and dead_at is null and lane = 1;

-- A plan may allow more (or fewer) webhook endpoints than the deployment's default.
alter table organizations
    add column limit_webhook_endpoints integer check (limit_webhook_endpoints > 0);
