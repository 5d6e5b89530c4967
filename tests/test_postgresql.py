"""What only the PostgreSQL store has to get right: its URL and errors, migrations under a
lock, fencing against a takeover that races a write, and connections that drop, including
the ones that drop after a commit but before its answer.

The shared store contract (tests/test_stores.py) runs on PostgreSQL too, through the
``store_url`` fixture."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import midway
from midway._model.checkpoint import Checkpoint, Counters
from midway._model.identity import JobId
from midway._model.owner import Owner
from midway.stores import RunRecord, Store, open_store, sqlfiles
from midway.stores.pgconnection import redact
from midway.stores.postgresql import SCHEMA_VERSION, PostgreSQLStore
from midway.stores.reuse import reusing_connections
from support.pg import PgServer, connect, with_database
from support.pgproxy import CutProxy

UNREACHABLE = "postgresql://someone:s3cret@127.0.0.1:1/nowhere"
LAST_STATEMENT = "SELECT query FROM pg_stat_activity WHERE pid = %s"


def checkpoint(job: str, version: int, **changes: Any) -> Checkpoint:
    fields: dict[str, Any] = {
        "job": job,
        "version": version,
        "run_id": f"run-{version}",
        "position": version * 10,
        "counters": Counters(succeeded=version * 10),
        "state": {"seen": version, "name": "Zürich"},
        "fingerprint": {"kind": "sequence", "n": 1000},
        "total": 1000,
        "started_at": 1_700_000_000.25,
        "updated_at": 1_700_000_000.5 + version,
    }
    fields.update(changes)
    return Checkpoint(**fields)


def run_record(job: str, status: str = "running") -> RunRecord:
    return RunRecord(
        run_id=f"{job}-{status}-{time.monotonic_ns()}",
        job=job,
        status=status,
        host=Owner.current().host,
        pid=os.getpid(),
        started_at=time.time(),
    )


def with_query(url: str, pair: str) -> str:
    return url + ("&" if "?" in url else "?") + pair


def scalar(url: str, query: str, *params: Any) -> Any:
    with connect(url) as conn:
        row = conn.execute(query, params or None).fetchone()
    return None if row is None else row[0]


@pytest.fixture
def pg(postgresql_url: str) -> Iterator[Store]:
    store = open_store(postgresql_url)
    yield store
    store.close()


@pytest.fixture
def proxy(pg_server: PgServer) -> Iterator[CutProxy]:
    p = CutProxy(pg_server.admin_url)
    yield p
    p.close()


# -- URLs, the optional extra, errors -----------------------------------------------------


def test_missing_extra_says_how_to_install_it(postgresql_url: str) -> None:
    code = (
        "import sys; sys.modules['psycopg'] = None\n"
        "import midway\n"
        "from midway.stores import open_store\n"
        "try:\n"
        f"    open_store({postgresql_url!r})\n"
        "except midway.ConfigError as exc:\n"
        "    print(exc.exit_code, exc)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert proc.stdout.startswith("2 "), proc.stdout + proc.stderr
    assert "pip install 'midway[postgres]'" in proc.stdout


def test_unreachable_server_is_unavailable_and_hides_the_password() -> None:
    started = time.monotonic()
    with pytest.raises(midway.StoreUnavailable) as info:
        open_store(UNREACHABLE + "?midway_retry_seconds=0.5")
    assert time.monotonic() - started < 5
    assert info.value.exit_code == 3
    message = str(info.value)
    assert "cannot connect to store postgresql://someone:***@127.0.0.1:1/nowhere" in message
    assert "s3cret" not in message
    assert "Check that PostgreSQL is running" in message


def test_cli_on_an_unreachable_server_exits_3() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "midway", "status", "--store", UNREACHABLE],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.startswith("midway: error: cannot connect to store"), proc.stderr
    assert "s3cret" not in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr


def test_a_database_that_does_not_exist_fails_at_once(pg_server: PgServer) -> None:
    url = with_database(pg_server.admin_url, "no_such_database_here")
    started = time.monotonic()
    with pytest.raises(midway.StoreUnavailable, match="does not exist") as info:
        open_store(url)
    assert time.monotonic() - started < 3, "a wrong database name is not worth retrying"
    assert "Check the URL" in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://h/db?midway_retry_seconds=soon",
        "postgresql://h/db?midway_retry_seconds=-1",
        "postgresql://h/db?no_such_libpq_option=1",
    ],
)
def test_bad_postgresql_urls_are_config_errors(url: str) -> None:
    with pytest.raises(midway.ConfigError) as info:
        open_store(url)
    assert info.value.exit_code == 2
    assert url.split("?", maxsplit=1)[0] in str(info.value)


def test_redact_hides_passwords_only() -> None:
    assert redact("postgresql://u:pw@h:5432/db?sslmode=require") == (
        "postgresql://u:***@h:5432/db?sslmode=require"
    )
    assert redact("postgresql://u@h/db?password=pw&host=/run/pg") == (
        "postgresql://u@h/db?password=***&host=/run/pg"
    )
    assert redact("postgresql://u:@/db?host=/tmp/s") == "postgresql://u@/db?host=/tmp/s"


def test_midway_names_its_sessions_unless_the_url_does(postgresql_url: str) -> None:
    for url, expected in (
        (postgresql_url, "midway"),
        (with_query(postgresql_url, "application_name=nightly-import"), "nightly-import"),
    ):
        store = open_store(url)
        try:
            with connect(postgresql_url) as conn:
                rows = conn.execute(
                    "SELECT application_name FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                ).fetchall()
            assert {name for (name,) in rows} == {expected}
        finally:
            store.close()


def test_reading_commands_do_not_create_the_tables(postgresql_url: str) -> None:
    with pytest.raises(midway.StoreNotFound, match="no midway tables"):
        open_store(postgresql_url, create=False)
    assert scalar(postgresql_url, "SELECT to_regclass('midway_schema')") is None
    open_store(postgresql_url).close()
    open_store(postgresql_url, create=False).close()


# -- schema and migrations ----------------------------------------------------------------


def test_tables_are_prefixed_and_versioned(pg: Store, postgresql_url: str) -> None:
    with connect(postgresql_url) as conn:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            )
        ]
        versions = [r[0] for r in conn.execute("SELECT version FROM midway_schema ORDER BY 1")]
    assert names
    assert all(name.startswith("midway_") for name in names), names
    assert versions == [v for v, _ in sqlfiles.migrations("postgresql")]
    assert versions[-1] == SCHEMA_VERSION


def test_tables_go_to_the_schema_the_url_names(postgresql_url: str) -> None:
    with connect(postgresql_url) as conn:
        conn.execute("CREATE SCHEMA jobs_state")
    url = with_query(postgresql_url, "options=-csearch_path%3Djobs_state")
    result = midway.Job("in-schema", store=url, quiet=True).run(range(5), lambda i, c: None)
    assert result.status == "completed"
    assert scalar(postgresql_url, "SELECT to_regclass('public.midway_jobs')") is None
    assert scalar(postgresql_url, "SELECT count(*) FROM jobs_state.midway_jobs") == 1


def test_a_schema_1_store_is_migrated_and_keeps_its_jobs(postgresql_url: str) -> None:
    (_, first), *_ = sqlfiles.migrations("postgresql")
    with connect(postgresql_url) as conn, conn.transaction():
        conn.execute("CREATE TABLE midway_schema (version integer NOT NULL)")
        for statement in first:
            conn.execute(statement)
        conn.execute("INSERT INTO midway_schema VALUES (1)")
        conn.execute(
            "INSERT INTO midway_jobs VALUES ('old', 'old', '{}', 'stopped', 1.0, 2.0, NULL)"
        )
        conn.execute(
            "INSERT INTO midway_runs (run_id, job, status, host, pid, started_at, "
            "start_processed) VALUES ('r1', 'old', 'stopped', 'h', 1, 1.5, 0)"
        )
    store = open_store(postgresql_url)
    try:
        record = store.get_job("old")
        assert record is not None
        assert record.status == "stopped"
        (run,) = store.list_runs("old")
        assert run.run_id == "r1"
        assert run.command is None
    finally:
        store.close()
    assert scalar(postgresql_url, "SELECT max(version) FROM midway_schema") == SCHEMA_VERSION


def test_runners_opening_a_new_store_at_once_migrate_it_once(postgresql_url: str) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def open_one() -> None:
        try:
            barrier.wait()
            open_store(postgresql_url).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert scalar(postgresql_url, "SELECT count(*) FROM midway_schema") == SCHEMA_VERSION


def test_a_newer_schema_is_refused_untouched(pg: Store, postgresql_url: str) -> None:
    with connect(postgresql_url) as conn:
        conn.execute("INSERT INTO midway_schema VALUES (99)")
    with pytest.raises(midway.StoreTooNew, match="Upgrade midway") as info:
        open_store(postgresql_url)
    assert info.value.exit_code == 3
    assert scalar(postgresql_url, "SELECT max(version) FROM midway_schema") == 99


def test_damaged_rows_and_tables_refuse(pg: Store, postgresql_url: str) -> None:
    job = JobId("victim")
    lease = pg.acquire_lease(job, Owner.current(), 5.0)
    pg.write_checkpoint(lease, checkpoint(job.key, 1))
    with connect(postgresql_url) as conn:
        conn.execute("UPDATE midway_checkpoints SET state = '{\"half' WHERE job = 'victim'")
    with pytest.raises(midway.StoreCorrupt, match="damaged"):
        pg.load_checkpoint(job.key)
    with connect(postgresql_url) as conn:
        conn.execute("DROP TABLE midway_checkpoints")
    with pytest.raises(midway.StoreCorrupt, match="not as this midway expects") as info:
        pg.load_checkpoint(job.key)
    assert info.value.exit_code == 3


def test_not_durable_turns_synchronous_commit_off(postgresql_url: str) -> None:
    for durable, expected in ((True, "on"), (False, "off")):
        store = open_store(postgresql_url, durable=durable)
        try:
            assert isinstance(store, PostgreSQLStore)
            row = store._db.connection().execute("SHOW synchronous_commit").fetchone()
            assert row == (expected,)
        finally:
            store.close()


# -- leases and fencing -------------------------------------------------------------------


def test_lease_times_are_the_servers(pg: Store, postgresql_url: str) -> None:
    job = JobId("clock")
    before = float(scalar(postgresql_url, "SELECT extract(epoch FROM clock_timestamp())"))
    pg.acquire_lease(job, Owner.current(), 7.0)
    after = float(scalar(postgresql_url, "SELECT extract(epoch FROM clock_timestamp())"))
    record = pg.get_job(job.key)
    assert record is not None
    assert record.lease is not None
    assert before <= record.lease.since <= after
    assert record.lease.expires_at == pytest.approx(record.lease.since + 7.0)


@pytest.mark.parametrize("same_run", [False, True], ids=["first-of-a-run", "later-of-a-run"])
def test_a_takeover_racing_a_write_wins_cleanly(
    pg: Store, postgresql_url: str, same_run: bool
) -> None:
    """A takeover holds the lease row and has re-marked the checkpoint row (its transaction
    not yet committed) while the old owner writes: the write waits, and once the takeover
    commits it is refused. Also for a run's later checkpoints, which send only what moved."""
    job = JobId("raced")
    lease = pg.acquire_lease(job, Owner.current(), 5.0)
    run = {"run_id": "run-1"} if same_run else {}
    first = checkpoint(job.key, 1, **run)
    pg.write_checkpoint(lease, first)
    if same_run:
        first = checkpoint(job.key, 2, **run)
        pg.write_checkpoint(lease, first)
    outcome: list[BaseException | None] = []

    def write() -> None:
        try:
            pg.write_checkpoint(lease, checkpoint(job.key, 3, **run))
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    with connect(postgresql_url) as other, other.transaction():
        other.execute("SELECT token FROM midway_leases WHERE job = 'raced' FOR UPDATE")
        other.execute(
            "UPDATE midway_leases SET token = token + 1, host = 'elsewhere.invalid', "
            "pid = 4242 WHERE job = 'raced'"
        )
        # as a takeover does: the checkpoint row is the new holder's
        other.execute("UPDATE midway_checkpoints SET token = token + 1 WHERE job = 'raced'")
        writer = threading.Thread(target=write)
        writer.start()
        time.sleep(0.5)
        assert writer.is_alive(), "the write did not wait for the takeover in progress"
    writer.join(10)
    assert len(outcome) == 1
    assert isinstance(outcome[0], midway.LeaseLost), outcome
    assert pg.load_checkpoint(job.key) == first


