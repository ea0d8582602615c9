-- Synchronous jobs (Autotest's synch_count): entries wait Pending, holding their host,
-- until synch_count of them are, then one Autoserv runs for all of their hosts. The
-- other entries of such a group point at the group's lead, whose attempt the drone runs.
ALTER TABLE jobs ADD COLUMN synch_count INTEGER NOT NULL DEFAULT 1;
ALTER TABLE host_queue_entries ADD COLUMN group_lead_id BIGINT;
CREATE INDEX hqe_group_lead ON host_queue_entries (group_lead_id);
