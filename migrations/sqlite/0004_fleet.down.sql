DROP TABLE applied_generations;
ALTER TABLE deployments DROP COLUMN plan;
ALTER TABLE applied DROP COLUMN image;