def test_a_runs_later_checkpoints_send_only_what_moved(pg: Store, postgresql_url: str) -> None:
    """every=1's per-item cost: once a run's checkpoint row is written whole, the next ones
    send the progress alone, not the input's fingerprint, total and start again; each
    reads back whole. A new run (or a new fingerprint) writes the row whole again."""
    assert isinstance(pg, PostgreSQLStore)
    job = JobId("narrow")
    lease = pg.acquire_lease(job, Owner.current(), 30.0)
    backend = pg._db.connection().info.backend_pid

    def last_statement() -> str:
        return str(scalar(postgresql_url, LAST_STATEMENT, backend))

    pg.write_checkpoint(lease, checkpoint(job.key, 1, run_id="run-1"))
    assert "fingerprint" in last_statement()
    for version in (2, 3):
        later = checkpoint(job.key, version, run_id="run-1", state={"seen": version})
        pg.write_checkpoint(lease, later)
        assert "fingerprint" not in last_statement()
        assert pg.load_checkpoint(job.key) == later
    drifted = checkpoint(job.key, 4, run_id="run-1", fingerprint={"kind": "sequence", "n": 9})
    pg.write_checkpoint(lease, drifted)
    assert "fingerprint" in last_statement()
    assert pg.load_checkpoint(job.key) == drifted
    next_run = checkpoint(job.key, 5, run_id="run-2")
    pg.write_checkpoint(lease, next_run)
    assert pg.load_checkpoint(job.key) == next_run


