-- Named queries for the PostgreSQL store; parameters are %(named)s (psycopg's style). The
-- SQLite store has the same names (see sqlbase.py): a query here may take parameters it
-- does not use (renew_lease and insert_plan take the server's clock, not the runner's).
-- Lease times come from the server's clock (clock_timestamp()), so runners on machines whose
-- clocks disagree still agree on when a lease expires.

-- name: server_time
SELECT extract(epoch FROM clock_timestamp())::double precision;

-- name: schema_table
SELECT to_regclass('midway_schema') IS NOT NULL;

-- name: schema_version
SELECT coalesce(max(version), 0) FROM midway_schema;

-- name: migration_lock
-- Two processes opening a new store at once: the second waits here, then finds it migrated.
SELECT pg_advisory_xact_lock(hashtext('midway schema of ' || coalesce(current_schema(), '')));

-- name: create_schema_table
CREATE TABLE IF NOT EXISTS midway_schema (version integer NOT NULL);

-- name: record_migration
INSERT INTO midway_schema (version) VALUES (%(version)s);

-- name: ensure_lease_row
-- A row to lock, even for a job never leased before: two first runners then queue on it.
INSERT INTO midway_leases (job, token, since, expires_at)
VALUES (%(job)s, 0, 0, 0)
ON CONFLICT (job) DO NOTHING;

-- name: lock_lease
SELECT job, token, host, pid, pid_started, since, expires_at,
    extract(epoch FROM clock_timestamp())::double precision AS now
FROM midway_leases WHERE job = %(job)s
FOR UPDATE;

-- name: get_lease
SELECT job, token, host, pid, pid_started, since, expires_at
FROM midway_leases WHERE job = %(job)s;

-- name: put_lease
UPDATE midway_leases SET token = %(token)s, host = %(host)s, pid = %(pid)s,
    pid_started = %(pid_started)s, since = %(since)s, expires_at = %(expires_at)s
WHERE job = %(job)s;

-- name: renew_lease
UPDATE midway_leases
SET expires_at = extract(epoch FROM clock_timestamp())::double precision + %(ttl)s
WHERE job = %(job)s AND token = %(token)s AND host IS NOT NULL;

-- name: release_lease
UPDATE midway_leases SET host = NULL, pid = NULL, pid_started = NULL, expires_at = 0
WHERE job = %(job)s AND token = %(token)s;

-- name: release_any_lease
UPDATE midway_leases SET host = NULL, pid = NULL, pid_started = NULL, expires_at = 0
WHERE job = %(job)s;

-- name: holds_lease
-- FOR SHARE: a takeover (which updates this row) waits until this transaction ends.
SELECT 1 FROM midway_leases
WHERE job = %(job)s AND token = %(token)s AND host IS NOT NULL
FOR SHARE;

-- name: fence_or_fail
-- holds_lease for a pipelined transaction, whose statements are sent before any answer is
-- read: when the lease is no longer this runner's, the division by a count of zero fails
-- this statement (the count is only known as it runs: nothing for the planner to fold),
-- so the transaction commits nothing and postgresql.py reports the lease lost.
SELECT 1 / count(*) FROM (
    SELECT 1 FROM midway_leases
    WHERE job = %(job)s AND token = %(token)s AND host IS NOT NULL
    FOR SHARE
) AS held;

-- name: ensure_job
INSERT INTO midway_jobs (job, name, params, status, created_at, updated_at)
VALUES (%(job)s, %(name)s, %(params)s, 'new', %(now)s, %(now)s)
ON CONFLICT (job) DO NOTHING;

-- name: set_job_status
UPDATE midway_jobs SET status = %(status)s, updated_at = %(now)s WHERE job = %(job)s;

-- name: finish_job
UPDATE midway_jobs SET status = %(status)s, updated_at = %(now)s, summary = %(summary)s
WHERE job = %(job)s;

-- name: write_checkpoint
-- One statement, so one transaction: the fence and the write commit together. The fence row
-- is locked FOR SHARE, so a takeover cannot commit between the check and the write; once a
-- takeover has committed, the re-checked row no longer matches and nothing is written.
-- Written again with the same values (a retry whose first commit went unanswered), it
-- leaves the same row: the write is idempotent.
WITH fence AS (
    SELECT job FROM midway_leases
    WHERE job = %(job)s AND token = %(token)s AND host IS NOT NULL
    FOR SHARE
)
INSERT INTO midway_checkpoints (
    job, version, run_id, position, succeeded, failed, skipped, in_doubt,
    state, fingerprint, total, started_at, updated_at, extra, token)
SELECT fence.job, %(version)s::bigint, %(run_id)s::text, %(position)s::text,
    %(succeeded)s::bigint, %(failed)s::bigint, %(skipped)s::bigint, %(in_doubt)s::bigint,
    %(state)s::text, %(fingerprint)s::text, %(total)s::bigint,
    %(started_at)s::double precision, %(updated_at)s::double precision, %(extra)s::text,
    %(token)s::bigint
FROM fence
ON CONFLICT (job) DO UPDATE SET
    version = excluded.version, run_id = excluded.run_id, position = excluded.position,
    succeeded = excluded.succeeded, failed = excluded.failed, skipped = excluded.skipped,
    in_doubt = excluded.in_doubt, state = excluded.state, fingerprint = excluded.fingerprint,
    total = excluded.total, started_at = excluded.started_at,
    updated_at = excluded.updated_at, extra = excluded.extra, token = excluded.token;

-- name: update_checkpoint
-- The usual checkpoint: the row this runner wrote before, still marked with its token. A
-- takeover re-marks the row (mark_checkpoint) in the transaction that takes the lease, and
-- an UPDATE racing it re-reads the row once the takeover commits: it then no longer matches
-- and writes nothing (the caller falls back to write_checkpoint, which the lease fences).
UPDATE midway_checkpoints SET
    version = %(version)s, run_id = %(run_id)s, position = %(position)s,
    succeeded = %(succeeded)s, failed = %(failed)s, skipped = %(skipped)s,
    in_doubt = %(in_doubt)s, state = %(state)s, fingerprint = %(fingerprint)s,
    total = %(total)s, started_at = %(started_at)s, updated_at = %(updated_at)s,
    extra = %(extra)s
WHERE job = %(job)s AND token = %(token)s;

-- name: update_progress
-- A run's later checkpoints, while the row holds what this runner wrote in full before under
-- the same token (update_checkpoint or write_checkpoint): only the columns that move. The
-- token fences it as it fences update_checkpoint. At every=1 this runs once per item, so
-- its placeholders are positional (psycopg binds a tuple with less work than a mapping):
-- the columns of rows.PROGRESS in that order, then the job and the token.
UPDATE midway_checkpoints SET
    version = %s, position = %s, succeeded = %s, failed = %s, skipped = %s, in_doubt = %s,
    state = %s, updated_at = %s, extra = %s
WHERE job = %s AND token = %s;

-- name: mark_checkpoint
-- Inside the transaction that takes a lease: the checkpoint row (if any) is the new
-- holder's, and a checkpoint written under an older token no longer finds its row.
UPDATE midway_checkpoints SET token = %(token)s WHERE job = %(job)s AND token <> %(token)s;

-- name: load_checkpoint
SELECT job, version, run_id, position, succeeded, failed, skipped, in_doubt,
    state, fingerprint, total, started_at, updated_at, extra
FROM midway_checkpoints WHERE job = %(job)s;

-- name: delete_checkpoint
DELETE FROM midway_checkpoints WHERE job = %(job)s;

-- name: delete_settled_items
DELETE FROM midway_items
WHERE job = %(job)s AND status NOT IN ('failed', 'skipped', 'in_doubt', 'retry', 'waiting', 'decided');

-- name: crash_stale_runs
-- Not this run itself: begin_run may be retried after its first commit went unanswered.
UPDATE midway_runs SET status = 'crashed', ended_at = %(now)s,
    message = 'the runner ended without a word: killed, crashed, or the machine went down'
WHERE job = %(job)s AND status = 'running' AND run_id <> %(run_id)s;

-- name: insert_run
INSERT INTO midway_runs (
    run_id, job, status, host, pid, started_at, resumed_from, start_processed, command)
VALUES (%(run_id)s, %(job)s, %(status)s, %(host)s, %(pid)s, %(started_at)s, %(resumed_from)s,
    %(start_processed)s, %(command)s)
ON CONFLICT (run_id) DO NOTHING;

-- name: run_ended
-- Did an earlier try of end_run commit, though its answer was lost?
SELECT 1 FROM midway_runs
WHERE run_id = %(run_id)s AND status = %(status)s AND ended_at IS NOT NULL;

-- name: end_run
UPDATE midway_runs SET status = %(status)s, ended_at = %(ended_at)s,
    processed = %(processed)s, message = %(message)s
WHERE run_id = %(run_id)s;

-- name: list_jobs
SELECT job, name, params, status, created_at, updated_at, summary
FROM midway_jobs ORDER BY updated_at DESC;

-- name: get_job
SELECT job, name, params, status, created_at, updated_at, summary
FROM midway_jobs WHERE job = %(job)s;

-- name: list_runs
SELECT run_id, job, status, host, pid, started_at, ended_at, resumed_from,
    start_processed, processed, message, command
FROM midway_runs WHERE job = %(job)s ORDER BY started_at DESC LIMIT %(limit)s;

-- name: list_items
SELECT key, status, error, traceback, attempts, position, item, updated_at, steps
FROM midway_items WHERE job = %(job)s AND status = ANY(%(statuses)s)
ORDER BY updated_at, key COLLATE "C";

-- name: delete_job
DELETE FROM midway_jobs WHERE job = %(job)s;

-- name: delete_items
DELETE FROM midway_items WHERE job = %(job)s;

-- name: delete_runs
DELETE FROM midway_runs WHERE job = %(job)s;

-- name: put_item
INSERT INTO midway_items (
    job, key, status, position, error, traceback, attempts, item, updated_at, steps)
VALUES (%(job)s, %(key)s, %(status)s, %(position)s, %(error)s, %(traceback)s, %(attempts)s,
    %(item)s, %(updated_at)s, %(steps)s)
ON CONFLICT (job, key) DO UPDATE SET
    status = excluded.status, position = excluded.position, error = excluded.error,
    traceback = excluded.traceback, attempts = excluded.attempts, item = excluded.item,
    updated_at = excluded.updated_at, steps = excluded.steps;

-- name: drop_item
DELETE FROM midway_items WHERE job = %(job)s AND key = %(key)s;

-- name: set_item_status
UPDATE midway_items SET status = %(status)s, updated_at = %(now)s
WHERE job = %(job)s AND key = %(key)s;

-- name: insert_history
-- Written again after a lost answer, it adds nothing.
INSERT INTO midway_history (job, at, run_id, version, succeeded, failed, skipped, in_doubt)
VALUES (%(job)s, %(updated_at)s, %(run_id)s, %(version)s, %(succeeded)s, %(failed)s,
    %(skipped)s, %(in_doubt)s)
ON CONFLICT (job, run_id, version) DO NOTHING;

-- name: list_history
SELECT at, run_id, version, succeeded, failed, skipped, in_doubt
FROM midway_history WHERE job = %(job)s ORDER BY at;

-- name: add_note
INSERT INTO midway_notes (job, at, author, text)
VALUES (%(job)s, %(at)s, %(author)s, %(text)s);

-- name: list_notes
SELECT at, author, text FROM midway_notes WHERE job = %(job)s ORDER BY at;

-- name: set_counters
UPDATE midway_checkpoints
SET succeeded = %(succeeded)s, failed = %(failed)s, skipped = %(skipped)s,
    in_doubt = %(in_doubt)s
WHERE job = %(job)s;

-- name: set_summary
UPDATE midway_jobs SET summary = %(summary)s, status = coalesce(%(status)s, status) WHERE job = %(job)s;

-- name: delete_notes
DELETE FROM midway_notes WHERE job = %(job)s;

-- name: delete_history
DELETE FROM midway_history WHERE job = %(job)s;

-- name: insert_plan
INSERT INTO midway_plans (job, plan, created_at)
VALUES (%(job)s, %(plan)s, extract(epoch FROM clock_timestamp())::double precision)
ON CONFLICT (job) DO NOTHING;

-- name: get_plan
SELECT plan FROM midway_plans WHERE job = %(job)s;

-- name: delete_plan
DELETE FROM midway_plans WHERE job = %(job)s;

-- name: ensure_lease_rows
INSERT INTO midway_leases (job, token, since, expires_at)
SELECT unnest(%(jobs)s::text[]), 0, 0, 0
ON CONFLICT (job) DO NOTHING;

-- name: claim_candidates
-- Partitions another worker may be claiming right now are skipped, not waited for; the rows
-- returned stay locked until this transaction ends, so only one worker takes each.
SELECT job, token, host, pid, pid_started, since, expires_at,
    extract(epoch FROM clock_timestamp())::double precision AS now
FROM midway_leases WHERE job = ANY(%(jobs)s)
FOR UPDATE SKIP LOCKED;

-- name: completed_among
-- Of these jobs, those that completed and left no checkpoint, nor items put back by
-- `midway retry` (the next run of such a partition handles them).
SELECT j.job FROM midway_jobs AS j
WHERE j.job = ANY(%(jobs)s)
    AND j.status IN ('completed', 'completed_with_failures')
    AND NOT EXISTS (SELECT 1 FROM midway_checkpoints AS c WHERE c.job = j.job)
    AND NOT EXISTS (SELECT 1 FROM midway_items AS i WHERE i.job = j.job AND i.status = 'retry');
