-- Each heartbeat says how much space the drone's results filesystem has left and
-- whether that is below the drone's own `[DRONE] min_free_mb`; a drone low on disk
-- gets no new work until a heartbeat says it has room again.
ALTER TABLE drones ADD COLUMN free_mb BIGINT NULL;
ALTER TABLE drones ADD COLUMN low_disk BOOLEAN NOT NULL DEFAULT 0;
