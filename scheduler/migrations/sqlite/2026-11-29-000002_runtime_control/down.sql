DROP INDEX host_labels_label;
DROP INDEX hosts_ready;
ALTER TABLE drones DROP COLUMN capacity_override;
