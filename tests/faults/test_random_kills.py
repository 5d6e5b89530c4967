"""SIGKILL at random moments, in every guarantee, on every store, with and without workers.

After every kill the store must hold a whole checkpoint whose state, counters, ledger (and,
for exactly-once, the rows the handler wrote) are exactly those of the items before its
position; each run must resume exactly there; and in the end every item is accounted for:

- at-least-once: every item handled, the state counts each once, a kill redoes at most
  one interval plus ``max_lag`` (with workers: one interval plus the window);
- at-most-once: no item's handler runs twice, no item is sent twice, every item not sent
  is in doubt, and at most one item is in doubt per kill;
- exactly-once: each item's row is in the table exactly once.

The seed is printed and named in every failure; ``MIDWAY_TEST_SEED`` replays a run.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from faults import summary
from faults.harness import HOLD_AHEAD, FaultJob, Proc, Report, Setup, Snapshot, check, pending
from faults.stores import kind_of


@dataclass(frozen=True)
class Scale:
    rounds: int  # independent jobs, each killed ``kills`` times
    kills: int
    n: int  # items (at-most-once: a commit each, so a quarter as many)


SHORT = Scale(rounds=1, kills=2, n=600)
LONG = Scale(rounds=4, kills=12, n=4000)
SCALES = [pytest.param(SHORT, id="short"), pytest.param(LONG, id="long", marks=pytest.mark.slow)]
MODES = [
    pytest.param("at-least-once", 1, id="at-least-once"),
    pytest.param("at-least-once", 16, id="at-least-once-16-threads"),
    pytest.param("at-most-once", 1, id="at-most-once"),
    pytest.param("exactly-once", 1, id="exactly-once"),
]


def setup_for(guarantee: str, workers: int, store_url: str, scale: Scale) -> Setup:
    setup = Setup(store=store_url, n=scale.n, guarantee=guarantee, workers=workers)
    if guarantee == "at-most-once":  # a commit per item: slower, so fewer items
        setup.fate, setup.every, setup.n, setup.pause = "send", 1, scale.n // 4, 0.0
    elif guarantee == "exactly-once":
        setup.fate = "insert"
    if workers > 1:  # items overlap, finish out of order, and hold the watermark back
        setup.pause, setup.n = 0.02, setup.n * 2 // 3
    return setup


def round_url(store_url: str, round_: int) -> str:
    """The store of one round: the fixture's URL, in a folder of its own."""
    base = store_url.rstrip("/")
    head, _, name = base.rpartition("/")
    return f"{head}/round{round_}/{name}"


def kill_and_check(scenario: str, setup: Setup, folder: Path, seed: int, scale: Scale) -> Report:
    job = FaultJob(folder, setup)
    report = job.kill_loop(seed=seed, kills=scale.kills)
    tally = check(report, job, scenario)
    summary.record(tally)
    assert tally.ok, "\n".join([*tally.problems, report.describe()])
    assert report.kills >= 1, report.describe()
    return report


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize(("guarantee", "workers"), MODES)
def test_random_kills_lose_and_duplicate_nothing(
    guarantee: str, workers: int, scale: Scale, store_url: str, seed: int, tmp_path: Path
) -> None:
    kind = kind_of(store_url)
    if guarantee == "exactly-once" and not kind.transactions:
        pytest.skip(f"the {kind.name} store has no transactions: it refuses exactly-once")
    threads = f", {workers} threads" if workers > 1 else ""
    scenario = f"random SIGKILL, {guarantee}, {kind.name}{threads}"
    for round_ in range(scale.rounds):
        folder = tmp_path / f"round{round_}"
        setup = setup_for(guarantee, workers, round_url(store_url, round_), scale)
        kill_and_check(scenario, setup, folder, seed + round_, scale)


