-- Queued metahost entries in dispatch order, without walking every queued entry:
-- the dispatcher's cost per cycle must not grow with the queue.
CREATE INDEX hqe_meta_queue ON host_queue_entries (status, host_id, priority DESC, job_id, id);
