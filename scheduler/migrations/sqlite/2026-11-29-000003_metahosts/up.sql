-- Metahost entries: host_id stays NULL until the dispatcher picks a ready host that
-- carries meta_label_id (and every label in job_dependencies).
CREATE TABLE host_queue_entries_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id BIGINT NOT NULL REFERENCES jobs(id),
    host_id BIGINT REFERENCES hosts(id),
    meta_label_id BIGINT REFERENCES labels(id),
    status VARCHAR(32) NOT NULL,
    priority INTEGER NOT NULL,
    execution_subdir VARCHAR(255) NOT NULL,
    drone VARCHAR(64),
    attempt INTEGER NOT NULL DEFAULT 0,
    exit_code INTEGER,
    failure_reason TEXT,
    created_on BIGINT NOT NULL,
    started_on BIGINT,
    finished_on BIGINT
);
INSERT INTO host_queue_entries_new (id, job_id, host_id, status, priority, execution_subdir, drone, attempt, exit_code, failure_reason, created_on, started_on, finished_on)
    SELECT id, job_id, host_id, status, priority, execution_subdir, drone, attempt, exit_code, failure_reason, created_on, started_on, finished_on FROM host_queue_entries;
DROP TABLE host_queue_entries;
ALTER TABLE host_queue_entries_new RENAME TO host_queue_entries;
CREATE INDEX hqe_dispatch ON host_queue_entries (status, priority DESC, job_id, id);
CREATE INDEX hqe_job ON host_queue_entries (job_id);
CREATE INDEX hqe_drone ON host_queue_entries (drone, status);
CREATE INDEX hqe_host ON host_queue_entries (host_id, status);
CREATE TABLE job_dependencies (
    job_id BIGINT NOT NULL REFERENCES jobs(id),
    label_id BIGINT NOT NULL REFERENCES labels(id),
    PRIMARY KEY (job_id, label_id)
);
