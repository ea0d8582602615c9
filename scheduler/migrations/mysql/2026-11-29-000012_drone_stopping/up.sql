-- A worker that is stopping (SIGTERM: it drains, finishing what it holds) says so in
-- its heartbeats; the scheduler sends it nothing new until a heartbeat says otherwise.
ALTER TABLE drones ADD COLUMN stopping BOOLEAN NOT NULL DEFAULT 0;
