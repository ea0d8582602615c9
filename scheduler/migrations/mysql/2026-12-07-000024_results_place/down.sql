DROP INDEX jobs_results_place ON jobs;
ALTER TABLE jobs DROP COLUMN results_place_on;
ALTER TABLE jobs DROP COLUMN results_place;