def test_a_kept_connection_is_not_asked_for_the_schema_again(postgresql_url: str) -> None:
    """Each partition a distributed worker runs opens a store (for the run's writer) on the
    connection the last one left idle: the schema that store found current moments ago is
    not asked for again."""
    with reusing_connections():
        first = open_store(postgresql_url)
        assert isinstance(first, PostgreSQLStore)
        backend = first._db.connection().info.backend_pid
        first.load_checkpoint("nobody")
        first.close()
        second = open_store(postgresql_url)
        try:
            assert isinstance(second, PostgreSQLStore)
            assert second._db.connection().info.backend_pid == backend
            last = str(scalar(postgresql_url, LAST_STATEMENT, backend))
            assert "midway_checkpoints" in last
        finally:
            second.close()


def test_a_store_that_refused_the_schema_leaves_no_connection_to_keep(
    postgresql_url: str,
) -> None:
    open_store(postgresql_url).close()
    with connect(postgresql_url) as conn:
        conn.execute("INSERT INTO midway_schema VALUES (99)")
    with reusing_connections():
        for _ in range(2):
            with pytest.raises(midway.StoreTooNew):
                open_store(postgresql_url)


def test_every_1_opens_a_second_connection_only_to_renew_the_lease(postgresql_url: str) -> None:
    """At every=1 the run's thread commits each checkpoint, and its keeper thread only
    renews the lease: it connects when the first renewal is due (a short run never does),
    and renews from then on."""
    seen: list[tuple[int, float]] = []

    def handle(item: int, ctx: Any) -> None:
        time.sleep((0.3, 0.6, 0.4, 0.4)[item])
        with connect(postgresql_url) as conn:
            row = conn.execute(
                "SELECT (SELECT count(*) FROM pg_stat_activity WHERE datname = "
                "current_database() AND application_name = 'midway'), "
                "(SELECT expires_at FROM midway_leases WHERE job = 'renewed')"
            ).fetchone()
        seen.append((int(row[0]), float(row[1])))

    job = midway.Job("renewed", store=postgresql_url, every=1, lease_ttl=1.5, quiet=True)
    job.run(range(4), handle)
    assert seen[0][0] == 1, seen  # the run's own connection only
    assert seen[1][0] == 2, seen  # the first heartbeat (ttl / 3) connected and renewed
    assert seen[-1][1] > seen[0][1] + 0.5, seen


