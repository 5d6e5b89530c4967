-- midway store, schema version 3: the item ledger keeps ctx.step results; operators' notes;
-- a sample of each job's progress over time, for the handoff report's throughput chart.

ALTER TABLE midway_items ADD COLUMN steps text;

CREATE INDEX midway_items_by_status ON midway_items (job, status);

CREATE TABLE midway_notes (
    job         text NOT NULL,
    at          double precision NOT NULL,
    author      text NOT NULL,
    text        text NOT NULL
);

CREATE INDEX midway_notes_by_job ON midway_notes (job, at);

CREATE TABLE midway_history (
    job         text NOT NULL,
    at          double precision NOT NULL,
    run_id      text NOT NULL,
    version     bigint NOT NULL,
    succeeded   bigint NOT NULL,
    failed      bigint NOT NULL,
    skipped     bigint NOT NULL,
    in_doubt    bigint NOT NULL,
    UNIQUE (job, run_id, version)
);
