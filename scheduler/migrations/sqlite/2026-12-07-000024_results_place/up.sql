-- Where a job's results are: NULL on the results host (or never written), 'archived'
-- (moved to [SCHEDULER] archive_rsync, read through archive_host), 'removed' (deleted
-- from the results host); results_place_on: when it changed (UTC microseconds).
ALTER TABLE jobs ADD COLUMN results_place VARCHAR(16);
ALTER TABLE jobs ADD COLUMN results_place_on BIGINT;
CREATE INDEX jobs_results_place ON jobs (results_place, id);
