-- midway store on PostgreSQL, schema version 2: each run records the command line that
-- started it, so a person (or `midway show`) can tell how to resume the work.

ALTER TABLE midway_runs ADD COLUMN command text;
