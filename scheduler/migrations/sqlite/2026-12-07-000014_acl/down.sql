DROP TABLE acl_group_hosts;
DROP TABLE acl_group_users;
DROP TABLE acl_groups;
