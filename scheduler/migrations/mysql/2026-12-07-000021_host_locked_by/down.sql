ALTER TABLE hosts DROP COLUMN locked_by;
