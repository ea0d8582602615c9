DROP TABLE drones; DROP TABLE host_queue_entries; DROP TABLE jobs; DROP TABLE host_labels; DROP TABLE labels; DROP TABLE hosts;
