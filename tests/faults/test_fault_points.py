"""Kills at the worst moments, through the injection points of ``midway.faults``.

A run armed with ``MIDWAY_FAULTS=point@N`` kills itself with SIGKILL the Nth time it gets
there: inside the checkpoint's transaction, right after its commit, before the file store's
rename, between a handler's side effect and its record, right after a lease was taken,
half-way through a schema migration, just before a completion commits. Each job is killed at
each point in turn, then run to its end, and checked as in ``test_random_kills.py``; then
each point's own promise is checked:

- ``item.after_handler``, at-most-once: the item is in doubt, sent once, never handled again;
  exactly-once: its row went with the progress, and is there exactly once in the end;
- ``lease.after_acquire``: the next run takes the dead runner's lease over at once;
- ``complete.before_commit``: the next run completes at once, redoing at most one interval;
- ``migrate.between``: the half-done migration rolls back; the next open migrates cleanly.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from faults import summary
from faults.harness import FaultJob, Report, Run, Setup, check
from faults.stores import KINDS, kind_of
from midway._model.ledger import IN_DOUBT
from midway.stores import sqlfiles

LEASE_TTL = 30.0  # a takeover that waited for the lease to expire would show


@dataclass(frozen=True)
class Scale:
    rounds: int
    per_point: int  # kills at each point per round


SHORT = Scale(rounds=1, per_point=1)
LONG = Scale(rounds=3, per_point=6)
SCALES = [pytest.param(SHORT, id="short"), pytest.param(LONG, id="long", marks=pytest.mark.slow)]

# How far into a run each point is armed (the Nth hit, N drawn from this range): small
# enough that the job is still running then, large enough to reach past start-up.
REACH = {
    "lease.after_acquire": (1, 1),
    "checkpoint.before_commit": (1, 4),
    "checkpoint.after_commit": (1, 4),
    "file.before_rename": (1, 12),
    "item.after_handler": (1, 40),
    "complete.before_commit": (1, 1),
}
# The short version arms fewer points per job; the long one all that apply.
SHORT_POINTS = {
    ("sqlite", "at-least-once"): ("lease.after_acquire", "checkpoint.before_commit"),
    ("sqlite", "at-most-once"): ("item.after_handler", "checkpoint.after_commit"),
    ("sqlite", "exactly-once"): ("item.after_handler", "checkpoint.before_commit"),
    ("file", "at-least-once"): ("lease.after_acquire", "file.before_rename"),
    ("file", "at-most-once"): ("item.after_handler",),
}


def points_for(store: str, guarantee: str, short: bool) -> list[str]:
    """The points a job of this kind reaches, in the order it is killed at them (the
    completion last: after it the job is done)."""
    if short:
        chosen = list(SHORT_POINTS[(store, guarantee)])
    else:
        chosen = ["lease.after_acquire", *KINDS[store].commit_points]
        if guarantee != "at-least-once":  # the plain at-least-once path has no such point
            chosen.append("item.after_handler")
    if store == "sqlite" and (not short or guarantee == "at-least-once"):
        chosen.append("complete.before_commit")
    return chosen


def plan(points: list[str], per_point: int) -> list[str]:
    """Each point ``per_point`` times, cycled; the completion point once, last."""
    middle = [p for p in points if p != "complete.before_commit"]
    order = [p for _ in range(per_point) for p in middle]
    return order + [p for p in points if p == "complete.before_commit"]


def arm(order: list[str]) -> Callable[[random.Random, int], str]:
    """Arm run i at ``order[i]``, the Nth hit (N drawn from ``REACH``); later runs not."""

    def faults(rng: random.Random, index: int) -> str:
        if index >= len(order):
            return ""
        point = order[index]
        low, high = REACH[point]
        return f"{point}@{rng.randint(low, high)}"

    return faults


def setup_for(guarantee: str, store_url: str, short: bool) -> Setup:
    setup = Setup(store=store_url, guarantee=guarantee, n=600 if short else 3000)
    setup.lease_ttl = LEASE_TTL
    if guarantee == "at-most-once":
        setup.fate, setup.every, setup.pause = "send", 1, 0.0
        setup.n = 200 if short else 1500
    elif guarantee == "exactly-once":
        setup.fate = "insert"
    return setup


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("guarantee", ["at-least-once", "at-most-once", "exactly-once"])
def test_kills_at_the_worst_moments(
    guarantee: str, scale: Scale, store_url: str, seed: int, tmp_path: Path
) -> None:
    kind = kind_of(store_url)
    if guarantee == "exactly-once" and not kind.transactions:
        pytest.skip(f"the {kind.name} store has no transactions: it refuses exactly-once")
    short = scale is SHORT
    points = points_for(kind.name, guarantee, short)
    for round_ in range(scale.rounds):
        folder = tmp_path / f"round{round_}"
        url = store_url.replace(str(tmp_path), str(folder))
        job = FaultJob(folder, setup_for(guarantee, url, short))
        order = plan(points, scale.per_point)
        report = job.kill_loop(
            seed=seed + round_, kills=0, faults=arm(order), max_runs=len(order) + 3
        )
        tally = check(report, job, f"fault points, {guarantee}, {kind.name}")
        tally.problems += point_promises(report, job)
        fired = [run.faults for run in report.runs if run.killed]
        summary.record(tally)
        assert tally.ok, "\n".join([*tally.problems, report.describe()])
        # Most armed runs must have died where armed (a run may end before its Nth hit).
        assert len(fired) >= len(order) // 2, report.describe()


def point_promises(report: Report, job: FaultJob) -> list[str]:
    """What each point promises beyond the general checks."""
    problems = []
    setup = report.setup
    final = report.last.after
    runs = report.runs
    for run, after in zip(runs, [*runs[1:], None], strict=True):
        if not run.killed:
            continue
        point = run.faults.partition("@")[0]
        if point == "item.after_handler" and run.calls:
            key = run.calls[-1][0]  # its handler returned; nothing recorded it
            problems += after_handler_promise(setup.guarantee, key, job, final.ledger)
        if point == "lease.after_acquire" and after is not None:
            problems += takeover_promise(after)
        if point == "complete.before_commit" and after is not None:
            bound = setup.rework_bound()
            if after.returncode != 0 or len(after.calls) > bound:
                problems.append(
                    f"after a kill inside the completion, run #{after.index} handled "
                    f"{len(after.calls)} items (bound {bound}) and exited {after.returncode}"
                )
    return problems


def after_handler_promise(
    guarantee: str, key: int, job: FaultJob, ledger: dict[int, str]
) -> list[str]:
    if guarantee == "at-most-once":
        sent = job.sent_keys()[key]
        if ledger.get(key) != IN_DOUBT or sent != 1:
            return [f"item {key}, killed after its handler: {ledger.get(key)}, sent {sent}x"]
    elif guarantee == "exactly-once":
        rows = job.rows()[key]
        if rows != 1:
            return [f"item {key}, killed after its handler: {rows} rows in the end"]
    return []


def takeover_promise(after: Run) -> list[str]:
    """The run after a kill right after the lease was taken: it takes the dead runner's
    lease over at once (same host, process gone), not after ``lease_ttl``."""
    if after.returncode not in (0, -9) or after.seconds > LEASE_TTL / 2:
        return [
            f"after a kill right after the lease was taken, run #{after.index} exited "
            f"{after.returncode} after {after.seconds:.1f} s (lease_ttl {LEASE_TTL} s): "
            f"{after.stderr[-300:]}"
        ]
    return []


# -- migrations ---------------------------------------------------------------------------


def version_1_store(path: Path) -> None:
    """A store as schema 1 wrote it, holding one old run (see tests/test_stores.py)."""
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


def schema_of(path: Path) -> tuple[list[int], list[str]]:
    conn = sqlite3.connect(path)
    try:
        versions = [row[0] for row in conn.execute("SELECT version FROM midway_schema")]
        runs = [row[0] for row in conn.execute("SELECT run_id FROM midway_runs ORDER BY run_id")]
    finally:
        conn.close()
    return versions, runs


MIGRATION_STATEMENTS = sum(len(s) for v, s in sqlfiles.migrations("sqlite") if v > 1)


@pytest.mark.parametrize(
    "kills_at",
    [
        pytest.param(None, id="short"),
        pytest.param(list(range(1, MIGRATION_STATEMENTS + 1)), id="long", marks=pytest.mark.slow),
    ],
)
def test_a_migration_killed_half_way_rolls_back(
    kills_at: list[int] | None, seed: int, tmp_path: Path
) -> None:
    rng = random.Random(seed)
    todo = kills_at or [rng.randint(1, MIGRATION_STATEMENTS)]
    for n in todo:
        folder = tmp_path / f"kill-at-{n}"
        folder.mkdir()
        db = folder / "state.db"
        version_1_store(db)
        job = FaultJob(folder, Setup(store=f"sqlite:///{db}", n=300, pause=0.0))
        job.peek = False  # opening the store to look would migrate it
        # Killed twice in the middle (the second time further on), then left alone.
        first = job.run(faults=f"migrate.between@{n}")
        second = job.run(faults=f"migrate.between@{rng.randint(1, MIGRATION_STATEMENTS)}")
        why = f"seed {seed}, kill at statement {n}\n{first.describe()}\n{second.describe()}"
        assert first.killed, why
        assert second.killed, why
        assert schema_of(db) == ([1], ["r1"]), why  # the half-done migration rolled back
        job.peek = True
        last = job.run()
        why += f"\n{last.describe()}\n{last.stderr[-1000:]}"
        assert last.returncode == 0, why
        versions, runs = schema_of(db)
        assert versions == [v for v, _ in sqlfiles.migrations("sqlite")], why
        assert "r1" in runs, why  # the old data survived
        report = Report(seed, job.setup, [first, second, last])
        tally = check(report, job, "fault points, migration killed half-way, sqlite")
        summary.record(tally)
        assert tally.ok, "\n".join([*tally.problems, why])
