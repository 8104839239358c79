-- The dashboard's pull requests page and its record of actions (issue 13):
-- the last plan of each open pull request (written by the daemon when it
-- posts the plan comment, deleted when the pull request closes), and every
-- action a person or script took (hold, release, sync, cancel, rollback, a
-- new-service pull request) with its actor.

CREATE TABLE pull_requests (
    repo       TEXT NOT NULL,
    number     INTEGER NOT NULL,
    head_sha   TEXT NOT NULL DEFAULT '',
    title      TEXT NOT NULL DEFAULT '',
    author     TEXT NOT NULL DEFAULT '',
    url        TEXT NOT NULL DEFAULT '',
    markdown   TEXT NOT NULL DEFAULT '',
    status     TEXT NOT NULL DEFAULT '',
    summary    TEXT NOT NULL DEFAULT '',
    updated_at TEXT NOT NULL,
    PRIMARY KEY (repo, number)
);

CREATE TABLE actions (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    at            TEXT NOT NULL,
    actor         TEXT NOT NULL,
    action        TEXT NOT NULL,
    repo          TEXT NOT NULL DEFAULT '',
    service       TEXT NOT NULL DEFAULT '',
    deployment_id INTEGER NOT NULL DEFAULT 0,
    detail        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX actions_repo_service ON actions (repo, service, id);
