-- Named queries for the SQLite store; parameters are :named. The PostgreSQL store has the
-- same names (see sqlbase.py): a query here may take parameters it does not use.

-- name: schema_table
SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'midway_schema';

-- name: schema_version
SELECT coalesce(max(version), 0) FROM midway_schema;

-- name: create_schema_table
CREATE TABLE IF NOT EXISTS midway_schema (version INTEGER NOT NULL);

-- name: record_migration
INSERT INTO midway_schema (version) VALUES (:version);

-- name: get_lease
SELECT job, token, host, pid, pid_started, since, expires_at
FROM midway_leases WHERE job = :job;

-- name: put_lease
INSERT INTO midway_leases (job, token, host, pid, pid_started, since, expires_at)
VALUES (:job, :token, :host, :pid, :pid_started, :since, :expires_at)
ON CONFLICT (job) DO UPDATE SET
    token = excluded.token, host = excluded.host, pid = excluded.pid,
    pid_started = excluded.pid_started, since = excluded.since, expires_at = excluded.expires_at;

-- name: renew_lease
UPDATE midway_leases SET expires_at = :now + :ttl
WHERE job = :job AND token = :token AND host IS NOT NULL;

-- name: release_lease
UPDATE midway_leases SET host = NULL, pid = NULL, pid_started = NULL, expires_at = 0
WHERE job = :job AND token = :token;

-- name: holds_lease
SELECT 1 FROM midway_leases WHERE job = :job AND token = :token AND host IS NOT NULL;

-- name: ensure_job
INSERT INTO midway_jobs (job, name, params, status, created_at, updated_at)
VALUES (:job, :name, :params, 'new', :now, :now)
ON CONFLICT (job) DO NOTHING;

-- name: set_job_status
UPDATE midway_jobs SET status = :status, updated_at = :now WHERE job = :job;

-- name: finish_job
UPDATE midway_jobs SET status = :status, updated_at = :now, summary = :summary WHERE job = :job;

-- name: write_checkpoint
INSERT INTO midway_checkpoints (
    job, version, run_id, position, succeeded, failed, skipped, in_doubt,
    state, fingerprint, total, started_at, updated_at, extra)
SELECT :job, :version, :run_id, :position, :succeeded, :failed, :skipped, :in_doubt,
    :state, :fingerprint, :total, :started_at, :updated_at, :extra
WHERE EXISTS (
    SELECT 1 FROM midway_leases WHERE job = :job AND token = :token AND host IS NOT NULL)
ON CONFLICT (job) DO UPDATE SET
    version = excluded.version, run_id = excluded.run_id, position = excluded.position,
    succeeded = excluded.succeeded, failed = excluded.failed, skipped = excluded.skipped,
    in_doubt = excluded.in_doubt, state = excluded.state, fingerprint = excluded.fingerprint,
    total = excluded.total, started_at = excluded.started_at,
    updated_at = excluded.updated_at, extra = excluded.extra;

-- name: load_checkpoint
SELECT job, version, run_id, position, succeeded, failed, skipped, in_doubt,
    state, fingerprint, total, started_at, updated_at, extra
FROM midway_checkpoints WHERE job = :job;

-- name: delete_checkpoint
DELETE FROM midway_checkpoints WHERE job = :job;

-- name: delete_settled_items
DELETE FROM midway_items
WHERE job = :job AND status NOT IN ('failed', 'skipped', 'in_doubt', 'retry', 'waiting', 'decided');

-- name: crash_stale_runs
UPDATE midway_runs SET status = 'crashed', ended_at = :now,
    message = 'the runner ended without a word: killed, crashed, or the machine went down'
WHERE job = :job AND status = 'running';

-- name: insert_run
INSERT INTO midway_runs (
    run_id, job, status, host, pid, started_at, resumed_from, start_processed, command)
VALUES (:run_id, :job, :status, :host, :pid, :started_at, :resumed_from, :start_processed,
    :command);

