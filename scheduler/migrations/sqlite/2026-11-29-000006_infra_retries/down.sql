DROP TABLE entry_history;
ALTER TABLE host_queue_entries DROP COLUMN dispatched_on;
ALTER TABLE host_queue_entries DROP COLUMN avoid_drone;
ALTER TABLE host_queue_entries DROP COLUMN infra_retries;
ALTER TABLE host_queue_entries DROP COLUMN failure_kind;
