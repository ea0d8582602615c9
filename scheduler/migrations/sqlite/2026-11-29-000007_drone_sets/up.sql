-- Drone sets, as in Autotest: a job with a drone set runs only on the set's drones.
CREATE TABLE drone_sets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name VARCHAR(128) NOT NULL UNIQUE
);
CREATE TABLE drone_set_drones (
    drone_set_id BIGINT NOT NULL REFERENCES drone_sets(id),
    drone VARCHAR(64) NOT NULL,
    PRIMARY KEY (drone_set_id, drone)
);
ALTER TABLE jobs ADD COLUMN drone_set_id BIGINT REFERENCES drone_sets(id);
