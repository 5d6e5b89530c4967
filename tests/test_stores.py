"""The store contract, on every store: checkpoints, leases and fencing, reset, listing, and
damaged stores that refuse (exit 3) instead of silently starting afresh."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import midway
from midway._model.checkpoint import Checkpoint, Counters
from midway._model.identity import JobId
from midway._model.ledger import ItemRecord
from midway._model.owner import Owner, hostname
from midway.stores import RunRecord, Store, open_store, sqlfiles

OTHER_HOST = "elsewhere.invalid"


def other_owner(pid: int = 4242) -> Owner:
    """A live runner on another machine: only its lease's expiry can free the job."""
    return Owner(OTHER_HOST, pid, None)


def make_checkpoint(job: str, version: int, **changes: Any) -> Checkpoint:
    fields: dict[str, Any] = {
        "job": job,
        "version": version,
        "run_id": "run-" + str(version),
        "position": {"offset": version * 100, "record": version * 10},
        "counters": Counters(succeeded=version * 10 - 1, failed=1),
        "state": {"seen": version, "names": ["Zürich", "東京"], "nested": {"ok": True}},
        "fingerprint": {"kind": "csv", "size": 1234, "header": ["id", "name"]},
        "total": 1000,
        "started_at": 1_700_000_000.25,
        "updated_at": 1_700_000_000.5 + version,
    }
    fields.update(changes)
    return Checkpoint(**fields)


def run_record(job: str, status: str = "running") -> RunRecord:
    return RunRecord(
        run_id=uuid.uuid4().hex,
        job=job,
        status=status,
        host=hostname(),
        pid=os.getpid(),
        started_at=time.time(),
    )


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = open_store(store_url)
    yield s
    s.close()


# -- checkpoints --------------------------------------------------------------------------


def test_checkpoint_round_trip(store: Store) -> None:
    job = JobId("round-trip")
    assert store.load_checkpoint(job.key) is None
    lease = store.acquire_lease(job, Owner.current(), 5.0)
    cp = make_checkpoint(job.key, 1)
    store.write_checkpoint(lease, cp)
    assert store.load_checkpoint(job.key) == cp
    cp2 = make_checkpoint(job.key, 2, position=None, total=None, state={})
    store.write_checkpoint(lease, cp2)
    assert store.load_checkpoint(job.key) == cp2


def test_checkpoint_survives_reopening(store_url: str) -> None:
    job = JobId("reopen", {"file": "a.csv"})
    s = open_store(store_url)
    lease = s.acquire_lease(job, Owner.current(), 5.0)
    cp = make_checkpoint(job.key, 7)
    s.write_checkpoint(lease, cp)
    s.close()
    again = open_store(store_url)
    try:
        assert again.load_checkpoint(job.key) == cp
        record = again.get_job(job.key)
        assert record is not None
        assert record.name == "reopen"
        assert record.params == {"file": "a.csv"}
    finally:
        again.close()


def test_versions_increment_across_runs(store_url: str) -> None:
    """Checkpoint versions only grow, also across resumed runs. (How many checkpoints reach
    the store depends on its speed: with group commit, one that falls due while the store is
    still writing two others is skipped.)"""
    job = midway.Job("versions", store=store_url, every=10, every_seconds=None, quiet=True)
    for item in job.loop(range(100)):
        if item == 25:
            break
    info = job.info()
    assert info is not None
    assert info.checkpoint is not None
    first = info.checkpoint.version
    assert 1 <= first <= 3  # at 10, 20 (either may be skipped), and 25 when the loop was left
    assert info.checkpoint.position == 25
    loop = job.loop(range(100))
    for item in loop:
        if item == 37:
            break
    assert loop.resumed_from is not None
    assert loop.resumed_from["version"] == first
    info = job.info()
    assert info is not None
    assert info.checkpoint is not None
    assert first < info.checkpoint.version <= first + 2  # at 30 (or not), and 37
    assert info.checkpoint.position == 37


# -- leases -------------------------------------------------------------------------------


def test_acquire_creates_the_job(store: Store) -> None:
    job = JobId("fresh", {"n": 1})
    lease = store.acquire_lease(job, Owner.current(), 5.0)
    assert lease.job == job.key
    assert lease.took_over is None
    record = store.get_job(job.key)
    assert record is not None
    assert record.name == "fresh"
    assert record.params == {"n": 1}
    assert record.lease is not None
    assert record.lease.is_live()
    assert record.lease.owner == Owner.current()


