-- Metahost entries: host_id stays NULL until the dispatcher picks a ready host that
-- carries meta_label_id (and every label in job_dependencies).
ALTER TABLE host_queue_entries MODIFY host_id BIGINT NULL;
ALTER TABLE host_queue_entries ADD COLUMN meta_label_id BIGINT NULL AFTER host_id;
CREATE TABLE job_dependencies (
    job_id BIGINT NOT NULL,
    label_id BIGINT NOT NULL,
    PRIMARY KEY (job_id, label_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
