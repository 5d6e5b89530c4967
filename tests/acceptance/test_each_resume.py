"""``midway each`` as a real process: SIGKILLed at random moments, stopped by signals, resumed.

The command appends ``<record> <its parent's pid>`` to one log (``O_APPEND``: whole lines),
so every line is attributed to the ``midway each`` process that ran it, even a line written
by a command that outlived its killed parent (one that started too late to see its parent
logs pid 1; it ran the record its parent had in hand). From the log and the checkpoint
each kill left behind the tests check, record by record:

- nothing lost: every record of the input was handled, and the job completed;
- each run continued exactly where the checkpoint said, in order;
- bounded rework: a kill costs at most one ``--every`` interval, plus what group commit may
  run ahead (``max_lag``, 50 ms of commands), plus the command in hand;
- graceful stop: SIGINT / SIGTERM let the command in hand finish, exit 130 / 143 and resume
  with no rework; a second signal reaches the command; a command killed along with midway
  is not a failed record, and runs again.

Seeds are printed and named in assertion messages; ``MIDWAY_TEST_SEED`` replays one.
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from midway._model.checkpoint import Checkpoint
from midway._model.identity import make_job_id
from midway.stores import open_store
from support.crashjob import pick_seed

# Logs the record and its midway's pid; then waits while a file hold-<record> exists.
LOG_COMMAND = ["sh", "-c", 'echo "$1 $PPID" >> "$0"; while [ -e "hold-$1" ]; do sleep 0.01; done']
MAX_LAG = 0.05  # the Job default, which `midway each` keeps
MIN_COMMAND_SECONDS = 0.001  # a fork and exec of /bin/sh takes at least this long
ORPHANED = 1  # the parent pid a command sees once its midway is gone


def rework_bound(every: int) -> int:
    """One interval, plus up to ``MAX_LAG`` seconds' worth of commands run while the store
    was writing, plus the slice in hand when the engine looked, plus the command in hand."""
    per_lag = math.ceil(MAX_LAG / MIN_COMMAND_SECONDS)
    return every + per_lag + math.ceil(per_lag / 2) + 1


@dataclass
class Run:
    index: int
    proc: subprocess.Popen[bytes]
    err: Path
    start: int  # records done at the checkpoint it started from
    version: int
    killed: bool = False
    plan: str = ""
    after: Checkpoint | None = None

    def stderr(self) -> str:
        return self.err.read_text(encoding="utf-8", errors="replace")


class EachJob:
    """A ``midway each`` command line over ``records``, started and stopped at will."""

    def __init__(
        self,
        folder: Path,
        store: str,
        records: list[str],
        every: int,
        command: list[str],
        *,
        input_file: Path | None = None,
        options: tuple[str, ...] = (),
    ) -> None:
        """``records``: what the command logs for each record, in order; the lines of the
        input, unless ``input_file`` gives another input."""
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.store = store
        self.records = records
        self.every = every
        self.options = options
        if input_file is None:
            input_file = folder / "records.txt"
            input_file.write_text("".join(r + "\n" for r in records), encoding="utf-8")
        self.input = input_file
        self.log = folder / "out.log"
        self.command = command
        self.key = make_job_id(
            "each-kill", {"command": command, "input": str(self.input.absolute())}
        ).key
        self.runs: list[Run] = []

    def argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "midway",
            "each",
            "each-kill",
            "--input",
            str(self.input),
            "--store",
            self.store,
            "--every",
            str(self.every),
            *self.options,
            "--",
            *self.command,
        ]

    def checkpoint(self) -> Checkpoint | None:
        store = open_store(self.store)
        try:
            return store.load_checkpoint(self.key)
        finally:
            store.close()

    def start(self, *, new_session: bool = False) -> Run:
        cp = self.checkpoint()
        err = self.folder / f"run-{len(self.runs):03d}.err"
        with open(err, "wb") as ferr:
            proc = subprocess.Popen(
                self.argv(),
                cwd=self.folder,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=ferr,
                start_new_session=new_session,
            )
        run = Run(
            len(self.runs),
            proc,
            err,
            cp.counters.processed if cp else 0,
            cp.version if cp else 0,
        )
        self.runs.append(run)
        return run

    def lines(self) -> list[tuple[str, int]]:
        if not self.log.exists():
            return []
        text = self.log.read_text(encoding="utf-8")
        text = text[: text.rfind("\n") + 1]
        return [(rec, int(pid)) for rec, pid in (line.split() for line in text.splitlines())]

    def handled_by(self, pid: int) -> list[str]:
        return [rec for rec, by in self.lines() if by == pid]

    def describe(self, seed: int | None = None) -> str:
        head = f"seed={seed} (replay with MIDWAY_TEST_SEED={seed})\n" if seed is not None else ""
        rows = [
            f"  run #{r.index} pid {r.proc.pid}: from {r.start}, handled "
            f"{len(self.handled_by(r.proc.pid))}, exit {r.proc.returncode}"
            + (f", killed {r.plan}" if r.killed else "")
            + (f", checkpoint after {r.after.counters.processed}" if r.after else "")
            for r in self.runs
        ]
        return head + "\n".join(rows)


@pytest.fixture
def reap() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


HOLD_AHEAD = 40  # a run to be killed holds this many records past its planned kill point


def kill_loop(
    job: EachJob,
    seed: int,
    kills: int,
    reap: list[subprocess.Popen[bytes]],
) -> None:
    """Start, SIGKILL, restart, ``kills`` times; then let it finish.

    Most kills land once the run has handled a random number of records (the kills spread
    over the whole input whatever the machine's speed) plus a few milliseconds; some in
    start-up, a random moment after the start. A run to be killed holds at a record
    ``HOLD_AHEAD`` past its kill point (the command waits while ``hold-<record>`` exists,
    see ``LOG_COMMAND``) until it is killed, so that every planned kill lands, however
    slowly this process is scheduled; then the hold is lifted (the command ends)."""
    print(f"each kill loop: seed={seed} (replay with MIDWAY_TEST_SEED={seed})")
    rng = random.Random(seed)
    n = len(job.records)
    while True:
        assert len(job.runs) < 3 * kills + 5, f"too many runs\n{job.describe(seed)}"
        landed = sum(r.killed for r in job.runs)
        cp = job.checkpoint()
        left = n - (cp.counters.processed if cp else 0)
        hold: Path | None = None
        if landed < kills:
            target = rng.randint(1, max(1, min(left, 2 * left // (kills - landed + 1))))
            hold = job.folder / f"hold-{job.records[min(n - 1, n - left + target + HOLD_AHEAD)]}"
            hold.touch()
        run = job.start()
        reap.append(run.proc)
        if hold is not None:
            if rng.random() < 0.2:  # in start-up: imports, store, lease, the first command
                delay = rng.uniform(0, 0.4)
                run.plan = f"{delay:.3f} s after start"
                time.sleep(delay)
            else:
                # A stall fails the test, a slow machine does not: the minute restarts
                # whenever the run handles another record.
                deadline, seen = time.monotonic() + 60, 0
                while (now_seen := len(job.handled_by(run.proc.pid))) < target:
                    if run.proc.poll() is not None:
                        break
                    if now_seen > seen:
                        deadline, seen = time.monotonic() + 60, now_seen
                    assert time.monotonic() < deadline, job.describe(seed)
                    time.sleep(0.002)
                jitter = rng.uniform(0, 0.02)
                run.plan = f"after {target} records + {jitter * 1000:.0f} ms"
                time.sleep(jitter)
            if run.proc.poll() is None:
                run.proc.send_signal(signal.SIGKILL)
                run.killed = True
        code = run.proc.wait(120)
        if hold is not None:
            hold.unlink()  # the command held there (orphaned by the kill) ends
        run.after = job.checkpoint()
        if run.killed:
            assert code == -signal.SIGKILL, f"{run.stderr()}\n{job.describe(seed)}"
            continue
        assert code == 0, f"run #{run.index} exit {code}\n{run.stderr()}\n{job.describe(seed)}"
        return


def check_runs(job: EachJob, seed: int, bound: int, min_kills: int) -> list[int]:
    """Record by record: order, resume points, rework per kill, nothing lost."""
    msg = job.describe(seed)
    assert sum(r.killed for r in job.runs) >= min_kills, f"too few kills landed\n{msg}"
    pids = [r.proc.pid for r in job.runs]
    assert len(set(pids)) == len(pids), f"a pid was reused: lines cannot be attributed\n{msg}"
    lines = job.lines()
    unknown = {pid for _, pid in lines} - set(pids) - {ORPHANED}
    assert not unknown, f"lines from unknown processes {unknown}: {pids}\n{msg}"
    handled = {run.proc.pid: job.handled_by(run.proc.pid) for run in job.runs}
    # A command started just before its midway was killed may find itself orphaned by the
    # time it reads its parent's pid: it then logs pid 1. It ran the killed run's record
    # in hand, the one that run would have handled next.
    adopted: set[int] = set()
    for rec, pid in lines:
        if pid != ORPHANED:
            continue
        owner = next(
            (
                r
                for r in job.runs
                if r.killed
                and r.index not in adopted
                and r.start + len(handled[r.proc.pid]) < len(job.records)
                and job.records[r.start + len(handled[r.proc.pid])] == rec
            ),
            None,
        )
        assert owner is not None, f"{rec} was logged by an orphan of no killed run\n{msg}"
        adopted.add(owner.index)
        handled[owner.proc.pid].append(rec)
    reworks = []
    version = 0
    for run in job.runs:
        where = f"run #{run.index} (pid {run.proc.pid})\n{msg}"
        done = handled[run.proc.pid]
        assert done == job.records[run.start : run.start + len(done)], (
            f"{where}: did not continue in order at record {run.start + 1}"
        )
        if run.start and done:
            assert "RESUMING job" in run.stderr(), f"{where}: resumed without saying so"
            assert f"{run.start:,} items done" in run.stderr(), where
        if not run.killed:
            continue
        after = run.after.counters.processed if run.after else 0
        if run.after is not None:
            assert run.after.version >= version, f"{where}: the checkpoint went back"
            version = run.after.version
            assert run.after.position["record"] == after, where
        assert run.start <= after <= run.start + len(done), where
        rework = run.start + len(done) - after
        assert rework <= bound, f"{where}: {rework} records to redo (bound {bound})"
        reworks.append(rework)
    counts: dict[str, int] = {}
    for rec, _ in lines:
        counts[rec] = counts.get(rec, 0) + 1
    missing = [r for r in job.records if r not in counts]
    assert not missing, f"{len(missing)} records never handled, e.g. {missing[:5]}\n{msg}"
    assert len(lines) - len(job.records) == sum(reworks), f"duplicates != rework\n{msg}"
    final = job.runs[-1]
    assert "completed" in final.stderr(), final.stderr()
    assert job.checkpoint() is None, f"a checkpoint outlived the completed job\n{msg}"
    return reworks


def test_each_survives_sigkill_at_random_moments(
    store_url: str, tmp_path: Path, reap: list[subprocess.Popen[bytes]]
) -> None:
    seed = pick_seed()
    records = [f"rec-{i:05d}" for i in range(1, 1501)]
    every = 25
    job = EachJob(tmp_path / "job", store_url, records, every, [*LOG_COMMAND, "out.log", "{}"])
    kill_loop(job, seed, kills=6, reap=reap)
    reworks = check_runs(job, seed, rework_bound(every), min_kills=5)
    print(f"seed={seed} kills={len(reworks)} reworks={reworks} bound={rework_bound(every)}")
    shown = subprocess.run(
        [sys.executable, "-m", "midway", "show", job.key, "--json", "--store", store_url],
        capture_output=True,
        text=True,
        check=True,
    )
    detail = json.loads(shown.stdout)
    assert (detail["status"], detail["processed"], detail["succeeded"]) == (
        "completed",
        len(records),
        len(records),
    )


@pytest.mark.slow
def test_each_over_world_cities_survives_sigkill(
    tmp_path: Path, world_cities: Path, reap: list[subprocess.Popen[bytes]]
) -> None:
    """34,032 real CSV rows (quoted commas, non-Latin names), resumed by byte offset."""
    with world_cities.open(newline="", encoding="utf-8") as f:
        ids = [row["geonameid"] for row in csv.DictReader(f)]
    seed = pick_seed()
    every = 200
    job = EachJob(
        tmp_path / "job",
        f"sqlite:///{tmp_path / 'state.db'}",
        ids,
        every,
        [*LOG_COMMAND, "out.log", "{geonameid}"],
        input_file=world_cities,
        options=("--key", "geonameid"),
    )
    kill_loop(job, seed, kills=8, reap=reap)
    reworks = check_runs(job, seed, rework_bound(every), min_kills=6)
    print(f"seed={seed} kills={len(reworks)} reworks={reworks}")


def test_every_record_checkpointed_redoes_at_most_the_command_in_hand(
    tmp_path: Path, reap: list[subprocess.Popen[bytes]]
) -> None:
    seed = pick_seed()
    store = f"sqlite:///{tmp_path / 'state.db'}"
    records = [f"r{i}" for i in range(1, 1001)]
    job = EachJob(tmp_path / "job", store, records, 1, [*LOG_COMMAND, "out.log", "{}"])
    kill_loop(job, seed, kills=4, reap=reap)
    reworks = check_runs(job, seed, bound=1, min_kills=3)
    print(f"seed={seed} reworks={reworks}")


# -- signals ------------------------------------------------------------------------------

SLOW = "r5"
SLOW_COMMAND = [
    "sh",
    "-c",
    'echo "$1 start $$" >> steps.log; '
    '[ "$1" != r5 ] || [ -e fast ] || sleep "$0"; '
    'echo "$1 end" >> steps.log',
]


def steps(job: EachJob) -> list[str]:
    path = job.folder / "steps.log"
    return path.read_text().splitlines() if path.exists() else []


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stop_signal_lets_the_command_in_hand_finish(
    tmp_path: Path, sig: signal.Signals, reap: list[subprocess.Popen[bytes]]
) -> None:
    """Sent to midway's whole process group, as Ctrl-C at a terminal is: the command in
    hand runs in a group of its own, so it finishes; then midway checkpoints and exits."""
    store = f"sqlite:///{tmp_path / 'state.db'}"
    records = [f"r{i}" for i in range(1, 31)]
    job = EachJob(tmp_path / "job", store, records, 100, [*SLOW_COMMAND, "1.0", "{}"])
    run = job.start(new_session=True)
    reap.append(run.proc)
    wait_for(lambda: any(s.startswith("r5 start") for s in steps(job)), "the slow record")
    os.killpg(run.proc.pid, sig)
    code = run.proc.wait(30)
    err = run.stderr()
    assert code == 128 + sig, err
    assert f"{sig.name}: stopping after the current item" in err, err
    assert f"stopped by {sig.name} at record 6" in err, err
    assert "Resume with:" in err, err
    assert steps(job)[-1] == "r5 end", "the command in hand finished"
    cp = job.checkpoint()
    assert cp is not None
    assert cp.counters.processed == 5

    (job.folder / "fast").touch()
    resumed = job.start()
    reap.append(resumed.proc)
    assert resumed.proc.wait(60) == 0, resumed.stderr()
    assert "RESUMING job" in resumed.stderr()
    started = [s.split()[0] for s in steps(job) if " start" in s]
    assert started == records, "a graceful stop costs no rework"


def test_a_second_signal_reaches_the_command(
    tmp_path: Path, reap: list[subprocess.Popen[bytes]]
) -> None:
    store = f"sqlite:///{tmp_path / 'state.db'}"
    job = EachJob(tmp_path / "job", store, ["r1", "r5", "r9"], 1, [*SLOW_COMMAND, "60", "{}"])
    run = job.start()
    reap.append(run.proc)
    wait_for(lambda: any(s.startswith("r5 start") for s in steps(job)), "the slow record")
    child_pid = int(next(s for s in steps(job) if s.startswith("r5 start")).split()[2])
    run.proc.send_signal(signal.SIGINT)
    wait_for(lambda: "stopping after the current item" in run.stderr(), "the first stop")
    sent = time.monotonic()
    run.proc.send_signal(signal.SIGINT)
    assert run.proc.wait(10) == 130, run.stderr()
    assert time.monotonic() - sent < 2, "the second SIGINT exits at once"
    assert "second SIGINT: exiting at once" in run.stderr()

    def gone() -> bool:
        try:
            os.kill(child_pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_for(gone, "the command to end on the passed-on SIGINT", timeout=5)
    assert "r5 end" not in steps(job)
    cp = job.checkpoint()
    assert cp is not None
    assert cp.counters.processed == 1, "the last checkpoint stands; the record in hand is not done"


def test_a_command_killed_with_midway_is_not_a_failed_record(
    tmp_path: Path, reap: list[subprocess.Popen[bytes]]
) -> None:
    """SIGTERM to midway and to the command (a service manager stopping both): the
    command's death is not the record's fault. midway exits 143, the record runs again."""
    store = f"sqlite:///{tmp_path / 'state.db'}"
    records = ["r1", "r2", "r3", "r4", "r5", "r6"]
    job = EachJob(tmp_path / "job", store, records, 100, [*SLOW_COMMAND, "60", "{}"])
    run = job.start()
    reap.append(run.proc)
    wait_for(lambda: any(s.startswith("r5 start") for s in steps(job)), "the slow record")
    child_pid = int(next(s for s in steps(job) if s.startswith("r5 start")).split()[2])
    run.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: "stopping after the current item" in run.stderr(), "the stop")
    os.killpg(child_pid, signal.SIGTERM)  # the command's process group: sh and its sleep
    assert run.proc.wait(10) == 143, run.stderr()
    err = run.stderr()
    assert "cut short by SIGTERM; its record runs again when resumed" in err, err
    assert "a record failed" not in err, err
    cp = job.checkpoint()
    assert cp is not None
    assert cp.counters.processed == 4
    assert cp.counters.failed == 0

    (job.folder / "fast").touch()
    resumed = job.start()
    reap.append(resumed.proc)
    assert resumed.proc.wait(60) == 0, resumed.stderr()
    ends = [s.split()[0] for s in steps(job) if s.endswith(" end")]
    assert ends == records
