DROP INDEX jobs_notify ON jobs;
ALTER TABLE jobs DROP COLUMN notify;
