-- Who locked a host (NULL: unlocked, or locked by the scheduler after a failed repair).
ALTER TABLE hosts ADD COLUMN locked_by VARCHAR(64);