-- name: run_ended
-- Did an earlier try of end_run commit? (Asked only of a call run again, never here.)
SELECT 1 FROM midway_runs WHERE run_id = :run_id AND status = :status AND ended_at IS NOT NULL;

-- name: end_run
UPDATE midway_runs SET status = :status, ended_at = :ended_at, processed = :processed,
    message = :message
WHERE run_id = :run_id;

-- name: list_jobs
SELECT job, name, params, status, created_at, updated_at, summary
FROM midway_jobs ORDER BY updated_at DESC;

-- name: get_job
SELECT job, name, params, status, created_at, updated_at, summary
FROM midway_jobs WHERE job = :job;

-- name: list_runs
SELECT run_id, job, status, host, pid, started_at, ended_at, resumed_from,
    start_processed, processed, message, command
FROM midway_runs WHERE job = :job ORDER BY started_at DESC LIMIT :limit;

-- name: list_items
SELECT key, status, error, traceback, attempts, position, item, updated_at, steps
FROM midway_items
WHERE job = :job AND status IN (SELECT value FROM json_each(:statuses))
ORDER BY updated_at, key;

-- name: put_item
INSERT INTO midway_items (
    job, key, status, position, error, traceback, attempts, item, updated_at, steps)
VALUES (:job, :key, :status, :position, :error, :traceback, :attempts, :item, :updated_at,
    :steps)
ON CONFLICT (job, key) DO UPDATE SET
    status = excluded.status, position = excluded.position, error = excluded.error,
    traceback = excluded.traceback, attempts = excluded.attempts, item = excluded.item,
    updated_at = excluded.updated_at, steps = excluded.steps;

-- name: drop_item
DELETE FROM midway_items WHERE job = :job AND key = :key;

-- name: set_item_status
UPDATE midway_items SET status = :status, updated_at = :now WHERE job = :job AND key = :key;

-- name: insert_history
INSERT INTO midway_history (job, at, run_id, version, succeeded, failed, skipped, in_doubt)
VALUES (:job, :updated_at, :run_id, :version, :succeeded, :failed, :skipped, :in_doubt);

-- name: list_history
SELECT at, run_id, version, succeeded, failed, skipped, in_doubt
FROM midway_history WHERE job = :job ORDER BY at;

-- name: add_note
INSERT INTO midway_notes (job, at, author, text) VALUES (:job, :at, :author, :text);

-- name: list_notes
SELECT at, author, text FROM midway_notes WHERE job = :job ORDER BY at;

-- name: set_counters
UPDATE midway_checkpoints
SET succeeded = :succeeded, failed = :failed, skipped = :skipped, in_doubt = :in_doubt
WHERE job = :job;

-- name: set_summary
UPDATE midway_jobs SET summary = :summary, status = coalesce(:status, status) WHERE job = :job;

-- name: delete_job
DELETE FROM midway_jobs WHERE job = :job;

-- name: delete_items
DELETE FROM midway_items WHERE job = :job;

-- name: delete_runs
DELETE FROM midway_runs WHERE job = :job;

-- name: delete_notes
DELETE FROM midway_notes WHERE job = :job;

-- name: delete_history
DELETE FROM midway_history WHERE job = :job;

-- name: insert_plan
INSERT INTO midway_plans (job, plan, created_at) VALUES (:job, :plan, :now)
ON CONFLICT (job) DO NOTHING;

-- name: get_plan
SELECT plan FROM midway_plans WHERE job = :job;

-- name: delete_plan
DELETE FROM midway_plans WHERE job = :job;

-- name: completed_among
-- Of these jobs (a JSON list of keys), those that completed and left no checkpoint, nor
-- items put back by `midway retry` (the next run of such a partition handles them).
SELECT j.job FROM midway_jobs AS j
WHERE j.job IN (SELECT value FROM json_each(:jobs))
    AND j.status IN ('completed', 'completed_with_failures')
    AND NOT EXISTS (SELECT 1 FROM midway_checkpoints AS c WHERE c.job = j.job)
    AND NOT EXISTS (SELECT 1 FROM midway_items AS i WHERE i.job = j.job AND i.status = 'retry');
