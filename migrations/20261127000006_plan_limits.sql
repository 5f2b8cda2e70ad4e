-- An organization's plan limits; null: the deployment's defaults (PUSHDIAL_LIMIT_*).
alter table organizations
    add column limit_api_per_second integer check (limit_api_per_second > 0),
    add column limit_calls_per_minute integer check (limit_calls_per_minute > 0);
