"""``max_lag=0``: a crash redoes at most ``every`` items, on every store, however slow it is.

The README's bound on rework is one interval plus ``max_lag`` seconds' worth of items; with
``max_lag=0`` it is one interval, exactly. The case that tests it is a store slow to commit:
each run handles a random number of items (the seed is printed), then stops at a held item
while this test takes the store's write lock (a busy disk, a slow network filesystem), then
goes on until it must wait for the store, and is SIGKILLed there. Every key each run handled
is logged, so the rework of every kill is counted item by item.

The file store's runner takes no lock that another process could hold against it (a paused
runner must not block the store), so there the commit is stalled from inside: the thread
that commits hangs at a random rename of a checkpoint file (``MIDWAY_FAULTS``), and the run
is SIGKILLed once it waits for that commit.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.crashjob import (
    CrashJob,
    KillReport,
    Spec,
    pick_seed,
    reap_runners,
    store_write_lock,
    wait_until_blocked,
)

from .test_crash_resume import check_kill_report


@pytest.fixture(autouse=True)
def _no_stray_runners() -> Iterator[None]:
    yield
    reap_runners()


def test_max_lag_zero_redoes_at_most_every_items_per_crash(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed = pick_seed()
    print(f"max_lag=0 kill test: seed={seed} (replay with MIDWAY_TEST_SEED={seed})")
    rng = random.Random(seed)
    n, every, kills = 3000, 100, 6
    # Trivial items (no pause): the store's commits are what take time.
    job = CrashJob(tmp_path / "job", Spec(store=store_url, n=n, every=every, max_lag=0, pause=0))
    report = KillReport(seed)
    for index in range(kills):
        before = job.read_checkpoint()
        left = n - (before.counters.processed if before is not None else 0)
        if store_url.startswith("file:"):
            # every checkpoint renames at least one file, and a run a few more as it starts
            # and ends, so the stall comes before the end, mostly past the first checkpoint
            at = 2 + rng.randint(1, max(1, left // every // (kills - index + 1)))
            monkeypatch.setenv("MIDWAY_FAULTS", f"file.before_rename@{at}:stall")
            runner = job.start()
            logged = wait_until_blocked(runner)
            runner.kill(f"{logged} keys, its rename #{at} stalled")
            outcome = runner.wait()
            assert outcome.killed, f"{outcome.describe()}\n{outcome.stderr}"
            report.outcomes.append(outcome)
            continue
        target = rng.randint(1, left // (kills - index + 1))
        gate = tmp_path / f"hold{index}"
        gate.touch()
        runner = job.start(hold_at=target, hold_file=str(gate))
        runner.wait_for_keys(target)  # it waits at its target-th item while the gate exists
        with store_write_lock(store_url, job.key):
            gate.unlink()  # it goes on, and its commits wait for the lock
            logged = wait_until_blocked(runner)
            runner.kill(f"after {target} keys, then {logged - target} more, the store locked")
            runner.proc.wait(30)  # dead before the lock goes
        outcome = runner.wait()
        assert outcome.killed, f"{outcome.describe()}\n{outcome.stderr}"
        report.outcomes.append(outcome)
    monkeypatch.delenv("MIDWAY_FAULTS", raising=False)
    report.outcomes.append(job.run())
    keys = [str(i) for i in range(n)]
    reworks = check_kill_report(report, job, keys, every=every, min_kills=kills, bound=every)
    print(f"seed={seed} reworks={reworks} (bound {every})")
