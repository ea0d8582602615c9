ALTER TABLE jobs DROP COLUMN drone_set_id;
DROP TABLE drone_set_drones;
DROP TABLE drone_sets;
