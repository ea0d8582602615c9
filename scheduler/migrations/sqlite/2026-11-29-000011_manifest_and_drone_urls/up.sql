-- The size of an entry's results by the manifest the worker checked on the results host
-- (null until then), and the address where a drone serves the results it still holds
-- (from its heartbeats; null when it serves none).
ALTER TABLE host_queue_entries ADD COLUMN manifest_files BIGINT;
ALTER TABLE host_queue_entries ADD COLUMN manifest_bytes BIGINT;
ALTER TABLE drones ADD COLUMN results_url VARCHAR(1024);
