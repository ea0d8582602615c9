ALTER TABLE drones DROP COLUMN results_url;
ALTER TABLE host_queue_entries DROP COLUMN manifest_bytes;
ALTER TABLE host_queue_entries DROP COLUMN manifest_files;
