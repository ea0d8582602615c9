-- Times are UTC microseconds since the Unix epoch, set by the scheduler.
CREATE TABLE hosts (
    id BIGINT PRIMARY KEY AUTO_INCREMENT,
    hostname VARCHAR(191) NOT NULL UNIQUE,
    status VARCHAR(32) NOT NULL DEFAULT 'Ready',
    locked BOOLEAN NOT NULL DEFAULT 0,
    lock_reason TEXT,
    created_on BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE labels (
    id BIGINT PRIMARY KEY AUTO_INCREMENT,
    name VARCHAR(191) NOT NULL UNIQUE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE host_labels (
    host_id BIGINT NOT NULL,
    label_id BIGINT NOT NULL,
    PRIMARY KEY (host_id, label_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE jobs (
    id BIGINT PRIMARY KEY AUTO_INCREMENT,
    name TEXT NOT NULL,
    owner VARCHAR(64) NOT NULL,
    priority INTEGER NOT NULL,
    control_file MEDIUMTEXT NOT NULL,
    created_on BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE host_queue_entries (
    id BIGINT PRIMARY KEY AUTO_INCREMENT,
    job_id BIGINT NOT NULL,
    host_id BIGINT NOT NULL,
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
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE INDEX hqe_dispatch ON host_queue_entries (status, priority DESC, job_id, id);
CREATE INDEX hqe_job ON host_queue_entries (job_id);
CREATE INDEX hqe_drone ON host_queue_entries (drone, status);
CREATE INDEX hqe_host ON host_queue_entries (host_id, status);
CREATE TABLE drones (
    name VARCHAR(64) PRIMARY KEY NOT NULL,
    enabled BOOLEAN NOT NULL DEFAULT 1,
    capacity INTEGER NOT NULL,
    last_heartbeat BIGINT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
