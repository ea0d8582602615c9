DROP INDEX hqe_queue_deadline ON host_queue_entries;
ALTER TABLE host_queue_entries DROP COLUMN max_runtime_us;
ALTER TABLE host_queue_entries DROP COLUMN queue_deadline;