def test_live_owner_blocks_a_second_runner(store: Store) -> None:
    job = JobId("busy")
    theirs = store.acquire_lease(job, other_owner(), 30.0)
    with pytest.raises(midway.LeaseHeld) as info:
        store.acquire_lease(job, Owner.current(), 5.0)
    assert info.value.exit_code == 3
    assert info.value.owner["pid"] == 4242
    assert info.value.owner["host"] == OTHER_HOST
    message = str(info.value)
    assert "4242" in message
    assert OTHER_HOST in message
    assert "kill -TERM 4242" in message  # says what to do
    # The holder's lease is untouched by the refusal.
    assert store.renew_lease(theirs)


def test_released_lease_is_free_at_once(store: Store) -> None:
    job = JobId("released")
    theirs = store.acquire_lease(job, other_owner(), 30.0)
    store.release_lease(theirs)
    mine = store.acquire_lease(job, Owner.current(), 5.0)
    assert mine.token > theirs.token


def test_expired_lease_is_taken_over(store: Store) -> None:
    job = JobId("expiring")
    theirs = store.acquire_lease(job, other_owner(), 0.5)
    with pytest.raises(midway.LeaseHeld):
        store.acquire_lease(job, Owner.current(), 5.0)
    time.sleep(0.6)
    mine = store.acquire_lease(job, Owner.current(), 5.0)
    assert mine.token > theirs.token
    assert mine.took_over is not None
    assert mine.took_over.owner == other_owner()


def test_dead_owner_on_this_host_is_taken_over_at_once(store: Store) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    dead = Owner(hostname(), child.pid, None)
    job = JobId("orphan")
    store.acquire_lease(job, dead, 3600.0)
    mine = store.acquire_lease(job, Owner.current(), 5.0)
    assert mine.took_over is not None
    assert mine.took_over.owner == dead


def test_renew_extends_the_lease(store: Store) -> None:
    job = JobId("renewing")
    lease = store.acquire_lease(job, Owner.current(), 5.0)
    before = store.get_job(job.key)
    assert before is not None
    assert before.lease is not None
    time.sleep(0.02)
    assert store.renew_lease(lease) is True
    after = store.get_job(job.key)
    assert after is not None
    assert after.lease is not None
    assert after.lease.expires_at > before.lease.expires_at
    assert after.lease.token == lease.token


def test_fencing_a_stale_lease_cannot_write(store: Store) -> None:
    job = JobId("fenced")
    stale = store.acquire_lease(job, other_owner(1111), 0.2)
    cp1 = make_checkpoint(job.key, 1)
    store.write_checkpoint(stale, cp1)
    time.sleep(0.3)
    fresh = store.acquire_lease(job, Owner.current(), 5.0)
    assert fresh.token > stale.token

    with pytest.raises(midway.LeaseLost) as info:
        store.write_checkpoint(stale, make_checkpoint(job.key, 2, state={"stale": True}))
    assert info.value.exit_code == 3
    assert "lost its lease" in str(info.value)
    assert store.load_checkpoint(job.key) == cp1, "a fenced write changed the checkpoint"

    assert store.renew_lease(stale) is False
    with pytest.raises(midway.LeaseLost):
        store.begin_run(stale, run_record(job.key))
    with pytest.raises(midway.LeaseLost):
        store.end_run(stale, run_record(job.key, "stopped"), completed=True, summary={})
    with pytest.raises(midway.LeaseLost):
        store.write_items(stale, [ItemRecord(key=1, status="failed", error="E: late")])
    assert store.load_checkpoint(job.key) == cp1
    assert store.list_runs(job.key) == []
    assert store.list_items(job.key, ("failed",)) == []

    # Releasing the stale lease does not free the new owner's.
    store.release_lease(stale)
    with pytest.raises(midway.LeaseHeld):
        store.acquire_lease(job, other_owner(2222), 5.0)
    cp2 = make_checkpoint(job.key, 2)
    store.write_checkpoint(fresh, cp2)
    assert store.load_checkpoint(job.key) == cp2


