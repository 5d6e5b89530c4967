"""Run ``faultjob.py`` again and again, kill it (SIGKILL from here, or from an armed fault
point inside it), look at the store after every run, and check the promises item by item.

:meth:`FaultJob.kill_loop` runs the job until it completes; :func:`check` then goes through
everything that was seen and returns a :class:`Tally` (the row of the summary table) and a
list of broken promises, each said in words. Nothing here asserts: the tests record the
tally first, so that the table shows a broken promise, then assert.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from midway._model.checkpoint import Checkpoint
from midway._model.identity import make_job_id
from midway._model.ledger import DONE, IN_DOUBT, STARTED
from midway.errors import MidwayError
from midway.stores import open_store

SCRIPT = Path(__file__).with_name("faultjob.py")
DIGEST_MOD = 2_305_843_009_213_693_951
ALL_STATUSES = ("failed", "skipped", "in_doubt", "retry", "started", "retrying", "steps", "done")
COMPLETED = ("completed", "completed_with_failures")
_STARTED: list[subprocess.Popen[bytes]] = []


def fold(keys: Iterable[int]) -> dict[str, int]:
    """The state the job's handler builds from ``keys``, handled in this order, once each."""
    count = total = digest = 0
    for key in keys:
        count += 1
        total += key
        digest = (digest * 1_000_003 + key) % DIGEST_MOD
    return {"count": count, "sum": total, "digest": digest}


def state_of(state: dict[str, Any], *, ordered: bool = True) -> dict[str, int]:
    seen = {name: int(state.get(name, 0)) for name in ("count", "sum", "digest")}
    if not ordered:
        seen.pop("digest")
    return seen


def reap() -> None:
    """SIGKILL every job process this harness started that still runs."""
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@dataclass
class Setup:
    """The job's configuration (``faultjob.py`` reads it as JSON)."""

    store: str
    name: str = "faults"
    n: int = 1000
    every: int | None = 50
    every_seconds: float | None = None
    guarantee: str = "at-least-once"
    workers: int = 1
    executor: str = "thread"
    fate: str = "plain"  # "send" for at-most-once, "insert" for exactly-once
    pause: float = 0.0005
    durable: bool = True
    lease_ttl: float = 5.0
    max_lag: float = 0.05
    fill_at: int | None = None  # this item fills the disk at fill_path before it is handled
    fill_path: str = ""

    @property
    def window(self) -> int:
        return max(4 * self.workers, 64)

    def rework_bound(self) -> int:
        """How many items one crash may hand to the handler again (README, "Bounded
        rework"): one interval plus ``max_lag`` seconds' worth of items (and the slice
        and the item in hand); with workers, one interval plus the window."""
        if self.guarantee == "at-most-once":
            return 0  # no handler runs twice: nothing is redone
        every = self.every or 0
        if self.every_seconds is not None and self.pause:  # items in every_seconds, at most
            per_interval = math.ceil(self.every_seconds / self.pause)
            every = min(every, per_interval) if every else per_interval
        if self.workers > 1:
            return every + self.window + self.workers
        if not self.pause and every != 1 and self.guarantee == "at-least-once":
            return self.n  # items of unknown speed: max_lag seconds' worth is not known
        per_lag = math.ceil(self.max_lag / self.pause) if self.pause else 0
        return every + per_lag + math.ceil(per_lag / 2) + 1


@dataclass
class Snapshot:
    """What the store says between two runs."""

    checkpoint: Checkpoint | None = None
    status: str | None = None
    summary: dict[str, Any] | None = None
    ledger: dict[int, str] = field(default_factory=dict)  # key -> status
    rows: Counter[int] | None = None  # exactly-once: the rows of table ``sent``
    error: str | None = None  # the store could not be read

    @property
    def position(self) -> int:
        cp = self.checkpoint
        return int(cp.position or 0) if cp is not None else 0

    @property
    def completed(self) -> bool:
        return self.checkpoint is None and self.status in COMPLETED

    def keys(self, *statuses: str) -> set[int]:
        return {key for key, status in self.ledger.items() if status in statuses}

    def describe(self) -> str:
        if self.error:
            return f"unreadable: {self.error[:200]}"
        cp = self.checkpoint
        if cp is None:
            return f"no checkpoint (job {self.status})"
        marks = Counter(self.ledger.values())
        return f"v{cp.version} at {cp.position} ({cp.counters.processed} done) {dict(marks)}"


