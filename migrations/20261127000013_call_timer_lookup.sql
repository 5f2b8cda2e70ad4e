-- A call's timers (its expiry and its offer's timeout) are deleted in the statement that
-- moves the call past them (dialing started, or an end): without this, every call left
-- two jobs behind that the worker ran later only to find nothing to do, twice the
-- queue's traffic at a steady rate of calls.
create index jobs_call_timers_idx on jobs ((payload ->> 'call_id'))
    where kind in ('call.expire', 'call.offer_timeout');
