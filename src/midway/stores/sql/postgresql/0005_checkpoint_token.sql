-- midway store on PostgreSQL, schema version 5: the checkpoint row carries the fencing token
-- of the runner that wrote it. Taking a lease re-marks the row with the new token (under the
-- lease's row lock), so a runner's next checkpoint is one plain UPDATE that finds its own
-- token, fenced without locking the lease row (a row lock is a write of its own: it cost
-- every=1 a third of the server's rate). Rows of schema 4 start at 0: their next write goes
-- the locked way once and marks them.

ALTER TABLE midway_checkpoints ADD COLUMN token bigint NOT NULL DEFAULT 0;