@dataclass
class Run:
    index: int
    faults: str
    plan: str
    returncode: int
    killed: bool  # by SIGKILL: from the harness, or from the armed fault point
    calls: list[tuple[int, int]]  # (key, attempt), in the order the handler was called
    stdout: str
    stderr: str
    seconds: float
    before: Snapshot
    after: Snapshot
    expected_exit: int = 0  # a run that must refuse (3) says so here

    @property
    def keys(self) -> list[int]:
        return [key for key, _ in self.calls]

    def describe(self) -> str:
        how = "killed" if self.killed else f"exit {self.returncode}"
        armed = f" MIDWAY_FAULTS={self.faults}" if self.faults else ""
        return (
            f"run #{self.index}{armed} {self.plan}: {how} after {self.seconds:.2f} s, "
            f"{len(self.calls)} calls; before {self.before.describe()}; "
            f"after {self.after.describe()}"
        )


@dataclass
class Report:
    seed: int
    setup: Setup
    runs: list[Run] = field(default_factory=list)

    @property
    def kills(self) -> int:
        return sum(run.killed for run in self.runs)

    @property
    def last(self) -> Run:
        return self.runs[-1]

    def describe(self) -> str:
        lines = [
            f"seed {self.seed} (MIDWAY_TEST_SEED={self.seed} replays it), {self.kills} kills, "
            f"{len(self.runs)} runs, {self.setup.guarantee}, workers={self.setup.workers}, "
            f"store {self.setup.store}"
        ]
        lines += [f"  {run.describe()}" for run in self.runs]
        if self.runs:
            tail = self.last.stderr.strip().splitlines()[-8:]
            lines += ["  last stderr:", *(f"    {line}" for line in tail)]
        return "\n".join(lines)