def test_released_lease_cannot_write(store: Store) -> None:
    job = JobId("let-go")
    lease = store.acquire_lease(job, Owner.current(), 5.0)
    store.release_lease(lease)
    with pytest.raises(midway.LeaseLost):
        store.write_checkpoint(lease, make_checkpoint(job.key, 1))
    assert store.load_checkpoint(job.key) is None
    assert store.renew_lease(lease) is False


# -- runs, listing, reset -----------------------------------------------------------------


def test_runs_and_job_status(store: Store) -> None:
    job = JobId("runs")
    lease = store.acquire_lease(job, Owner.current(), 5.0)
    first = run_record(job.key)
    store.begin_run(lease, first)
    record = store.get_job(job.key)
    assert record is not None
    assert record.status == "running"
    assert record.effective_status == "running"
    store.write_checkpoint(lease, make_checkpoint(job.key, 1))

    # The runner vanishes without ending its run: once its lease is gone it reads "crashed".
    store.release_lease(lease)
    record = store.get_job(job.key)
    assert record is not None
    assert record.effective_status == "crashed"

    lease = store.acquire_lease(job, Owner.current(), 5.0)
    second = run_record(job.key)
    second.started_at = first.started_at + 1
    store.begin_run(lease, second)
    runs = store.list_runs(job.key)
    assert [r.run_id for r in runs] == [second.run_id, first.run_id]
    assert runs[1].status == "crashed", "a run left 'running' is marked crashed by the next"

    second.status, second.ended_at, second.processed = "completed", time.time(), 10
    summary = {"status": "completed", "counters": {"succeeded": 10}, "state": {"n": 10}}
    store.end_run(lease, second, completed=True, summary=summary)
    store.release_lease(lease)
    record = store.get_job(job.key)
    assert record is not None
    assert record.status == "completed"
    assert record.effective_status == "completed"
    assert record.checkpoint is None, "a completed job keeps no resume checkpoint"
    assert store.load_checkpoint(job.key) is None
    assert record.summary is not None
    assert record.summary["state"] == {"n": 10}
    assert store.list_runs(job.key)[0].status == "completed"
    assert store.list_items(job.key, ("failed", "skipped", "in_doubt")) == []


def test_list_jobs_and_get_job(store: Store) -> None:
    assert store.list_jobs() == []
    assert store.get_job("nobody") is None
    plain, with_params = JobId("alpha"), JobId("alpha", {"day": "2024-01-01"})
    for job in (plain, with_params, JobId("beta")):
        lease = store.acquire_lease(job, Owner.current(), 5.0)
        store.write_checkpoint(lease, make_checkpoint(job.key, 1))
        store.release_lease(lease)
    jobs = {r.job: r for r in store.list_jobs()}
    assert set(jobs) == {"alpha", with_params.key, "beta"}
    assert with_params.key.startswith("alpha@")
    assert jobs[with_params.key].name == "alpha"
    assert jobs[with_params.key].params == {"day": "2024-01-01"}
    checkpoint = jobs["beta"].checkpoint
    assert checkpoint is not None
    assert checkpoint.version == 1
    record = store.get_job(with_params.key)
    assert record is not None
    assert record.job == with_params.key


def test_many_jobs_and_what_a_run_opens_with_are_read_at_once(store: Store) -> None:
    """get_jobs is get_job of each (one round trip on PostgreSQL); load_for_run is the
    checkpoint, the whole ledger and the record a run opens with."""
    fresh, done = JobId("fresh"), JobId("done")
    assert store.load_for_run(fresh.key) == (None, [], None)
    lease = store.acquire_lease(done, Owner.current(), 5.0)
    cp = make_checkpoint(done.key, 1)
    failed = ItemRecord(key=7, status="failed", error="ValueError: no", attempts=2)
    cp.ledger = [failed]
    store.write_checkpoint(lease, cp)
    checkpoint, items, record = store.load_for_run(done.key)
    assert checkpoint == cp
    assert [(r.key, r.status, r.attempts) for r in items] == [(7, "failed", 2)]
    assert record is not None
    assert record.job == done.key
    assert record.checkpoint == cp
    assert record == store.get_job(done.key)
    store.acquire_lease(fresh, Owner.current(), 5.0)
    keys = [done.key, "nobody", fresh.key]
    assert store.get_jobs(keys) == [store.get_job(key) for key in keys]
    assert store.get_jobs([]) == []


