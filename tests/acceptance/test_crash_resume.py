"""Promises 1, 2, 3 and 8, checked by SIGKILLing a real job process many times.

Each test runs the job script of ``tests/support/crashjob.py`` in a subprocess, kills it with
SIGKILL at random moments (the seed is printed and named in every assertion message), reads
the checkpoint each kill left behind, restarts, and at the end checks item by item:

- promise 1 (atomic checkpoints): after every kill the checkpoint loads, its version never
  goes back, and its state is exactly the fold of the items before its position;
- promise 2 (nothing lost): every key of the input was handled, counters say N of N;
- promise 3 (bounded rework): each kill costs at most ``every`` re-handled items;
- promise 8 (clean finish): no checkpoint remains, the summary says completed, and the next
  run starts from the beginning.
"""

from __future__ import annotations

import csv
import math
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.crashjob import (
    CrashJob,
    KillReport,
    Spec,
    clean_state,
    pick_seed,
    reap_runners,
    store_write_lock,
    wait_until_blocked,
)


@pytest.fixture(autouse=True)
def _no_stray_runners() -> Iterator[None]:
    """A failed test must not leave its job processes running."""
    yield
    reap_runners()


def rework_bound(every: int, pause: float, max_lag: float = 0.05) -> int:
    """How many items one kill may cost (README, "Bounded rework"): one interval, plus up to
    ``max_lag`` seconds' worth of items handled while the store was writing, plus the slice
    in hand when the engine looked (slices last at most ``max_lag / 2``), plus the item in
    hand. ``pause`` is the handler's time per item."""
    per_lag = math.ceil(max_lag / pause) if pause else 0
    return every + per_lag + math.ceil(per_lag / 2) + 1


def check_kill_report(
    report: KillReport,
    job: CrashJob,
    source_keys: list[str],
    *,
    every: int | None,
    min_kills: int,
    pause: float = 0.0,
    bound: int | None = None,
) -> list[int]:
    """Check every run of ``report`` against the input's keys; return the rework per kill.

    ``bound``: the items one kill may cost (default :func:`rework_bound` of ``every`` and
    the handler's ``pause`` per item)."""
    msg = report.describe()
    if bound is None and every is not None:
        bound = rework_bound(every, pause)
    n = len(source_keys)
    assert report.kills >= min_kills, f"only {report.kills} kills landed\n{msg}"

    reworks: list[int] = []
    last_version = 0
    for outcome in report.outcomes:
        start = outcome.processed_before
        where = f"run #{outcome.index} (pid {outcome.pid})\n{msg}"
        # A run handles the input in order, starting exactly where the checkpoint says.
        expected = source_keys[start : start + len(outcome.keys)]
        assert outcome.keys == expected, f"{where}: did not continue at item {start}"
        if start and (outcome.keys or not outcome.killed):  # it got past its start-up
            assert "RESUMING job" in outcome.stderr, f"{where}: resumed without saying so"
            assert f"{start:,} items done" in outcome.stderr, f"{where}: resume point not named"
        if not outcome.killed:
            continue
        cp = outcome.checkpoint_after  # read with open_store: a torn write would raise here
        if cp is None:
            assert last_version == 0, f"{where}: the checkpoint vanished after a kill"
            processed = 0
        else:
            processed = cp.counters.processed
            assert cp.version >= last_version, f"{where}: checkpoint version went back"
            if processed > start:
                assert cp.version > last_version, f"{where}: progress without a new version"
            last_version = cp.version
            assert start <= processed <= start + len(outcome.keys), (
                f"{where}: checkpoint at {processed} is outside what the run handled"
            )
            assert cp.counters.succeeded == processed, f"{where}: {cp.counters}"
            assert cp.state == clean_state(int(k) for k in source_keys[:processed]), (
                f"{where}: state {cp.state} does not match the position {processed}"
            )
            if job.spec.source == "csv":
                assert isinstance(cp.position, dict), f"{where}: position {cp.position!r}"
                assert cp.position["record"] == processed, f"{where}: position {cp.position!r}"
            else:
                assert cp.position == processed, f"{where}: position {cp.position!r}"
        rework = start + len(outcome.keys) - processed
        if bound is not None:
            assert rework <= bound, f"{where}: {rework} items to redo, every={every}"
        reworks.append(rework)

    # Promise 2: nothing lost, and the final counters and state are a clean run's.
    counts = Counter(report.keys)
    missing = [k for k in source_keys if k not in counts]
    assert not missing, f"{len(missing)} keys never handled, e.g. {missing[:5]}\n{msg}"
    assert set(counts) == set(source_keys), f"keys outside the input were logged\n{msg}"
    result = report.result
    assert result is not None, f"the last run printed no result\n{msg}"
    assert result["status"] == "completed", msg
    assert result["counters"] == {
        "succeeded": n,
        "failed": 0,
        "skipped": 0,
        "in_doubt": 0,
        "processed": n,
    }, msg
    assert result["state"] == clean_state(int(k) for k in source_keys), msg
    final = report.final
    if final.processed_before:
        resumed = result["resumed_from"]
        assert resumed is not None, msg
        assert resumed["processed"] == final.processed_before, msg
        assert resumed["version"] == final.checkpoint_before.version, msg  # type: ignore[union-attr]

    # Promise 3: the duplicates are exactly the rework the kills caused, and bounded.
    duplicates = len(report.keys) - n
    assert duplicates == sum(reworks), f"{duplicates} duplicates, reworks {reworks}\n{msg}"
    if bound is not None:
        assert duplicates <= report.kills * bound, msg
    return reworks


