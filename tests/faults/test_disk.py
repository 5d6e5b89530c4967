"""A disk that fills up, turns read-only, or hands back damaged files.

Each case must end in a clear refusal: a ``MidwayError`` whose exit code is 3, a message
and no traceback, nothing half-written; and once the disk is fixed (space freed, mounted
read-write again, the file restored from a copy) the job resumes from its last good
checkpoint and completes with every item accounted for (the checks of ``harness.check``).

Most runs here happen in the test's own process (``FaultJob.run_here``): no kill is needed,
and an ENOSPC is injected by arming ``midway.faults`` as ``MIDWAY_FAULTS`` would. The real
full disk and the read-only disk are a small tmpfs, mounted for the test; where mounting is
not permitted (not root, no CAP_SYS_ADMIN) those tests are skipped and say why.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from faults import summary
from faults.harness import FaultJob, Report, Run, Setup, check
from faults.stores import kind_of

GUARANTEES = ["at-least-once", "at-most-once", "exactly-once"]
REFUSED = 3


def job_for(
    folder: Path, store_url: str, guarantee: str = "at-least-once", n: int = 400
) -> FaultJob:
    setup = Setup(store=store_url, n=n, guarantee=guarantee, every=20, pause=0.0005)
    if guarantee == "at-most-once":  # a commit per item: fewer items
        setup.fate, setup.every, setup.n = "send", 1, n // 2
    elif guarantee == "exactly-once":
        setup.fate = "insert"
    return FaultJob(folder, setup)


def refused_clearly(run: Run, *names: str) -> list[str]:
    """Exit 3, a line from midway saying what happened, no traceback."""
    problems = []
    said = [line for line in run.stderr.splitlines() if line.startswith("faultjob: ")]
    if run.returncode != REFUSED:
        problems.append(f"run #{run.index} exited {run.returncode}, not {REFUSED}")
    if not said:
        problems.append(f"run #{run.index} gave no MidwayError: {run.stderr[-800:]}")
    elif names and not any(name in said[-1] for name in names):
        problems.append(f"run #{run.index}'s error does not name {names}: {said[-1]}")
    elif "release the lease" in said[-1]:  # a later failure hid the one that ended the run
        problems.append(f"run #{run.index} reports its clean-up, not its error: {said[-1]}")
    if "Traceback" in run.stderr:
        problems.append(f"run #{run.index} printed a traceback: {run.stderr[-800:]}")
    return problems


def finish_and_check(job: FaultJob, report: Report, scenario: str, problems: list[str]) -> None:
    """Run the job to its end (unless it is there), then check all it went through."""
    if not report.runs or not report.last.after.completed:
        report.runs.append(job.run_here())
    tally = check(report, job, scenario)
    tally.problems[:0] = problems
    summary.record(tally)
    assert tally.ok, "\n".join([*tally.problems, report.describe()])


# -- ENOSPC, injected at the commit ------------------------------------------------------


@pytest.mark.parametrize(
    "tries",
    [pytest.param(1, id="short"), pytest.param(12, id="long", marks=pytest.mark.slow)],
)
@pytest.mark.parametrize("guarantee", GUARANTEES)
def test_enospc_at_the_commit_refuses_and_resumes(
    guarantee: str, tries: int, store_url: str, seed: int, tmp_path: Path
) -> None:
    kind = kind_of(store_url)
    if guarantee == "exactly-once" and not kind.transactions:
        pytest.skip(f"the {kind.name} store has no transactions: it refuses exactly-once")
    rng = random.Random(seed)
    point = kind.commit_points[0]  # checkpoint.before_commit, file.before_rename
    for attempt in range(tries):
        folder = tmp_path / f"try{attempt}"
        url = store_url.replace(str(tmp_path), str(folder))
        job = job_for(folder, url, guarantee)
        report = Report(seed, job.setup)
        problems: list[str] = []
        # Full twice at different moments, then room again.
        for hit in sorted(rng.sample(range(1, 15), 2)):
            run = job.run_here(f"{point}@{hit}:enospc", expect=REFUSED)
            report.runs.append(run)
            if run.returncode == 0:  # it completed before the Nth hit
                run.expected_exit = 0
                break
            problems += refused_clearly(run, "StoreUnavailable")
        finish_and_check(job, report, f"ENOSPC injected, {guarantee}, {kind.name}", problems)


# -- a real full disk, and a read-only one -------------------------------------------------


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs at ``tmp_path / "disk"``, unmounted afterwards."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root: the real full-disk case is not run")
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=8M", "tmpfs", str(disk)],
            check=False,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except FileNotFoundError:
        pytest.skip("no mount(8) here: the real full-disk case is not run")
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here ({done.stderr.strip()})")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False, capture_output=True, timeout=30)


def remount(disk: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(disk)], check=True, timeout=30)


def url_on(store_url: str, tmp_path: Path, disk: Path) -> str:
    return store_url.replace(str(tmp_path), str(disk))


@pytest.mark.parametrize("guarantee", ["at-least-once", "at-most-once"])
def test_a_disk_that_fills_up_mid_run(
    guarantee: str, store_url: str, tmpfs: Path, seed: int, tmp_path: Path
) -> None:
    """The handler fills the store's disk at a random item: the next commit that needs
    more room fails. (SQLite reuses its write-ahead log once it has wrapped around, so a
    store can go on for a while on a full disk, correctly: the item is early enough that
    it has not, with one commit per item.)"""
    kind = kind_of(store_url)
    job = job_for(tmp_path / "job", url_on(store_url, tmp_path, tmpfs), guarantee)
    filler = tmpfs / "filler"
    # At least one checkpoint first (every=20): before it there is nothing the refusal
    # could be asked to keep. (At-most-once writes one per item.)
    first = 10 if guarantee == "at-most-once" else 30
    fill_at = random.Random(seed).randrange(first, 100 if guarantee == "at-most-once" else 300)
    job.peek = False  # a full disk cannot be read either; looked at once space is back
    run = job.run_here(expect=REFUSED, fill_at=fill_at, fill_path=str(filler))
    problems = refused_clearly(run, "StoreUnavailable", "StoreCorrupt")
    filler.unlink(missing_ok=True)
    job.peek = True
    run.after = job.snapshot()
    report = Report(seed, job.setup, [run])
    why = f"seed {seed}, disk full at item {fill_at}"
    assert run.after.checkpoint is not None or run.after.error, why
    finish_and_check(job, report, f"real full disk (tmpfs), {guarantee}, {kind.name}", problems)


def test_a_read_only_store_refuses_and_resumes(
    store_url: str, tmpfs: Path, seed: int, tmp_path: Path
) -> None:
    """Killed mid-run; the disk comes back read-only; then read-write again."""
    kind = kind_of(store_url)
    job = job_for(tmp_path / "job", url_on(store_url, tmp_path, tmpfs), n=600)
    job.setup.pause = 0.0005
    point = "checkpoint.after_commit@3" if kind.name == "sqlite" else "file.before_rename@10"
    killed = job.run(faults=point)
    assert killed.killed, killed.describe()
    saved = killed.after.checkpoint
    remount(tmpfs, "ro")
    try:
        job.peek = False
        refused = job.run_here(expect=REFUSED)
    finally:
        remount(tmpfs, "rw")
        job.peek = True
    problems = refused_clearly(refused, "StoreUnavailable", "StoreCorrupt")
    refused.before, refused.after = killed.after, job.snapshot()
    now = refused.after.checkpoint
    if saved is not None and (now is None or now.version != saved.version):
        problems.append(f"the read-only run changed the checkpoint: {saved} -> {now}")
    report = Report(seed, job.setup, [killed, refused])
    finish_and_check(job, report, f"read-only store, {kind.name}", problems)


# -- damaged files ------------------------------------------------------------------------


def stopped_part_way(job: FaultJob, point: str) -> Run:
    """A run refused part-way by an injected ENOSPC: a checkpoint, the store closed."""
    run = job.run_here(f"{point}:enospc", expect=REFUSED)
    assert run.returncode == REFUSED, run.describe()
    assert run.after.checkpoint is not None, run.describe()
    return run


def damage(path: Path, how: str, rng: random.Random) -> None:
    data = path.read_bytes()
    if how == "truncated to half":
        path.write_bytes(data[: len(data) // 2])
    elif how == "truncated to 100 bytes":
        path.write_bytes(data[:100])
    elif how == "header overwritten":
        path.write_bytes(rng.randbytes(100) + data[100:])
    elif how == "a page overwritten":
        pages = max(2, len(data) // 4096)
        at = 4096 * rng.randrange(1, pages)
        path.write_bytes(data[:at] + rng.randbytes(4096) + data[at + 4096 :])
    elif how == "garbage":
        path.write_bytes(rng.randbytes(max(64, len(data))))
    elif how == "not JSON":
        path.write_text('{"job": "faults", "version": 3, "position": ', encoding="utf-8")
    else:
        raise ValueError(how)


SQLITE_DAMAGE = [
    "truncated to half",
    "truncated to 100 bytes",
    "header overwritten",
    "a page overwritten",
]


@pytest.mark.parametrize("how", SQLITE_DAMAGE)
def test_a_damaged_sqlite_store_is_refused(how: str, seed: int, tmp_path: Path) -> None:
    job = job_for(tmp_path, f"sqlite:///{tmp_path / 'state.db'}")
    part = stopped_part_way(job, "checkpoint.before_commit@6")
    db = job.db_path()
    assert not Path(f"{db}-wal").exists() or Path(f"{db}-wal").stat().st_size == 0
    backup = tmp_path / "backup.db"
    shutil.copyfile(db, backup)
    damage(db, how, random.Random(seed))
    job.peek = False
    hurt = job.run_here(expect=REFUSED)
    job.peek = True
    hurt.before = part.after
    problems: list[str] = []
    runs = [part]
    if hurt.returncode == 0 and hurt.calls and hurt.calls[0][0] == part.after.position:
        hurt.expected_exit = 0  # the damage missed all that midway reads: it resumed right
    else:
        problems += refused_clearly(hurt, "StoreCorrupt", "StoreUnavailable")
        shutil.copyfile(backup, db)
        for leftover in (Path(f"{db}-wal"), Path(f"{db}-shm")):
            leftover.unlink(missing_ok=True)
    hurt.after = job.snapshot()
    runs.append(hurt)
    finish_and_check(job, Report(seed, job.setup, runs), f"sqlite store {how}", problems)


JSON_DAMAGE = [
    ("checkpoint.json", "truncated to half"),
    ("checkpoint.json", "not JSON"),
    ("checkpoint.json", "garbage"),
    ("lease.json", "garbage"),
    ("job.json", "truncated to half"),
    ("midway-store.json", "garbage"),
]


@pytest.mark.parametrize(("name", "how"), JSON_DAMAGE)
def test_a_damaged_json_store_is_refused(name: str, how: str, seed: int, tmp_path: Path) -> None:
    job = job_for(tmp_path, f"file://{tmp_path / 'store'}")
    part = stopped_part_way(job, "file.before_rename@12")
    root = tmp_path / "store"
    path = root / name if name == "midway-store.json" else root / "jobs" / job.key / name
    backup = path.read_bytes()
    damage(path, how, random.Random(seed))
    job.peek = False
    hurt = job.run_here(expect=REFUSED)
    problems = refused_clearly(hurt, "StoreCorrupt")
    if name not in hurt.stderr:
        problems.append(f"the error does not name {name}: {hurt.stderr[-400:]}")
    path.write_bytes(backup)
    job.peek = True
    hurt.before, hurt.after = part.after, job.snapshot()
    report = Report(seed, job.setup, [part, hurt])
    finish_and_check(job, report, f"JSON store, {name} {how}", problems)


@pytest.mark.xfail(
    strict=True,
    reason="a SQLite store truncated to 0 bytes is an empty SQLite database: midway takes it "
    "for a new store and starts the job from the beginning (it says so, but does not refuse)",
)
def test_a_sqlite_store_truncated_to_nothing_is_refused(seed: int, tmp_path: Path) -> None:
    job = job_for(tmp_path, f"sqlite:///{tmp_path / 'state.db'}")
    stopped_part_way(job, "checkpoint.before_commit@6")
    job.db_path().write_bytes(b"")
    job.peek = False
    hurt = job.run_here(expect=REFUSED)
    assert not refused_clearly(hurt, "StoreCorrupt", "StoreUnavailable"), hurt.describe()
