-- bosun state, first version (SQLite). Times are TEXT in one fixed-width UTC
-- form, 2006-01-02T15:04:05.000000Z, so that text order is time order.

CREATE TABLE deployments (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    repo         TEXT NOT NULL,
    service      TEXT NOT NULL DEFAULT '',
    commit_sha   TEXT NOT NULL DEFAULT '',
    status       TEXT NOT NULL CHECK (status IN ('pending', 'deploying', 'deployed', 'failed', 'rolled_back')),
    triggered_by TEXT NOT NULL DEFAULT '',
    error        TEXT NOT NULL DEFAULT '',
    started_at   TEXT NOT NULL,
    finished_at  TEXT
);
CREATE INDEX deployments_repo_service ON deployments (repo, service, id);
CREATE INDEX deployments_status ON deployments (status, id);

CREATE TABLE deployment_events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    deployment_id INTEGER NOT NULL REFERENCES deployments (id),
    host          TEXT NOT NULL DEFAULT '',
    step          TEXT NOT NULL DEFAULT '',
    status        TEXT NOT NULL DEFAULT '',
    message       TEXT NOT NULL DEFAULT '',
    at            TEXT NOT NULL
);
CREATE INDEX deployment_events_deployment ON deployment_events (deployment_id, id);

CREATE TABLE applied (
    repo       TEXT NOT NULL,
    service    TEXT NOT NULL,
    role       TEXT NOT NULL,
    host       TEXT NOT NULL,
    version    TEXT NOT NULL,
    commit_sha TEXT NOT NULL DEFAULT '',
    spec       BLOB NOT NULL,
    applied_at TEXT NOT NULL,
    PRIMARY KEY (repo, service, role, host)
);

CREATE TABLE spec_versions (
    repo          TEXT NOT NULL,
    service       TEXT NOT NULL,
    role          TEXT NOT NULL,
    version       TEXT NOT NULL,
    commit_sha    TEXT NOT NULL DEFAULT '',
    spec          BLOB NOT NULL,
    first_applied TEXT NOT NULL,
    last_applied  TEXT NOT NULL,
    PRIMARY KEY (repo, service, role, version)
);
CREATE INDEX spec_versions_last ON spec_versions (repo, service, last_applied);

CREATE TABLE webhook_deliveries (
    id          TEXT PRIMARY KEY,
    event       TEXT NOT NULL DEFAULT '',
    repo        TEXT NOT NULL DEFAULT '',
    payload     BLOB NOT NULL,
    received_at TEXT NOT NULL,
    outcome     TEXT NOT NULL DEFAULT ''
);

CREATE TABLE holds (
    repo       TEXT NOT NULL,
    service    TEXT NOT NULL,
    version    TEXT NOT NULL DEFAULT '',
    reason     TEXT NOT NULL DEFAULT '',
    spec       BLOB NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (repo, service)
);

CREATE TABLE locks (
    name       TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    expires_at TEXT NOT NULL
);

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
