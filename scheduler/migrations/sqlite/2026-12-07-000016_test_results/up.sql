-- Tests parsed on the drone from what a job left behind (Autotest's status log,
-- avocado, JUnit), stored when the attempt that ran them ends. A retried attempt's
-- tests stay under their own attempt number; the entry's current attempt is the final
-- one. Like Autotest's tko_tests, tko_test_attributes and tko_iteration_result.
CREATE TABLE tests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id BIGINT NOT NULL,
    entry_id BIGINT NOT NULL,
    attempt INTEGER NOT NULL,
    host_id BIGINT,
    name VARCHAR(1024) NOT NULL,
    subdir VARCHAR(1024),
    status VARCHAR(16) NOT NULL,
    reason TEXT,
    started BIGINT,
    finished BIGINT
);
CREATE INDEX tests_entry ON tests (entry_id, attempt, id);
CREATE INDEX tests_job ON tests (job_id, id);
CREATE INDEX tests_host ON tests (host_id, id);
CREATE INDEX tests_status ON tests (status, id);
CREATE TABLE test_attributes (
    test_id BIGINT NOT NULL,
    name VARCHAR(255) NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (test_id, name)
);
-- One row per iteration and key: an attribute (`value`) or a perf value (`perf`).
CREATE TABLE test_iterations (
    test_id BIGINT NOT NULL,
    iteration INTEGER NOT NULL,
    name VARCHAR(255) NOT NULL,
    value TEXT,
    perf DOUBLE,
    PRIMARY KEY (test_id, iteration, name)
);
-- Parts of an attempt's parsed results that arrived before the report that ends it.
CREATE TABLE test_result_parts (
    entry_id BIGINT NOT NULL,
    attempt INTEGER NOT NULL,
    part INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (entry_id, attempt, part)
);
-- What parsing could not read (one line), and how many tests were past the limit.
ALTER TABLE host_queue_entries ADD COLUMN parse_error TEXT;
ALTER TABLE host_queue_entries ADD COLUMN tests_dropped BIGINT;
