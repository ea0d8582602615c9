CREATE INDEX hqe_job ON host_queue_entries (job_id);
DROP INDEX hqe_job_status ON host_queue_entries;
DROP INDEX hqe_status_job ON host_queue_entries;
DROP INDEX jobs_created ON jobs;
