-- Issue 17, widget abuse. A widget's publishable key is public and its Origin check binds
-- browsers only, so any script can ask for callbacks: each widget gets hourly caps, set by
-- its organization, on the callbacks that ring an agent's phone now and on the requests
-- kept for later.
alter table widgets
    add column max_callbacks_per_hour integer not null default 30
        check (max_callbacks_per_hour between 1 and 1000),
    add column max_scheduled_callbacks_per_hour integer not null default 30
        check (max_scheduled_callbacks_per_hour between 1 and 1000);

-- A call a widget's visitor asked for must be confirmed by a person on the phone: neither
-- the device's auto-dial setting nor an app's auto mode may dial it by itself (`required`).
-- The check is swapped without a long lock: added unvalidated, then validated (which
-- reads the table without blocking writes).
alter table calls drop constraint calls_confirm_check,
    add constraint calls_confirm_check check (confirm in ('prompt', 'auto', 'required')) not valid;
alter table calls validate constraint calls_confirm_check;