class Proc:
    """A started job process."""

    def __init__(self, proc: subprocess.Popen[bytes], log: Path, out: Path, err: Path) -> None:
        self.proc = proc
        self.log = log
        self.out = out
        self.err = err
        self.started = time.monotonic()
        self.killed_here = False
        self._read = 0
        self._lines = 0

    def alive(self) -> bool:
        return self.proc.poll() is None

    def calls_logged(self) -> int:
        """How many handler calls this run has logged so far."""
        try:
            with open(self.log, "rb") as f:
                f.seek(self._read)
                self._lines += f.read().count(b"\n")
                self._read = f.tell()
        except FileNotFoundError:
            pass
        return self._lines

    def wait_for_calls(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.alive() and self.calls_logged() < count and time.monotonic() < deadline:
            time.sleep(0.002)

    def kill(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.killed_here = True

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(
                f"pid {self.proc.pid} did not end within {timeout} s (a hang); stderr: "
                f"{self.err.read_text(errors='replace')[-2000:]}"
            ) from None


class FaultJob:
    """``faultjob.py`` set up in ``folder``, with ways to run it and read what it left."""

    def __init__(self, folder: Path, setup: Setup) -> None:
        self.folder = folder
        self.setup = setup
        self.key = make_job_id(setup.name, None).key
        (folder / "runs").mkdir(parents=True, exist_ok=True)
        self.sent = folder / "sent.log"
        self.config = folder / "faultjob.json"
        body = {**asdict(setup), "sent": str(self.sent), "log": str(folder / "runs" / "x.log")}
        self.config.write_text(json.dumps(body), encoding="utf-8")
        self._runs = 0
        self.peek = True  # False: leave the store alone between runs (it is not looked at)
        if setup.guarantee == "exactly-once":
            conn = sqlite3.connect(self.db_path())
            conn.execute("CREATE TABLE IF NOT EXISTS sent (n INTEGER)")  # no unique key
            conn.commit()
            conn.close()

    def db_path(self) -> Path:
        assert self.setup.store.startswith("sqlite:///"), self.setup.store
        return Path(self.setup.store[len("sqlite:///") :])

    # -- the store, and the effects, read from outside ---------------------------------

    def snapshot(self) -> Snapshot:
        snap = Snapshot()
        if not self.peek:
            return snap
        try:
            store = open_store(self.setup.store)
            try:
                snap.checkpoint = store.load_checkpoint(self.key)
                record = store.get_job(self.key)
                if record is not None:
                    snap.status, snap.summary = record.status, record.summary
                snap.ledger = {
                    int(str(r.key)): r.status for r in store.list_items(self.key, ALL_STATUSES)
                }
            finally:
                store.close()
        except MidwayError as exc:
            snap.error = f"{type(exc).__name__}: {exc}"
        if self.setup.guarantee == "exactly-once":
            snap.rows = self.rows()
        return snap

    def rows(self) -> Counter[int]:
        conn = sqlite3.connect(self.db_path(), timeout=30)
        try:
            return Counter(n for (n,) in conn.execute("SELECT n FROM sent"))
        finally:
            conn.close()

    def sent_keys(self) -> Counter[int]:
        if not self.sent.exists():
            return Counter()
        return Counter(int(line) for line in self.sent.read_text().split())

    def litter(self) -> list[str]:
        """Temporary files of the file store left behind (by killed writers)."""
        url = self.setup.store
        if not url.startswith("file://"):
            return []
        return sorted(p.name for p in Path(url[len("file://") :]).rglob("*.tmp"))

    # -- processes ----------------------------------------------------------------------

    def start(self, faults: str = "", **overrides: Any) -> Proc:
        index = self._runs
        self._runs += 1
        runs = self.folder / "runs"
        log, out, err = (runs / f"{index:03d}.{ext}" for ext in ("log", "out", "err"))
        env = {k: v for k, v in os.environ.items() if k != "MIDWAY_FAULTS"}
        if faults:
            env["MIDWAY_FAULTS"] = faults
        changes = json.dumps({"log": str(log), **overrides})
        with open(out, "wb") as fout, open(err, "wb") as ferr:
            proc = subprocess.Popen(
                [sys.executable, str(SCRIPT), str(self.config), changes],
                cwd=self.folder,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=fout,
                stderr=ferr,
            )
        _STARTED.append(proc)
        return Proc(proc, log, out, err)

    def finish(self, proc: Proc, before: Snapshot, faults: str, plan: str, timeout: float) -> Run:
        code = proc.wait(timeout)
        seconds = time.monotonic() - proc.started
        return self._collect(proc.log, proc.out, proc.err, code, seconds, before, faults, plan)

    def _collect(
        self,
        log: Path,
        out: Path,
        err: Path,
        code: int,
        seconds: float,
        before: Snapshot,
        faults: str,
        plan: str,
    ) -> Run:
        text = log.read_text() if log.exists() else ""
        lines = text[: text.rfind("\n") + 1].splitlines()
        return Run(
            index=self._runs - 1,
            faults=faults,
            plan=plan,
            returncode=code,
            killed=code == -signal.SIGKILL,
            calls=[(int(a), int(b)) for a, b in (line.split() for line in lines)],
            stdout=out.read_text(errors="replace"),
            stderr=err.read_text(errors="replace"),
            seconds=seconds,
            before=before,
            after=self.snapshot(),
        )

    def run(self, faults: str = "", timeout: float = 90.0, **overrides: Any) -> Run:
        """One run to its end (or to the kill of an armed fault point)."""
        before = self.snapshot()
        return self.finish(self.start(faults, **overrides), before, faults, "no kill", timeout)

    def run_here(self, faults: str = "", *, expect: int = 0, **overrides: Any) -> Run:
        """One run in this process (no interpreter to start: fast). Only faults that do
        not kill (``:enospc``) can be armed here."""
        from faults import faultjob

        index = self._runs
        self._runs += 1
        runs = self.folder / "runs"
        log, out, err = (runs / f"{index:03d}.{ext}" for ext in ("log", "out", "err"))
        before = self.snapshot()
        started = time.monotonic()
        changes = json.dumps({"log": str(log), **overrides})
        with (
            armed(faults),
            open(out, "w") as fout,
            open(err, "w") as ferr,
            contextlib.redirect_stdout(fout),
            contextlib.redirect_stderr(ferr),
        ):
            try:
                code = faultjob.main([str(self.config), changes])
            except Exception:
                traceback.print_exc(file=ferr)
                code = 1
        seconds = time.monotonic() - started
        run = self._collect(log, out, err, code, seconds, before, faults, "in this process")
        run.expected_exit = expect
        return run

    def kill_loop(
        self,
        *,
        seed: int,
        kills: int,
        early_chance: float = 0.15,
        early_max: float = 0.6,
        faults: Callable[[random.Random, int], str] | None = None,
        max_runs: int | None = None,
        timeout: float = 90.0,
    ) -> Report:
        """Run, kill, run again, until the job completes.

        ``kills`` runs are SIGKILLed from here, at a random moment: most once the run has
        handled a random number of items (about ``n / kills`` on average, so the kills
        spread over the whole job whatever the machine's speed) plus a few milliseconds;
        some (``early_chance``) ``[0, early_max)`` s after the start, in start-up. A run
        to be killed holds at an item ``HOLD_AHEAD`` items past its kill point until it
        is killed (see ``faultjob.py``), so that every planned kill lands, however slowly
        this process is scheduled on a busy machine (the completion's own moments are the
        fault points' business). ``faults(rng, run_index)`` arms
        the injection points of a run (the process then kills itself there, which counts
        as a kill too). The loop ends when a run exits 0 or the store says the job
        completed, or at the first run that ends any other way (``check`` says why)."""
        print(f"faults: kill loop seed={seed} (replay with MIDWAY_TEST_SEED={seed})")
        rng = random.Random(seed)
        report = Report(seed, self.setup)
        max_runs = max_runs if max_runs is not None else 3 * kills + 10
        n = self.setup.n
        span = max(2, 2 * n // max(kills, 1))
        harness_kills = 0
        for _ in range(max_runs):
            armed = faults(rng, len(report.runs)) if faults is not None else ""
            before = self.snapshot()
            due = pending(before, n)
            early = rng.random() < early_chance
            delay = rng.uniform(0, early_max)
            calls = rng.randint(1, max(1, min(len(due), span)))
            jitter = rng.uniform(0, 0.02)
            hold: dict[str, Any] = {}
            if harness_kills < kills and due:
                hold_file = self.folder / "runs" / f"{self._runs:03d}.hold"
                hold_file.touch()
                hold = {"hold_at": due[min(len(due) - 1, calls - 1 + HOLD_AHEAD)]}
                hold["hold_file"] = str(hold_file)
            proc = self.start(armed, **hold)
            plan = "no kill"
            if harness_kills < kills:
                if early:
                    plan = f"kill {delay:.3f} s after start"
                    time.sleep(delay)
                else:
                    plan = f"kill after {calls} calls + {jitter * 1000:.0f} ms"
                    proc.wait_for_calls(calls, timeout)
                    time.sleep(jitter)
                proc.kill()
                harness_kills += proc.killed_here
            run = self.finish(proc, before, armed, plan, timeout)
            if hold:
                Path(hold["hold_file"]).unlink()
            report.runs.append(run)
            if run.after.error is not None:
                return report  # the store is unreadable: check() says so
            if not run.killed and run.returncode != 0:
                return report  # an error: check() says so
            if run.returncode == 0 or run.after.completed:
                return report
        return report


HOLD_AHEAD = 40  # a run to be killed holds this many items past its planned kill point


def pending(before: Snapshot, n: int) -> list[int]:
    """The keys the next run will hand to the handler, in order: those from the position
    on that have no record (a record there is an item done by workers, or one in doubt)."""
    return [key for key in range(before.position, n) if key not in before.ledger]


@contextlib.contextmanager
def armed(spec: str) -> Iterator[None]:
    """Arm ``midway.faults`` in this process, as ``MIDWAY_FAULTS=spec`` arms a new one."""
    from midway import faults as points

    plan = points._parse(spec)
    if any(action == "kill" for _, action in plan.values()):
        raise ValueError(f"{spec!r} would kill this process: arm it in a job process")
    saved = points.PLAN, points.ACTIVE
    points.PLAN, points.ACTIVE = plan, bool(plan)
    points._hits.clear()
    try:
        yield
    finally:
        points.PLAN, points.ACTIVE = saved
        points._hits.clear()


# -- the checks -------------------------------------------------------------------------


@dataclass
class Tally:
    """One row of the summary table."""

    scenario: str
    kills: int
    items: int
    lost: int
    duplicated: int
    in_doubt: int
    redone: int
    max_rework: int
    bound: int
    seed: int
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_record(self) -> dict[str, Any]:
        record = asdict(self)
        record["problems"] = self.problems[:5]
        record["ok"] = self.ok
        return record


def check(report: Report, job: FaultJob, scenario: str) -> Tally:
    """Every promise, item by item, over every run of ``report``."""
    setup = report.setup
    n = setup.n
    problems: list[str] = []
    tally = Tally(scenario, report.kills, n, 0, 0, 0, 0, 0, setup.rework_bound(), report.seed)
    tally.problems = problems
    if not report.runs:
        problems.append("no run")
        return tally

    # Each run: the store was readable after it, and its checkpoint is whole (promise 1).
    last_version = 0
    for run in report.runs:
        where = f"after run #{run.index}"
        if run.after.error is not None:
            problems.append(f"{where}: the store cannot be read: {run.after.error}")
            continue
        if not run.killed and run.returncode != run.expected_exit:
            problems.append(
                f"run #{run.index} ended with exit {run.returncode}: "
                f"{run.stderr.strip().splitlines()[-1:] or ['(no message)']}"
            )
        if "Traceback" in run.stderr:
            problems.append(f"run #{run.index} printed a traceback: {run.stderr[-600:]}")
        cp = run.after.checkpoint
        if cp is None:
            if run.before.checkpoint is not None and not run.after.completed:
                problems.append(f"{where}: the checkpoint vanished, the job would start over")
            continue
        if cp.version < last_version:
            problems.append(f"{where}: checkpoint version went back ({last_version}→{cp.version})")
        last_version = cp.version
        problems += [f"{where}: {p}" for p in whole_checkpoint(setup, run.after)]

    # Each run resumed where its checkpoint said, and redid no more than the bound.
    for run in report.runs:
        problems += [f"run #{run.index}: {p}" for p in resumed_in_order(setup, run)]
        if (run.killed or run.returncode) and setup.guarantee != "at-most-once":
            tally.max_rework = max(tally.max_rework, rework(setup, run))
    if tally.max_rework > tally.bound:
        problems.append(f"a kill redid {tally.max_rework} items, more than {tally.bound}")

    final = report.last.after
    if final.error is not None or not final.completed:
        problems.append(f"the job did not complete: {final.describe()}")
        return tally
    calls = Counter(key for run in report.runs for key in run.keys)
    tally.redone = sum(calls.values()) - len(calls)
    summary = final.summary or {}
    counters = summary.get("counters") or {}
    in_doubt = final.keys(IN_DOUBT)
    tally.in_doubt = len(in_doubt)
    processed = sum(int(counters.get(k, 0)) for k in ("succeeded", "failed", "skipped", "in_doubt"))
    if processed != n:
        problems.append(f"the summary counts {processed} items of {n}: {counters}")
    state = state_of(summary.get("state") or {}, ordered=setup.workers == 1)
    everything = range(n)

    if setup.guarantee == "at-least-once":
        tally.lost = n - len(set(calls) & set(everything))
        tally.duplicated = max(0, state["count"] - n)
        want = state_of(fold(everything), ordered=setup.workers == 1)
        if state != want:
            problems.append(f"the final state {state} is not that of each item once {want}")
        if counters.get("succeeded") != n:
            problems.append(f"succeeded {counters.get('succeeded')} of {n}")
    elif setup.guarantee == "at-most-once":
        sent = job.sent_keys()
        tally.duplicated = len(
            {k for k, c in sent.items() if c > 1} | {k for k in calls if calls[k] > 1}
        )
        lost = set(everything) - set(sent) - in_doubt
        tally.lost = len(lost)
        if lost:
            problems.append(f"neither sent nor in doubt: {sorted(lost)[:10]}")
        if tally.duplicated:
            twice = sorted(k for k, c in (sent + calls).items() if c > 2 or sent[k] > 1)
            problems.append(f"sent or handled twice: {twice[:10]}")
        # One item in hand per crash; a run refused by its store (a full disk) cannot
        # record the item it just finished either.
        ends = report.kills + sum(1 for r in report.runs if r.returncode > 0)
        if len(in_doubt) > ends:
            problems.append(f"{len(in_doubt)} items in doubt after {ends} kills and refusals")
        if counters.get("in_doubt") != len(in_doubt):
            problems.append(f"in_doubt counter {counters.get('in_doubt')} != {len(in_doubt)}")
        # (An item marked started whose handler never ran is in doubt too: allowed.)
        want = state_of(fold(k for k in everything if k not in in_doubt))
        if state != want:
            problems.append(f"the final state {state} is not that of the items done {want}")
    else:  # exactly-once
        rows = job.rows()
        tally.lost = len(set(everything) - set(rows))
        tally.duplicated = sum(1 for c in rows.values() if c > 1)
        if tally.lost or tally.duplicated or set(rows) - set(everything):
            missing = sorted(set(everything) - set(rows))[:10]
            twice = sorted(k for k, c in rows.items() if c > 1)[:10]
            problems.append(f"rows missing {missing}, doubled {twice}")
        want = state_of(fold(everything))
        if state != want:
            problems.append(f"the final state {state} is not that of each item once {want}")
    litter = job.litter()
    if litter:
        problems.append(f"temporary files left in the store: {litter[:5]}")
    leftover = final.keys(STARTED, DONE, "retrying", "steps")
    if leftover:
        problems.append(f"engine records left after completion: {sorted(leftover)[:10]}")
    return tally


def whole_checkpoint(setup: Setup, snap: Snapshot) -> list[str]:
    """A checkpoint's position, counters, state, ledger (and rows) agree: none is ahead."""
    cp = snap.checkpoint
    assert cp is not None
    p = snap.position
    problems = []
    state = cp.state
    processed = cp.counters.processed
    if setup.workers > 1:
        done = snap.keys(DONE)
        if any(k < p for k in done):
            problems.append(f"done records below the watermark {p}: {sorted(done)[:5]}")
        want = {"count": p + len(done), "sum": sum(range(p)) + sum(done)}
        if state_of(state, ordered=False) != want or processed != p + len(done):
            problems.append(
                f"state {state} / {processed} processed at watermark {p} with "
                f"{len(done)} done above it (want {want})"
            )
        return problems
    if setup.guarantee == "at-most-once":
        doubt = snap.keys(IN_DOUBT)
        started = snap.keys(STARTED)
        if any(k != p for k in started):
            problems.append(f"started records {sorted(started)} not at the position {p}")
        want = state_of(fold(k for k in range(p) if k not in doubt))
        if cp.counters.in_doubt != len(doubt):
            problems.append(f"in_doubt counter {cp.counters.in_doubt}, ledger {len(doubt)}")
    else:
        want = state_of(fold(range(p)))
    if state_of(state) != want:
        problems.append(f"state {state} at position {p}, want {want}")
    if processed != p:
        problems.append(f"{processed} processed at position {p}")
    if snap.rows is not None:
        extra = {k: c for k, c in snap.rows.items() if c != 1 or k >= p}
        missing = set(range(p)) - set(snap.rows)
        if extra or missing:
            problems.append(
                f"rows not in step with position {p}: extra {sorted(extra)[:5]}, "
                f"missing {sorted(missing)[:5]}"
            )
    return problems


def resumed_in_order(setup: Setup, run: Run) -> list[str]:
    """A run starts where its checkpoint says and goes on in order, each key once."""
    before = run.before
    if before.error is not None or before.completed:
        return []
    keys = run.keys
    p = before.position
    if setup.workers > 1:
        done = before.keys(DONE)
        again = sorted(set(keys) & done)
        below = sorted(k for k in keys if k < p)
        twice = sorted(k for k, c in Counter(keys).items() if c > 1)
        out = []
        if again or below or twice:
            out.append(
                f"handled again: above-watermark {again[:5]}, below {below[:5]}, {twice[:5]}"
            )
        return out
    first = p
    if setup.guarantee == "at-most-once" and p in before.keys(STARTED, IN_DOUBT):
        first = p + 1
    want = list(range(first, first + len(keys)))
    if keys != want:
        at = next((i for i, (a, b) in enumerate(zip(keys, want, strict=False)) if a != b), 0)
        return [f"handled {keys[at : at + 5]} where {want[at : at + 5]} was due (resume at {p})"]
    return []


def rework(setup: Setup, run: Run) -> int:
    """Items this killed run handled that its successor must handle again."""
    after = run.after
    if after.error is not None:
        return 0
    if after.completed:
        return 0
    p_after = after.position
    if setup.workers > 1:
        done = after.keys(DONE)
        return sum(1 for k in set(run.keys) if k >= p_after and k not in done)
    return max(0, run.before.position + len(run.keys) - p_after)
