-- Finding the delivery job of a webhook message, to start the next message of a chain as
-- soon as the one before it is done.
create index jobs_webhook_message_idx on jobs (((payload ->> 'message_id')::bigint))
    where kind = 'webhook.deliver';
