-- midway store on PostgreSQL, schema version 1 (the same tables as the SQLite store's).
-- Every table is prefixed midway_ so the store can live inside the database a job writes to;
-- the tables go to the first schema of the connection's search_path.
-- JSON is kept as text: exactly the bytes midway encoded, read back and checked by midway.
-- Times are seconds since the epoch (double precision), as in the other stores.

CREATE TABLE midway_jobs (
    job         text PRIMARY KEY,               -- name, or name@hash of the params
    name        text NOT NULL,
    params      text NOT NULL,                  -- JSON
    status      text NOT NULL,                  -- running | stopped | failed | completed | ...
    created_at  double precision NOT NULL,
    updated_at  double precision NOT NULL,
    summary     text                            -- JSON: the last finished run's counters and state
);

CREATE TABLE midway_checkpoints (
    job         text PRIMARY KEY REFERENCES midway_jobs (job) ON DELETE CASCADE,
    version     bigint NOT NULL,
    run_id      text NOT NULL,
    position    text NOT NULL,                  -- JSON, source-specific
    succeeded   bigint NOT NULL,
    failed      bigint NOT NULL,
    skipped     bigint NOT NULL,
    in_doubt    bigint NOT NULL,
    state       text NOT NULL,                  -- JSON: the user's accumulated results
    fingerprint text NOT NULL,                  -- JSON: what identified the input
    total       bigint,
    started_at  double precision NOT NULL,
    updated_at  double precision NOT NULL,
    extra       text NOT NULL DEFAULT '{}'
);

CREATE TABLE midway_items (
    job         text NOT NULL REFERENCES midway_jobs (job) ON DELETE CASCADE,
    key         text NOT NULL,                  -- JSON of the item's key
    status      text NOT NULL,                  -- failed | skipped | in_doubt | started | done
    position    text,
    error       text,
    traceback   text,
    attempts    integer NOT NULL DEFAULT 0,
    item        text,
    updated_at  double precision NOT NULL,
    PRIMARY KEY (job, key)
);

CREATE TABLE midway_leases (
    job         text PRIMARY KEY,
    token       bigint NOT NULL,                -- the fencing token: grows with every acquisition
    host        text,                           -- NULL once released
    pid         integer,
    pid_started bigint,
    since       double precision NOT NULL,      -- the server's clock, like expires_at
    expires_at  double precision NOT NULL
);

CREATE TABLE midway_runs (
    run_id          text PRIMARY KEY,
    job             text NOT NULL,
    status          text NOT NULL,              -- running | completed | stopped | failed | crashed
    host            text NOT NULL,
    pid             integer NOT NULL,
    started_at      double precision NOT NULL,
    ended_at        double precision,
    resumed_from    text,                       -- JSON
    start_processed bigint NOT NULL,
    processed       bigint,
    message         text
);

CREATE INDEX midway_runs_by_job ON midway_runs (job, started_at);
