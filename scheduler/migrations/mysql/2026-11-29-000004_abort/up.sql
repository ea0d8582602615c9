-- An abort is recorded here first; an active entry ends Aborted when its drone reports.
ALTER TABLE host_queue_entries ADD COLUMN aborted_by VARCHAR(64);
ALTER TABLE host_queue_entries ADD COLUMN aborted_on BIGINT;
ALTER TABLE host_queue_entries ADD COLUMN abort_reason TEXT;
