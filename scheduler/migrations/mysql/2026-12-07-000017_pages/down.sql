DROP INDEX tests_host_started ON tests;
DROP INDEX tests_started ON tests;
DROP INDEX jobs_owner ON jobs;
