-- Paged lists (`GET /api/jobs`, the /jobs page): `since` finds its first job by
-- creation time; a Queued or Running job is found from its active entries by status;
-- a job's status is checked on its entries' statuses without reading the rows.
CREATE INDEX jobs_created ON jobs (created_on);
CREATE INDEX hqe_status_job ON host_queue_entries (status, job_id);
CREATE INDEX hqe_job_status ON host_queue_entries (job_id, status);
DROP INDEX hqe_job;
