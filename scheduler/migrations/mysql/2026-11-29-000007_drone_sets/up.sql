-- Drone sets, as in Autotest: a job with a drone set runs only on the set's drones.
CREATE TABLE drone_sets (
    id BIGINT PRIMARY KEY AUTO_INCREMENT,
    name VARCHAR(128) NOT NULL UNIQUE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE drone_set_drones (
    drone_set_id BIGINT NOT NULL,
    drone VARCHAR(64) NOT NULL,
    PRIMARY KEY (drone_set_id, drone)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
ALTER TABLE jobs ADD COLUMN drone_set_id BIGINT;
