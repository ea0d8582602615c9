DROP INDEX host_labels_label ON host_labels;
DROP INDEX hosts_ready ON hosts;
ALTER TABLE drones DROP COLUMN capacity_override;
