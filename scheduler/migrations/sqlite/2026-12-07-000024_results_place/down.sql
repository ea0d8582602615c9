DROP INDEX jobs_results_place;
ALTER TABLE jobs DROP COLUMN results_place_on;
ALTER TABLE jobs DROP COLUMN results_place;
