-- job create --timeout-mins: a queued entry still not started by queue_deadline is
-- aborted; --max-runtime-mins: a running entry is aborted max_runtime_us after it started.
ALTER TABLE host_queue_entries ADD COLUMN queue_deadline BIGINT;
ALTER TABLE host_queue_entries ADD COLUMN max_runtime_us BIGINT;
CREATE INDEX hqe_queue_deadline ON host_queue_entries (status, queue_deadline);
