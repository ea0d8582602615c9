-- Job-end mail: 'pending' for a job created while mail was configured, until it has
-- ended and been mailed about ('sent'), or was not to be ('skipped'), or the mail
-- server refused it for good ('failed'). NULL: nothing to send.
ALTER TABLE jobs ADD COLUMN notify VARCHAR(8);
CREATE INDEX jobs_notify ON jobs (notify, id);