def test_reset_refuses_while_a_live_runner_holds_the_job(store: Store) -> None:
    job = JobId("held")
    theirs = store.acquire_lease(job, other_owner(), 30.0)
    store.write_checkpoint(theirs, make_checkpoint(job.key, 1))
    with pytest.raises(midway.LeaseHeld):
        store.reset(job.key, Owner.current())
    assert store.load_checkpoint(job.key) is not None, "a refused reset changed nothing"
    assert store.get_job(job.key) is not None


def test_reset_forgets_the_job(store: Store) -> None:
    job = JobId("forget-me")
    lease = store.acquire_lease(job, Owner.current(), 5.0)
    store.begin_run(lease, run_record(job.key))
    store.write_checkpoint(lease, make_checkpoint(job.key, 3))
    store.release_lease(lease)
    assert store.reset(job.key, Owner.current()) is True
    assert store.get_job(job.key) is None
    assert store.load_checkpoint(job.key) is None
    assert store.list_runs(job.key) == []
    assert job.key not in {r.job for r in store.list_jobs()}
    assert store.reset(job.key, Owner.current()) is False
    assert store.reset("never-existed", Owner.current()) is False
    # The job can start again from nothing.
    lease = store.acquire_lease(job, Owner.current(), 5.0)
    store.write_checkpoint(lease, make_checkpoint(job.key, 1))
    loaded = store.load_checkpoint(job.key)
    assert loaded is not None
    assert loaded.version == 1


def test_a_reset_job_runs_from_the_start(store_url: str) -> None:
    job = midway.Job("again", store=store_url, every=5, every_seconds=None, quiet=True)
    for item in job.loop(range(20)):
        if item == 12:
            break
    store = open_store(store_url)
    try:
        assert store.reset(job.key, Owner.current()) is True
    finally:
        store.close()
    seen: list[int] = []
    result = job.run(range(20), lambda item, ctx: seen.append(item))
    assert seen == list(range(20))
    assert result.resumed_from is None


# -- store URLs ---------------------------------------------------------------------------


def test_relative_store_urls_are_under_the_working_directory(tmp_path: Path) -> None:
    s = open_store("sqlite:///rel/state.db")
    s.close()
    assert (tmp_path / "rel" / "state.db").is_file()
    f = open_store("file:rel-files")
    f.close()
    assert (tmp_path / "rel-files" / "midway-store.json").is_file()


def test_default_store_is_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    midway.Job("default-store", quiet=True).run([1, 2], lambda item, ctx: None)
    assert (tmp_path / ".midway" / "state.db").is_file()
    monkeypatch.setenv("MIDWAY_STORE", f"file://{tmp_path / 'from-env'}")
    midway.Job("env-store", quiet=True).run([1, 2], lambda item, ctx: None)
    assert (tmp_path / "from-env" / "jobs" / "env-store" / "job.json").is_file()


@pytest.mark.parametrize(
    "url",
    ["mysql://db/x", "sqlite://otherhost/x.db", "sqlite:", "nope"],
)
def test_bad_store_urls_are_config_errors(url: str) -> None:
    with pytest.raises(midway.ConfigError) as info:
        open_store(url)
    assert info.value.exit_code == 2
    assert url in str(info.value)


# -- durability knobs ---------------------------------------------------------------------


@pytest.mark.parametrize(("durable", "synchronous"), [(True, 2), (False, 1)])
def test_sqlite_durability_pragmas(tmp_path: Path, durable: bool, synchronous: int) -> None:
    from midway.stores.sqlite import SQLiteStore

    store = open_store(f"sqlite:///{tmp_path / 'd.db'}", durable=durable)
    try:
        assert isinstance(store, SQLiteStore)
        assert store.conn.execute("PRAGMA synchronous").fetchone()[0] == synchronous
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        store.close()


