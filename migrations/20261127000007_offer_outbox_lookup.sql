-- Finding a call's pending offer outbox job, to run it at once when the job that recorded
-- the offer is run again (its worker stopped or died before the inline send finished).
create index jobs_offer_outbox_idx on jobs ((payload ->> 'call_id'))
    where kind = 'call.deliver';