def test_reset_cuts_off_a_runner_whose_lease_lapsed(pg: Store) -> None:
    job = JobId("lapsed")
    lease = pg.acquire_lease(job, Owner("elsewhere.invalid", 7, None), 0.2)
    pg.write_checkpoint(lease, checkpoint(job.key, 1))
    time.sleep(0.3)
    assert pg.reset(job.key, Owner.current()) is True
    with pytest.raises(midway.LeaseLost):
        pg.write_checkpoint(lease, checkpoint(job.key, 2))
    assert pg.get_job(job.key) is None


# -- dropped connections ------------------------------------------------------------------


def test_every_call_survives_its_connection_being_cut(
    pg: Store, pg_server: PgServer, postgresql_url: str
) -> None:
    job = JobId("cut-off")
    me = Owner.current()

    def cut() -> None:
        assert pg_server.terminate(postgresql_url) >= 1

    lease = pg.acquire_lease(job, me, 5.0)
    cut()
    run = run_record(job.key)
    pg.begin_run(lease, run)
    cut()
    pg.write_checkpoint(lease, checkpoint(job.key, 1))
    cut()
    assert pg.renew_lease(lease) is True
    cut()
    assert pg.load_checkpoint(job.key) == checkpoint(job.key, 1)
    cut()
    assert [r.job for r in pg.list_jobs()] == [job.key]
    cut()
    run.status, run.ended_at, run.processed = "completed", time.time(), 10
    pg.end_run(lease, run, completed=True, summary={"status": "completed"})
    cut()
    assert pg.list_runs(job.key)[0].status == "completed"
    assert pg.load_checkpoint(job.key) is None


