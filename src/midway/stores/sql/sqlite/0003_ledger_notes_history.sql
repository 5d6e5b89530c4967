-- midway store, schema version 3: the item ledger keeps ctx.step results; operators' notes;
-- a sample of each job's progress over time, for the handoff report's throughput chart.

ALTER TABLE midway_items ADD COLUMN steps TEXT;

CREATE INDEX midway_items_by_status ON midway_items (job, status);

CREATE TABLE midway_notes (
    job         TEXT NOT NULL,
    at          REAL NOT NULL,
    author      TEXT NOT NULL,
    text        TEXT NOT NULL
);

CREATE INDEX midway_notes_by_job ON midway_notes (job, at);

CREATE TABLE midway_history (
    job         TEXT NOT NULL,
    at          REAL NOT NULL,
    run_id      TEXT NOT NULL,
    version     INTEGER NOT NULL,
    succeeded   INTEGER NOT NULL,
    failed      INTEGER NOT NULL,
    skipped     INTEGER NOT NULL,
    in_doubt    INTEGER NOT NULL
);

CREATE INDEX midway_history_by_job ON midway_history (job, at);
