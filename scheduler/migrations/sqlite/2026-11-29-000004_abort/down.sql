ALTER TABLE host_queue_entries DROP COLUMN abort_reason;
ALTER TABLE host_queue_entries DROP COLUMN aborted_on;
ALTER TABLE host_queue_entries DROP COLUMN aborted_by;
