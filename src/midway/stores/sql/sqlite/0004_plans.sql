-- midway store, schema version 4: how a distributed job is split into partitions. The first
-- worker records its plan; every later worker reads it, so all of them cut the input at the
-- same places even when the input (a table that grows) would be cut elsewhere today.

CREATE TABLE midway_plans (
    job         TEXT PRIMARY KEY,
    plan        TEXT NOT NULL,
    created_at  REAL NOT NULL
);
