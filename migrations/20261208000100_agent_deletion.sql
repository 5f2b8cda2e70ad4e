-- Issue 22, data lifecycle: an agent can be deleted. Its calls reference it by a composite
-- foreign key (org_id, agent_id) and are kept under the organization's retention, so the
-- row stays and is marked: a deleted agent is absent from every read, cannot be paired to
-- or called, and its devices are revoked in the same transaction.
alter table agents add column deleted_at timestamptz;
