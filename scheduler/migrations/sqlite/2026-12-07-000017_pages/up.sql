-- The pages: the job list filtered by owner reads one page by id, newest first; the
-- results spreadsheet reads a time window of tests, for every host or for a label's.
CREATE INDEX jobs_owner ON jobs (owner, id);
CREATE INDEX tests_started ON tests (started);
CREATE INDEX tests_host_started ON tests (host_id, started);