def test_sqlite_tables_are_prefixed(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    open_store(f"sqlite:///{path}").close()
    with sqlite3.connect(path) as conn:
        names = [
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")
        ]
        assert names
        assert all(name.startswith("midway_") for name in names), names
        latest = max(v for v, _ in sqlfiles.migrations("sqlite"))
        assert conn.execute("SELECT max(version) FROM midway_schema").fetchone()[0] == latest
    conn.close()


# -- damaged stores refuse ----------------------------------------------------------------


@dataclass(frozen=True)
class Damage:
    """A way to damage a store: ``make(tmp_path) -> (url, the file that must stay as it is)``."""

    name: str
    make: Callable[[Path], tuple[str, Path]]
    error: type[midway.RefusedError]
    hint: str


VICTIM = "victim"


def _real_store(url: str, checkpoints: int = 4) -> None:
    """A store with a job that has written a few checkpoints and stopped."""
    store = open_store(url)
    try:
        job = JobId(VICTIM)
        lease = store.acquire_lease(job, Owner.current(), 5.0)
        store.begin_run(lease, run_record(VICTIM))
        for version in range(1, checkpoints + 1):
            pad = {"pad": "x" * 3000, "rows": list(range(200))}
            store.write_checkpoint(lease, make_checkpoint(VICTIM, version, state=pad))
        run = run_record(VICTIM, "stopped")
        store.end_run(lease, run, completed=False, summary=None)
        store.release_lease(lease)
    finally:
        store.close()


def _sqlite_garbage(tmp: Path) -> tuple[str, Path]:
    path = tmp / "state.db"
    path.write_bytes(b"this is not a database, it is a shopping list\n" * 200)
    return f"sqlite:///{path}", path


def _sqlite_truncated(tmp: Path) -> tuple[str, Path]:
    path = tmp / "state.db"
    url = f"sqlite:///{path}"
    _real_store(url)
    assert not Path(f"{path}-wal").exists(), "the WAL should be checkpointed on close"
    size = path.stat().st_size
    assert size > 4 * 4096, size
    with path.open("r+b") as f:
        f.truncate(size // 2)
    return url, path


def _sqlite_too_new(tmp: Path) -> tuple[str, Path]:
    path = tmp / "state.db"
    url = f"sqlite:///{path}"
    _real_store(url)
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("INSERT INTO midway_schema (version) VALUES (99)")
    conn.close()
    return url, path


def _file_half_checkpoint(tmp: Path) -> tuple[str, Path]:
    root = tmp / "store"
    url = f"file://{root}"
    _real_store(url)
    path = root / "jobs" / VICTIM / "checkpoint.json"
    data = path.read_bytes()
    json.loads(data)
    path.write_bytes(data[: len(data) // 2])
    return url, path


def _file_garbage_marker(tmp: Path) -> tuple[str, Path]:
    root = tmp / "store"
    url = f"file://{root}"
    _real_store(url)
    path = root / "midway-store.json"
    path.write_bytes(b"\x00" * 37)  # what a torn write can leave after a power cut
    return url, path


def _file_too_new(tmp: Path) -> tuple[str, Path]:
    root = tmp / "store"
    url = f"file://{root}"
    _real_store(url)
    path = root / "midway-store.json"
    path.write_text(json.dumps({"format": "midway-file-store", "schema": 99}), encoding="utf-8")
    return url, path


def _file_store_is_a_file(tmp: Path) -> tuple[str, Path]:
    path = tmp / "store"
    path.write_text("I am a file\n", encoding="utf-8")
    return f"file://{path}", path


DAMAGES = [
    Damage("sqlite-garbage", _sqlite_garbage, midway.StoreCorrupt, "Restore it from a backup"),
    Damage("sqlite-truncated", _sqlite_truncated, midway.StoreCorrupt, "Restore it from a backup"),
    Damage("sqlite-too-new", _sqlite_too_new, midway.StoreTooNew, "Upgrade midway"),
    Damage("file-half-checkpoint", _file_half_checkpoint, midway.StoreCorrupt, "Restore it"),
    Damage("file-garbage-marker", _file_garbage_marker, midway.StoreCorrupt, "Restore it"),
    Damage("file-too-new", _file_too_new, midway.StoreTooNew, "Upgrade midway"),
    Damage("file-store-is-a-file", _file_store_is_a_file, midway.StoreCorrupt, "Point --store"),
]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read_everything(url: str) -> None:
    store = open_store(url)
    try:
        store.list_jobs()
        store.get_job(VICTIM)
        store.load_checkpoint(VICTIM)
    finally:
        store.close()


@pytest.mark.parametrize("damage", DAMAGES, ids=[d.name for d in DAMAGES])
def test_damaged_store_refuses_to_open_or_read(tmp_path: Path, damage: Damage) -> None:
    url, evidence = damage.make(tmp_path)
    before = digest(evidence)
    with pytest.raises(damage.error) as info:
        _read_everything(url)
    assert info.value.exit_code == 3
    assert damage.hint in str(info.value)
    assert digest(evidence) == before, "reading a damaged store changed it"
    # Still refused the second time: nothing was quietly repaired or recreated.
    with pytest.raises(damage.error):
        _read_everything(url)


@pytest.mark.parametrize("damage", DAMAGES, ids=[d.name for d in DAMAGES])
def test_job_on_a_damaged_store_refuses(tmp_path: Path, damage: Damage) -> None:
    url, evidence = damage.make(tmp_path)
    before = digest(evidence)
    handled: list[int] = []
    job = midway.Job(VICTIM, store=url, quiet=True)
    with pytest.raises(midway.RefusedError) as info:
        job.run(range(10), lambda item, ctx: handled.append(item))
    assert isinstance(info.value, damage.error)
    assert info.value.exit_code == 3
    assert damage.hint in str(info.value)
    assert handled == [], "a job on a damaged store must not start afresh"
    assert digest(evidence) == before


@pytest.mark.parametrize("damage", DAMAGES, ids=[d.name for d in DAMAGES])
def test_cli_status_on_a_damaged_store_exits_3(tmp_path: Path, damage: Damage) -> None:
    url, evidence = damage.make(tmp_path)
    before = digest(evidence)
    proc = subprocess.run(
        [sys.executable, "-m", "midway", "status", "--store", url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.startswith("midway: error: "), proc.stderr
    assert damage.hint in proc.stderr
    assert "Traceback" not in proc.stderr
    assert digest(evidence) == before


@pytest.mark.parametrize("kind", ["sqlite", "file"])
def test_read_only_store_folder_is_unavailable(tmp_path: Path, kind: str) -> None:
    if os.geteuid() == 0:
        pytest.skip("running as root: chmod does not stop root from writing")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    url = f"sqlite:///{folder / 'state.db'}" if kind == "sqlite" else f"file://{folder / 's'}"
    try:
        with pytest.raises(midway.StoreUnavailable) as info:
            _read_everything(url)
        assert info.value.exit_code == 3
        assert "permission" in str(info.value).lower() or "writable" in str(info.value)
    finally:
        folder.chmod(0o700)


def test_file_store_gives_up_on_a_lock_held_too_long(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A runner paused inside a write (SIGSTOP) holds the job's flock: others must fail with
    a clear error after the timeout, not hang forever."""
    import fcntl

    from midway.stores import fileleases

    monkeypatch.setattr(fileleases, "LOCK_TIMEOUT", 0.2)
    url = f"file://{tmp_path / 'store'}"
    job = midway.Job("locked", store=url, quiet=True)
    job.run(range(3), lambda item, ctx: None)  # creates the job's folder and lock file
    lock = tmp_path / "store" / "jobs" / "locked" / "lock"
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another open file description: a second process
        started = time.monotonic()
        with pytest.raises(midway.StoreUnavailable, match="stayed locked"):
            job.run(range(3), lambda item, ctx: None)
        assert time.monotonic() - started < 5
    finally:
        os.close(fd)
    assert job.run(range(3), lambda item, ctx: None).status == "completed"


def test_sqlite_store_migrates_a_version_1_store(tmp_path: Path) -> None:
    """A store written by schema 1 is upgraded in place, its data kept."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE midway_schema (version INTEGER NOT NULL)")
    version, statements = sqlfiles.migrations("sqlite")[0]
    assert version == 1
    for statement in statements:
        conn.execute(statement)
    conn.execute("INSERT INTO midway_schema (version) VALUES (1)")
    conn.execute(
        "INSERT INTO midway_runs (run_id, job, status, host, pid, started_at, start_processed) "
        "VALUES ('r1', 'old-job', 'completed', 'h', 1, 1.0, 0)"
    )
    conn.close()

    store = open_store(f"sqlite:///{path}")
    try:
        runs = store.list_runs("old-job")
    finally:
        store.close()
    assert [run.run_id for run in runs] == ["r1"]
    assert runs[0].command is None
    conn = sqlite3.connect(path)
    try:
        versions = [row[0] for row in conn.execute("SELECT version FROM midway_schema")]
    finally:
        conn.close()
    assert versions == [v for v, _ in sqlfiles.migrations("sqlite")]
    assert versions[-1] >= 3
