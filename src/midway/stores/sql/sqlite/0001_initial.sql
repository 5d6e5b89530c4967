-- midway store, schema version 1.
-- Every table is prefixed midway_ so the store can live inside the database a job writes to.

CREATE TABLE midway_jobs (
    job         TEXT PRIMARY KEY,           -- name, or name@hash of the params
    name        TEXT NOT NULL,
    params      TEXT NOT NULL,              -- JSON
    status      TEXT NOT NULL,              -- running | stopped | failed | completed | ...
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL,
    summary     TEXT                        -- JSON: the last finished run's counters and state
);

CREATE TABLE midway_checkpoints (
    job         TEXT PRIMARY KEY REFERENCES midway_jobs (job) ON DELETE CASCADE,
    version     INTEGER NOT NULL,
    run_id      TEXT NOT NULL,
    position    TEXT NOT NULL,              -- JSON, source-specific
    succeeded   INTEGER NOT NULL,
    failed      INTEGER NOT NULL,
    skipped     INTEGER NOT NULL,
    in_doubt    INTEGER NOT NULL,
    state       TEXT NOT NULL,              -- JSON: the user's accumulated results
    fingerprint TEXT NOT NULL,              -- JSON: what identified the input
    total       INTEGER,
    started_at  REAL NOT NULL,
    updated_at  REAL NOT NULL,
    extra       TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE midway_items (
    job         TEXT NOT NULL REFERENCES midway_jobs (job) ON DELETE CASCADE,
    key         TEXT NOT NULL,              -- JSON of the item's key
    status      TEXT NOT NULL,              -- failed | skipped | in_doubt | started | done
    position    TEXT,
    error       TEXT,
    traceback   TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    item        TEXT,
    updated_at  REAL NOT NULL,
    PRIMARY KEY (job, key)
);

CREATE TABLE midway_leases (
    job         TEXT PRIMARY KEY,
    token       INTEGER NOT NULL,           -- the fencing token: grows with every acquisition
    host        TEXT,                       -- NULL once released
    pid         INTEGER,
    pid_started INTEGER,
    since       REAL NOT NULL,
    expires_at  REAL NOT NULL
);

CREATE TABLE midway_runs (
    run_id          TEXT PRIMARY KEY,
    job             TEXT NOT NULL,
    status          TEXT NOT NULL,          -- running | completed | stopped | failed | crashed
    host            TEXT NOT NULL,
    pid             INTEGER NOT NULL,
    started_at      REAL NOT NULL,
    ended_at        REAL,
    resumed_from    TEXT,                   -- JSON
    start_processed INTEGER NOT NULL,
    processed       INTEGER,
    message         TEXT
);

CREATE INDEX midway_runs_by_job ON midway_runs (job, started_at);
