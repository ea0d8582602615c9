DROP INDEX hqe_group_lead ON host_queue_entries;
ALTER TABLE host_queue_entries DROP COLUMN group_lead_id;
ALTER TABLE jobs DROP COLUMN synch_count;