def test_a_checkpoint_whose_commit_answer_was_lost_is_written_once(
    postgresql_url: str, proxy: CutProxy
) -> None:
    store = open_store(proxy.url(postgresql_url))
    try:
        job = JobId("lost-answer")
        lease = store.acquire_lease(job, Owner.current(), 30.0)
        # The store's first write: from the 6th on psycopg sends a prepared name, not text.
        proxy.cut_after(b"INSERT INTO midway_checkpoints", then_down=True)
        wanted = checkpoint(job.key, 1)
        errors: list[BaseException] = []
        writer = threading.Thread(target=_catching(errors, store.write_checkpoint, lease, wanted))
        fresh = open_store(postgresql_url)  # a second store, straight to the server
        try:
            # The first try reached the server and committed; only its answer was lost.
            writer.start()
            proxy.wait_for_cuts(1)
            assert fresh.load_checkpoint(job.key) == wanted
            proxy.down = False
            writer.join(30)
            assert errors == []
            assert fresh.load_checkpoint(job.key) == wanted
            assert store.load_checkpoint(job.key) == wanted
        finally:
            fresh.close()
    finally:
        store.close()


def test_an_end_of_run_whose_commit_answer_was_lost_is_not_a_lost_lease(
    postgresql_url: str, proxy: CutProxy
) -> None:
    """The retry finds the lease released by its own first try: that is success."""
    store = open_store(proxy.url(postgresql_url))
    try:
        job = JobId("ended-twice")
        lease = store.acquire_lease(job, Owner.current(), 30.0)
        run = run_record(job.key)
        store.begin_run(lease, run)
        store.write_checkpoint(lease, checkpoint(job.key, 1))
        run.status, run.ended_at, run.processed = "completed", time.time(), 10
        proxy.cut_after(b"COMMIT", then_down=True)
        errors: list[BaseException] = []
        ender = threading.Thread(
            target=_catching(errors, store.end_run, lease, run, completed=True, summary={"n": 10})
        )
        ender.start()
        proxy.wait_for_cuts(1)
        assert scalar(postgresql_url, "SELECT status FROM midway_runs") == "completed"
        proxy.down = False
        ender.join(30)
        assert errors == []
        record = store.get_job(job.key)
        assert record is not None
        assert record.status == "completed"
        assert record.checkpoint is None
        assert record.summary == {"n": 10}
    finally:
        store.close()


