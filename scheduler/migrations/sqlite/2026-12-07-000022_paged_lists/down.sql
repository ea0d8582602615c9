CREATE INDEX hqe_job ON host_queue_entries (job_id);
DROP INDEX hqe_job_status;
DROP INDEX hqe_status_job;
DROP INDEX jobs_created;
