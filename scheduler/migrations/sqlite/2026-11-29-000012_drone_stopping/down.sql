ALTER TABLE drones DROP COLUMN stopping;
