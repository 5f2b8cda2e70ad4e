-- Optional per-endpoint delivery rate limit (deliveries per second), enforced with GCRA
-- in Redis across every worker.
alter table webhook_endpoints add column rate_limit_per_s integer
    check (rate_limit_per_s is null or rate_limit_per_s between 1 and 10000);
