-- The fleet page and the deployment page (issue 13):
-- - each applied target's image reference, a summary of its spec written at
--   apply time, so that the fleet matrix reads no spec;
-- - a generation per repo, counted up by every write of its applied rows,
--   so that a reader may cache them until it moves;
-- - each deployment's plan (its text, as `bosun plan` prints it, for the
--   deployment's service).

ALTER TABLE applied ADD COLUMN image TEXT NOT NULL DEFAULT '';
-- Specs are planner.Spec's JSON; a row whose spec is not JSON keeps ''.
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT repo, service, role, host, spec FROM applied LOOP
        BEGIN
            UPDATE applied SET image = COALESCE(convert_from(r.spec, 'UTF8')::jsonb ->> 'image', '')
            WHERE repo = r.repo AND service = r.service AND role = r.role AND host = r.host;
        EXCEPTION WHEN others THEN
            NULL;
        END;
    END LOOP;
END
$$;

CREATE TABLE applied_generations (
    repo TEXT PRIMARY KEY,
    n    BIGINT NOT NULL
);

ALTER TABLE deployments ADD COLUMN plan TEXT NOT NULL DEFAULT '';
