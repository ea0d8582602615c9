DROP INDEX tests_host_started;
DROP INDEX tests_started;
DROP INDEX jobs_owner;
