DROP TABLE test_result_parts;
DROP TABLE test_iterations;
DROP TABLE test_attributes;
DROP TABLE tests;
ALTER TABLE host_queue_entries DROP COLUMN tests_dropped;
ALTER TABLE host_queue_entries DROP COLUMN parse_error;
