-- A capacity set at run time with `atest drone set-capacity`; NULL means the config's.
ALTER TABLE drones ADD COLUMN capacity_override INTEGER;
CREATE INDEX hosts_ready ON hosts (status, locked);
CREATE INDEX host_labels_label ON host_labels (label_id, host_id);
