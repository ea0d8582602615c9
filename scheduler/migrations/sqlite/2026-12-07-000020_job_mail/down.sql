DROP INDEX jobs_notify;
ALTER TABLE jobs DROP COLUMN notify;
