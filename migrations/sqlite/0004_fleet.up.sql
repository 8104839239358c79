-- The fleet page and the deployment page (issue 13):
-- - each applied target's image reference, a summary of its spec written at
--   apply time, so that the fleet matrix reads no spec;
-- - a generation per repo, counted up by every write of its applied rows,
--   so that a reader may cache them until it moves;
-- - each deployment's plan (its text, as `bosun plan` prints it, for the
--   deployment's service).

ALTER TABLE applied ADD COLUMN image TEXT NOT NULL DEFAULT '';
UPDATE applied SET image = COALESCE(json_extract(CAST(spec AS TEXT), '$.image'), '')
WHERE json_valid(CAST(spec AS TEXT)) AND json_type(CAST(spec AS TEXT), '$.image') = 'text';

CREATE TABLE applied_generations (
    repo TEXT PRIMARY KEY,
    n    INTEGER NOT NULL
);

ALTER TABLE deployments ADD COLUMN plan TEXT NOT NULL DEFAULT '';
