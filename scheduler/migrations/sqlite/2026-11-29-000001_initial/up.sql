-- Times are UTC microseconds since the Unix epoch, set by the scheduler.
CREATE TABLE hosts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    hostname VARCHAR(255) NOT NULL UNIQUE,
    status VARCHAR(32) NOT NULL DEFAULT 'Ready',
    locked BOOLEAN NOT NULL DEFAULT 0,
    lock_reason TEXT,
    created_on BIGINT NOT NULL
);
CREATE TABLE labels (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name VARCHAR(255) NOT NULL UNIQUE
);
CREATE TABLE host_labels (
    host_id BIGINT NOT NULL REFERENCES hosts(id),
    label_id BIGINT NOT NULL REFERENCES labels(id),
    PRIMARY KEY (host_id, label_id)
);
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    owner VARCHAR(64) NOT NULL,
    priority INTEGER NOT NULL,
    control_file TEXT NOT NULL,
    created_on BIGINT NOT NULL
);
CREATE TABLE host_queue_entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id BIGINT NOT NULL REFERENCES jobs(id),
    host_id BIGINT NOT NULL REFERENCES hosts(id),
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
CREATE INDEX hqe_dispatch ON host_queue_entries (status, priority DESC, job_id, id);
CREATE INDEX hqe_job ON host_queue_entries (job_id);
CREATE INDEX hqe_drone ON host_queue_entries (drone, status);
CREATE INDEX hqe_host ON host_queue_entries (host_id, status);
CREATE TABLE drones (
    name VARCHAR(64) PRIMARY KEY NOT NULL,
    enabled BOOLEAN NOT NULL DEFAULT 1,
    capacity INTEGER NOT NULL,
    last_heartbeat BIGINT
);
