-- bosun state, first version (PostgreSQL).

CREATE TABLE deployments (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    repo         TEXT NOT NULL,
    service      TEXT NOT NULL DEFAULT '',
    commit_sha   TEXT NOT NULL DEFAULT '',
    status       TEXT NOT NULL CHECK (status IN ('pending', 'deploying', 'deployed', 'failed', 'rolled_back')),
    triggered_by TEXT NOT NULL DEFAULT '',
    error        TEXT NOT NULL DEFAULT '',
    started_at   TIMESTAMPTZ NOT NULL,
    finished_at  TIMESTAMPTZ
);
CREATE INDEX deployments_repo_service ON deployments (repo, service, id);
CREATE INDEX deployments_status ON deployments (status, id);

CREATE TABLE deployment_events (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    deployment_id BIGINT NOT NULL REFERENCES deployments (id),
    host          TEXT NOT NULL DEFAULT '',
    step          TEXT NOT NULL DEFAULT '',
    status        TEXT NOT NULL DEFAULT '',
    message       TEXT NOT NULL DEFAULT '',
    at            TIMESTAMPTZ NOT NULL
);
CREATE INDEX deployment_events_deployment ON deployment_events (deployment_id, id);

CREATE TABLE applied (
    repo       TEXT NOT NULL,
    service    TEXT NOT NULL,
    role       TEXT NOT NULL,
    host       TEXT NOT NULL,
    version    TEXT NOT NULL,
    commit_sha TEXT NOT NULL DEFAULT '',
    spec       BYTEA NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (repo, service, role, host)
);

CREATE TABLE spec_versions (
    repo          TEXT NOT NULL,
    service       TEXT NOT NULL,
    role          TEXT NOT NULL,
    version       TEXT NOT NULL,
    commit_sha    TEXT NOT NULL DEFAULT '',
    spec          BYTEA NOT NULL,
    first_applied TIMESTAMPTZ NOT NULL,
    last_applied  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (repo, service, role, version)
);
CREATE INDEX spec_versions_last ON spec_versions (repo, service, last_applied);

CREATE TABLE webhook_deliveries (
    id          TEXT PRIMARY KEY,
    event       TEXT NOT NULL DEFAULT '',
    repo        TEXT NOT NULL DEFAULT '',
    payload     BYTEA NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    outcome     TEXT NOT NULL DEFAULT ''
);

CREATE TABLE holds (
    repo       TEXT NOT NULL,
    service    TEXT NOT NULL,
    version    TEXT NOT NULL DEFAULT '',
    reason     TEXT NOT NULL DEFAULT '',
    spec       BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (repo, service)
);

CREATE TABLE locks (
    name       TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);