def check_clean_finish(job: CrashJob, report: KillReport, **fast: Any) -> None:
    """Promise 8: no checkpoint left, the summary says completed, the next run is fresh."""
    msg = report.describe()
    assert job.read_checkpoint() is None, f"a checkpoint outlived the completed job\n{msg}"
    record = job.job_record()
    assert record is not None, msg
    assert record.status == "completed", f"{record.status}\n{msg}"
    assert record.summary is not None, msg
    assert record.summary["status"] == "completed", msg
    again = job.run(**fast)
    assert again.returncode == 0, again.stderr
    assert "from the beginning" in again.stderr, again.stderr
    assert "RESUMING" not in again.stderr, again.stderr
    result = again.result
    assert result is not None, again.stderr
    assert result["resumed_from"] is None, result
    assert result["processed_this_run"] == job.total, result


def test_sequence_survives_many_kills(store_url: str, tmp_path: Path) -> None:
    seed = pick_seed()
    n, every = 1500, 40
    job = CrashJob(tmp_path / "job", Spec(store=store_url, n=n, every=every, pause=0.001))
    report = job.kill_loop(seed=seed, kills=12)
    source_keys = [str(i) for i in range(n)]
    reworks = check_kill_report(report, job, source_keys, every=every, min_kills=10, pause=0.001)
    print(f"seed={seed} kills={report.kills} reworks={reworks}")
    check_clean_finish(job, report, pause=0)


def test_csv_survives_kills_and_handles_each_geonameid(
    store_url: str, tmp_path: Path, world_cities: Path
) -> None:
    with open(world_cities, newline="", encoding="utf-8") as f:
        source_keys = [row["geonameid"] for row in csv.DictReader(f)]
    assert len(source_keys) == len(set(source_keys)), "geonameid should be unique"
    seed = pick_seed()
    every = 500
    spec = Spec(
        store=store_url,
        source="csv",
        csv_path=str(world_cities),
        key="geonameid",
        every=every,
        pause=0.001,
        pause_every=20,
    )
    job = CrashJob(tmp_path / "job", spec, total=len(source_keys))
    report = job.kill_loop(seed=seed, kills=6)
    # One pause per 20 rows: most rows cost only their parsing, so max_lag covers many.
    check_kill_report(report, job, source_keys, every=every, min_kills=5, pause=0.001 / 20)
    assert set(report.keys) == set(source_keys), report.describe()
    # The resume line names the record it continues at.
    for outcome in report.outcomes:
        if outcome.processed_before and (outcome.keys or not outcome.killed):
            where = f"continuing at record {outcome.processed_before + 1:,} (byte "
            assert where in outcome.stderr, f"{outcome.stderr}\n{report.describe()}"
    check_clean_finish(job, report, pause=0)


def test_time_based_checkpoints_resume_without_loss(store_url: str, tmp_path: Path) -> None:
    seed = pick_seed()
    n = 1000
    spec = Spec(store=store_url, n=n, every=None, every_seconds=0.05, pause=0.001)
    job = CrashJob(tmp_path / "job", spec)
    report = job.kill_loop(seed=seed, kills=8)
    check_kill_report(report, job, [str(i) for i in range(n)], every=None, min_kills=6)
    saved = [o for o in report.outcomes if o.killed and o.processed_after > o.processed_before]
    assert saved, f"no run saved progress by time before its kill\n{report.describe()}"
    assert job.read_checkpoint() is None, report.describe()


def test_every_item_checkpoint_redoes_at_most_the_item_in_hand(
    store_url: str, tmp_path: Path
) -> None:
    """``every=1`` is per-item durability: a kill re-handles at most the item in hand."""
    seed = pick_seed()
    n, every = 300, 1
    job = CrashJob(tmp_path / "job", Spec(store=store_url, n=n, every=every, pause=0.002))
    report = job.kill_loop(seed=seed, kills=5)
    # Each item is committed before the next starts: the bound is exact, even with a writer.
    keys = [str(i) for i in range(n)]
    check_kill_report(report, job, keys, every=every, min_kills=4, bound=every)


def test_a_slow_commit_does_not_stretch_the_rework_bound(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Promise 3 when the store is slow to commit: the engine must not run far ahead.

    The test holds the store's write lock for half a second (a busy disk), then SIGKILLs
    the runner. With group commit the loop may run past the checkpoint being written by
    ``max_lag`` seconds' worth of items, then it must wait for the store; a runner that ran
    on would cost everything it handled in that half second (~250 items).
    """
    n, every = 1000, 20
    job = CrashJob(tmp_path / "job", Spec(store=store_url, n=n, every=every, pause=0.002))
    if store_url.startswith("file:"):
        # no lock to hold against the file store's runner: its seventh rename hangs instead,
        # the second checkpoint's (five renames start a run on a new store)
        monkeypatch.setenv("MIDWAY_FAULTS", "file.before_rename@7:stall")
        runner = job.start()
        runner.wait_for_keys(1)
        logged = wait_until_blocked(runner)
        runner.kill(f"after {logged} keys, its commit stalled")
    else:
        runner = job.start()
        runner.wait_for_keys(every + 10)  # the first checkpoint is behind it
        with store_write_lock(store_url, job.key):
            time.sleep(0.5)  # ~250 items' worth of time
            runner.kill("while the store was locked")
            runner.proc.wait(30)  # dead before the lock goes
    killed = runner.wait()
    assert killed.killed
    saved = job.read_checkpoint()
    done = saved.counters.processed if saved is not None else 0
    rework = len(killed.keys) - done
    bound = rework_bound(every, pause=0.002)
    assert rework <= bound, f"{rework} items handled past the last committed checkpoint ({done})"
