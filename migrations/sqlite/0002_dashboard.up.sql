-- The dashboard (issue 13): API tokens for scripts, stored as the SHA-256 of
-- the token (never the token), and the actor of each deployment event.

CREATE TABLE api_tokens (
    name       TEXT PRIMARY KEY,
    role       TEXT NOT NULL CHECK (role IN ('viewer', 'deployer', 'admin')),
    hash       BLOB NOT NULL UNIQUE,
    created_by TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL
);

ALTER TABLE deployment_events ADD COLUMN actor TEXT NOT NULL DEFAULT '';
