ALTER TABLE drones DROP COLUMN low_disk;
ALTER TABLE drones DROP COLUMN free_mb;
