DROP TABLE job_dependencies;
DELETE FROM host_queue_entries WHERE host_id IS NULL;
ALTER TABLE host_queue_entries DROP COLUMN meta_label_id;
ALTER TABLE host_queue_entries MODIFY host_id BIGINT NOT NULL;