LONG_EXTRAS = [
    pytest.param("durable=False", {"durable": False}, id="not-durable"),
    pytest.param("every=1", {"every": 1, "pause": 0.0, "n": 1500}, id="every-1"),
    pytest.param("every_seconds=0.05", {"every": None, "every_seconds": 0.05}, id="every-seconds"),
    pytest.param(
        "4 processes", {"workers": 4, "executor": "process", "pause": 0.002}, id="process-pool"
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize(("what", "changes"), LONG_EXTRAS)
def test_random_kills_other_settings(
    what: str, changes: dict[str, object], store_url: str, seed: int, tmp_path: Path
) -> None:
    scenario = f"random SIGKILL, at-least-once, {kind_of(store_url).name}, {what}"
    for round_ in range(LONG.rounds):
        folder = tmp_path / f"round{round_}"
        setup = Setup(store=round_url(store_url, round_), n=LONG.n)
        for name, value in changes.items():
            setattr(setup, name, value)
        kill_and_check(scenario, setup, folder, seed + round_, LONG)


RACES = [
    pytest.param(1, id="short"),
    pytest.param(24, id="long", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("races", RACES)
def test_two_runners_started_at_once(races: int, store_url: str, seed: int, tmp_path: Path) -> None:
    """Promise 6 under kills: two runners of the same at-most-once job start together,
    again and again; the one that got the job is killed after a random number of items.
    Exactly one may handle items at a time, so no item is ever sent twice; the other is
    refused (exit 3, LeaseHeld) or, if it came late, takes the dead runner's job over.

    Both hold at an item past the kill point until the one that got the job is dead (see
    ``faultjob.py``): it cannot finish the job before its kill, however slowly this process
    is scheduled; the race for the job itself is left to the two processes."""
    rng = random.Random(seed)
    setup = Setup(store=store_url, guarantee="at-most-once", fate="send", every=1, pause=0.0)
    setup.n = 150 * (races + 1)
    job = FaultJob(tmp_path / "job", setup)
    report = Report(seed, setup)
    together = Snapshot(error="started together with another run: no single 'before'")
    patient = 0
    for race in range(races):
        due = pending(job.snapshot(), setup.n)
        if len(due) < setup.n // 10:
            break  # the end runs alone: a run that starts after the completion starts afresh
        calls = rng.randint(1, min(len(due) // 2, setup.n // races))
        gate = tmp_path / f"race{race}.hold"
        gate.touch()
        hold = {"hold_at": due[min(len(due) - 1, calls - 1 + HOLD_AHEAD)], "hold_file": str(gate)}
        procs = [job.start(**hold), job.start(**hold)]
        owner = wait_for_owner(procs)
        if owner is not None and (race == 0 or rng.random() < 0.5):
            # Patient: the kill waits until the other runner has tried (and been refused),
            # or else it may land while the other is still starting, which then takes over.
            patient += 1
            for proc in procs:
                if proc is not owner:
                    proc.wait(60)
        if owner is not None:
            owner.wait_for_calls(calls, timeout=60)
            time.sleep(rng.uniform(0, 0.01))
            owner.kill()
            owner.wait(60)
        gate.unlink()  # the other, if it took the job over, goes past the held item
        for proc in procs:
            run = job.finish(proc, together, "", "started together", timeout=90)
            if run.returncode == 3 and "LeaseHeld" in run.stderr:
                run.expected_exit = 3
            report.runs.append(run)
        if any(run.returncode == 0 for run in report.runs[-2:]):
            break
    if not report.last.after.completed:
        report.runs.append(job.run())
    tally = check(report, job, f"two runners at once, at-most-once, {kind_of(store_url).name}")
    summary.record(tally)
    refused = sum(run.expected_exit == 3 for run in report.runs)
    assert tally.ok, "\n".join([*tally.problems, report.describe()])
    assert refused >= min(patient, 1), report.describe()  # the race did happen


def wait_for_owner(procs: list[Proc], timeout: float = 60.0) -> Proc | None:
    """The process that got the job: the first to log a handler call (None: neither)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.calls_logged():
                return proc
        if not any(proc.alive() for proc in procs):
            return None
        time.sleep(0.002)
    return None