def test_a_run_start_whose_commit_answer_was_lost_stays_running(
    postgresql_url: str, proxy: CutProxy
) -> None:
    store = open_store(proxy.url(postgresql_url))
    try:
        job = JobId("begun-twice")
        lease = store.acquire_lease(job, Owner.current(), 30.0)
        run = run_record(job.key)
        proxy.cut_after(b"COMMIT", then_down=True)
        errors: list[BaseException] = []
        starter = threading.Thread(target=_catching(errors, store.begin_run, lease, run))
        starter.start()
        proxy.wait_for_cuts(1)
        assert scalar(postgresql_url, "SELECT count(*) FROM midway_runs") == 1
        proxy.down = False
        starter.join(30)
        assert errors == []
        (recorded,) = store.list_runs(job.key)
        assert recorded.run_id == run.run_id
        assert recorded.status == "running", "a retried start marked its own run crashed"
    finally:
        store.close()


def test_a_lease_whose_commit_answer_was_lost_is_still_ours(
    postgresql_url: str, proxy: CutProxy
) -> None:
    store = open_store(proxy.url(postgresql_url))
    try:
        job = JobId("leased-twice")
        proxy.cut_after(b"COMMIT", then_down=True)
        leases: list[Any] = []
        taker = threading.Thread(
            target=lambda: leases.append(store.acquire_lease(job, Owner.current(), 30.0))
        )
        taker.start()
        proxy.wait_for_cuts(1)
        assert scalar(postgresql_url, "SELECT token FROM midway_leases") == 1
        proxy.down = False
        taker.join(30)
        (lease,) = leases
        assert lease.took_over is None, "the first try's own lease is no takeover"
        store.write_checkpoint(lease, checkpoint(job.key, 1))
        assert store.load_checkpoint(job.key) == checkpoint(job.key, 1)
    finally:
        store.close()


def test_a_server_gone_for_good_gives_up_in_bounded_time(
    postgresql_url: str, proxy: CutProxy
) -> None:
    store = open_store(with_query(proxy.url(postgresql_url), "midway_retry_seconds=1"))
    try:
        job = JobId("stranded")
        lease = store.acquire_lease(job, Owner.current(), 30.0)
        saved = checkpoint(job.key, 1)
        store.write_checkpoint(lease, saved)
        proxy.down = True
        proxy.close()  # every open connection cut, no new one accepted
        started = time.monotonic()
        with pytest.raises(midway.StoreUnavailable) as info:
            store.write_checkpoint(lease, checkpoint(job.key, 2))
        assert time.monotonic() - started < 5
        assert info.value.exit_code == 3
        assert "could not get it back in" in str(info.value)
        assert "the last checkpoint stands" in str(info.value)
    finally:
        store.close()
    direct = open_store(postgresql_url)
    try:
        assert direct.load_checkpoint(job.key) == saved
    finally:
        direct.close()


def _catching(errors: list[BaseException], fn: Any, *args: Any, **kwargs: Any) -> Any:
    def call() -> None:
        try:
            fn(*args, **kwargs)
        except BaseException as exc:
            errors.append(exc)

    return call
