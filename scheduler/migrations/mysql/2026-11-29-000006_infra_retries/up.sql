-- Infra failures (a lost drone, an attempt the drone could not start) are told apart
-- from test failures and retried on another drone up to [SCHEDULER] max_infra_retries.
ALTER TABLE host_queue_entries ADD COLUMN failure_kind VARCHAR(16);
ALTER TABLE host_queue_entries ADD COLUMN infra_retries INTEGER NOT NULL DEFAULT 0;
-- The drone of the last infra failure: the retry goes elsewhere when it can.
ALTER TABLE host_queue_entries ADD COLUMN avoid_drone VARCHAR(64);
-- When the current attempt was handed to its drone (for reconciling with heartbeats).
ALTER TABLE host_queue_entries ADD COLUMN dispatched_on BIGINT;
-- What happened to each entry beyond its current state: infra failures, stale reports.
CREATE TABLE entry_history (
    id BIGINT PRIMARY KEY AUTO_INCREMENT,
    entry_id BIGINT NOT NULL,
    attempt INTEGER NOT NULL,
    drone VARCHAR(64),
    event VARCHAR(32) NOT NULL,
    detail TEXT NOT NULL,
    at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE INDEX entry_history_entry ON entry_history (entry_id, id);
