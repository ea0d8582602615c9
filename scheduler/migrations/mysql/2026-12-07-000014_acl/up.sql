-- ACL groups, as in Autotest: a user may run jobs on a host only when both belong to
-- one group. `Everyone` exists from the start and holds every user and every host,
-- those already here and each one created later.
CREATE TABLE acl_groups (
    id BIGINT PRIMARY KEY AUTO_INCREMENT,
    name VARCHAR(128) NOT NULL UNIQUE,
    description TEXT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE acl_group_users (
    acl_group_id BIGINT NOT NULL,
    user_id BIGINT NOT NULL,
    PRIMARY KEY (acl_group_id, user_id),
    INDEX acl_group_users_user (user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE acl_group_hosts (
    acl_group_id BIGINT NOT NULL,
    host_id BIGINT NOT NULL,
    PRIMARY KEY (acl_group_id, host_id),
    INDEX acl_group_hosts_host (host_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO acl_groups (name, description)
    VALUES ('Everyone', 'Every user and every host, from their creation');
INSERT INTO acl_group_hosts (acl_group_id, host_id)
    SELECT acl_groups.id, hosts.id FROM acl_groups, hosts WHERE acl_groups.name = 'Everyone';
INSERT INTO acl_group_users (acl_group_id, user_id)
    SELECT acl_groups.id, users.id FROM acl_groups, users WHERE acl_groups.name = 'Everyone';
