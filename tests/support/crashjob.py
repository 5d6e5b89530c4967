"""A midway job in a real subprocess, and a harness that kills it and starts it again.

The job script is written into the test's folder and run with ``sys.executable``. It runs a
midway job over a sequence of ints or the rows of a CSV file. Its handler appends ``<key>\\n``
to a log with ``os.write`` on an ``O_APPEND`` descriptor (so a SIGKILL loses nothing already
written), sleeps a little so that kills land mid-run, and folds the item into ``ctx.state``
(a count, a sum and an order-sensitive digest). Each process gets a log file of its own, so
every logged key is attributed to the run that handled it. On completion the script prints
one line of JSON on stdout: status, counters, state, resumed_from, processed_this_run.

A ``MidwayError`` other than ``Stopped`` is printed on stderr and ends the script with the
error's ``exit_code`` (``LeaseHeld`` / ``LeaseLost``: 3); ``Stopped`` is left uncaught, so the
process ends with 130 / 143 as a user's script would.

:meth:`CrashJob.kill_loop` runs the job, SIGKILLs it after a random number of logged keys
(from a seeded ``random.Random``), reads the checkpoint the kill left behind, and starts it
again, until the job exits 0. Everything it saw comes back as a :class:`KillReport`. A run
given ``hold_at`` and ``hold_file`` waits at its ``hold_at``-th item for as long as that
file exists: a run meant to be killed cannot finish first.
"""

from __future__ import annotations

import fcntl
import inspect
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from midway._model.checkpoint import Checkpoint
from midway._model.identity import make_job_id
from midway.stores import JobRecord, open_store
from support import pg

POLL = 0.005
HOLD_AHEAD = 40  # a run to be killed holds this many items past its planned kill point
_STARTED: list[subprocess.Popen[bytes]] = []


def fold(state: dict[str, int], value: int) -> None:
    """What the job does to ``ctx.state`` per item (also pasted into the job script)."""
    state["count"] += 1
    state["sum"] += value
    state["digest"] = (state["digest"] * 1_000_003 + value) % 2_305_843_009_213_693_951


def initial_state() -> dict[str, int]:
    return {"count": 0, "sum": 0, "digest": 0}


def clean_state(values: Iterable[int]) -> dict[str, int]:
    """The state a clean run over ``values`` (in order, each once) ends with."""
    state = initial_state()
    for value in values:
        fold(state, value)
    return state


SCRIPT = '''\
"""A midway job run by tests/support/crashjob.py: killed and started again on purpose."""
import json
import os
import sys
import time

import midway

with open(sys.argv[1], encoding="utf-8") as f:
    cfg = json.load(f)
if len(sys.argv) > 2:
    cfg.update(json.loads(sys.argv[2]))

FOLD_SOURCE

log_fd = os.open(cfg["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

if cfg["source"] == "csv":
    source = midway.sources.csv(cfg["csv_path"], key=cfg["key"])
    key_column = cfg["key"]

    def key_of(item):
        return item[key_column]
else:
    source = midway.sources.sequence(list(range(cfg["n"])))
    key_of = str

pause, pause_every = cfg["pause"], max(1, cfg["pause_every"])
slow_key, slow_for = cfg["slow_key"], cfg["slow_for"]
fold_state = cfg["fold_state"]
handled = 0


def handle(item, ctx):
    global handled
    key = key_of(item)
    os.write(log_fd, (key + "\\n").encode())
    handled += 1
    if handled == cfg.get("hold_at"):
        while os.path.exists(cfg["hold_file"]):
            time.sleep(0.005)
    if key == slow_key:
        time.sleep(slow_for)
    elif pause and handled % pause_every == 0:
        time.sleep(pause)
    if fold_state:
        fold(ctx.state, int(key))


job = midway.Job(
    cfg["name"],
    store=cfg["store"],
    every=cfg["every"],
    every_seconds=cfg["every_seconds"],
    lease_ttl=cfg["lease_ttl"],
    max_lag=cfg["max_lag"],
    progress=False,
)
initial = {"count": 0, "sum": 0, "digest": 0}
try:
    if cfg["mode"] == "loop":
        loop = job.loop(source, state=initial)
        for item in loop:
            if handled == cfg["leave_after"]:
                if cfg["leave_how"] == "break":
                    break
                raise RuntimeError(f"the loop body failed on purpose after {handled} items")
            handle(item, loop.ctx)
        result = loop.result
    else:
        result = job.run(source, handle, state=initial)
except midway.MidwayError as err:
    if isinstance(err, SystemExit):  # Stopped: exit 130 / 143 as a user's script would
        raise
    print(f"job-script: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
    sys.exit(err.exit_code)

print(
    json.dumps(
        {
            "status": result.status,
            "counters": {
                "succeeded": result.succeeded,
                "failed": result.failed,
                "skipped": result.skipped,
                "in_doubt": result.in_doubt,
                "processed": result.processed,
            },
            "state": result.state,
            "resumed_from": result.resumed_from,
            "processed_this_run": result.processed_this_run,
            "position": result.position,
        }
    ),
    flush=True,
)
'''


@dataclass
class Spec:
    """What the job script does; any field can be overridden for one run."""

    store: str
    name: str = "crashjob"
    source: str = "sequence"  # or "csv"
    n: int = 2000  # items of the sequence
    csv_path: str | None = None
    key: str = "geonameid"  # the CSV column that identifies a row
    every: int | None = 50
    every_seconds: float | None = None
    lease_ttl: float = 5.0
    max_lag: float = 0.05  # how far past one interval the loop may run while the store writes
    pause: float = 0.001  # seconds slept ...
    pause_every: int = 1  # ... after every this many items
    slow_key: str | None = None  # this item sleeps slow_for seconds instead
    slow_for: float = 0.0
    mode: str = "run"  # "run": job.run(source, handler); "loop": for item in job.loop(source)
    leave_after: int | None = None  # loop mode: leave the loop when this many were handled
    leave_how: str = "raise"  # ... by raising, or by "break"
    fold_state: bool = True  # False: the handler leaves ctx.state alone


@dataclass
class Outcome:
    """One process of the job: how it ended, what it logged, the checkpoint around it."""

    index: int
    pid: int
    returncode: int
    killed: bool
    keys: list[str]
    stdout: str
    stderr: str
    seconds: float
    checkpoint_before: Checkpoint | None
    checkpoint_after: Checkpoint | None
    kill_plan: str = ""

    @property
    def result(self) -> dict[str, Any] | None:
        """The JSON the script prints on completion, if it got that far."""
        for line in reversed(self.stdout.splitlines()):
            if line.startswith("{"):
                value: dict[str, Any] = json.loads(line)
                return value
        return None

    @property
    def processed_before(self) -> int:
        cp = self.checkpoint_before
        return cp.counters.processed if cp is not None else 0

    @property
    def processed_after(self) -> int:
        cp = self.checkpoint_after
        return cp.counters.processed if cp is not None else 0

    def describe(self) -> str:
        how = f"killed ({self.kill_plan})" if self.killed else f"exit {self.returncode}"
        after = self.checkpoint_after
        cp = "none" if after is None else f"v{after.version} processed={after.counters.processed}"
        return (
            f"run #{self.index} pid {self.pid}: {how} after {self.seconds:.2f} s, resumed at "
            f"{self.processed_before}, logged {len(self.keys)} keys, checkpoint after: {cp}"
        )


@dataclass
class KillReport:
    seed: int
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def kills(self) -> int:
        return sum(1 for o in self.outcomes if o.killed)

    @property
    def final(self) -> Outcome:
        return self.outcomes[-1]

    @property
    def result(self) -> dict[str, Any] | None:
        return self.final.result

    @property
    def keys(self) -> list[str]:
        """Every key logged, by every run, in order."""
        return [key for outcome in self.outcomes for key in outcome.keys]

    def describe(self) -> str:
        lines = [f"seed={self.seed} kills={self.kills} runs={len(self.outcomes)}"]
        lines += [f"  {o.describe()}" for o in self.outcomes]
        tail = self.final.stderr.strip().splitlines()[-6:] if self.outcomes else []
        lines += ["  last stderr:", *(f"    {line}" for line in tail)]
        return "\n".join(lines)


def reap_runners() -> None:
    """SIGKILL every job process this harness started that still runs (after a failed test:
    a runner left paused, or asleep on a slow item)."""
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def pick_seed() -> int:
    """A fresh seed, or ``MIDWAY_TEST_SEED`` to replay a failure."""
    given = os.environ.get("MIDWAY_TEST_SEED")
    return int(given) if given else random.SystemRandom().randrange(2**32)


class Runner:
    """A started job process."""

    def __init__(
        self,
        index: int,
        proc: subprocess.Popen[bytes],
        log: Path,
        out: Path,
        err: Path,
        checkpoint_before: Checkpoint | None,
        read_checkpoint: Callable[[], Checkpoint | None],
    ) -> None:
        self.index = index
        self.proc = proc
        self.log = log
        self.out = out
        self.err = err
        self.checkpoint_before = checkpoint_before
        self._read_checkpoint = read_checkpoint
        self.started = time.monotonic()
        self._seen = b""
        self.killed = False
        self.kill_plan = ""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _refresh(self) -> bytes:
        try:
            with open(self.log, "rb") as f:
                f.seek(len(self._seen))
                self._seen += f.read()
        except FileNotFoundError:
            pass
        return self._seen[: self._seen.rfind(b"\n") + 1]

    def keys(self) -> list[str]:
        """The keys this process has logged so far."""
        return self._refresh().decode().splitlines()

    def count(self) -> int:
        return self._refresh().count(b"\n")

    def processed_estimate(self) -> int:
        """Where the run is: the checkpoint it resumed from plus the keys it logged."""
        cp = self.checkpoint_before
        return (cp.counters.processed if cp is not None else 0) + self.count()

    def wait_for_keys(self, count: int, timeout: float = 30.0) -> int:
        """Wait until the process logged ``count`` keys (or ended); return how many it has."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self.count()
            if seen >= count or not self.alive():
                return seen
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"pid {self.pid} logged {seen} keys in {timeout} s, waiting for {count}; "
                    f"stderr: {self.stderr()[-2000:]}"
                )
            time.sleep(POLL)

    def stderr(self) -> str:
        return self.err.read_text(encoding="utf-8", errors="replace")

    def wait_for_stderr(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            err = self.stderr()
            if text in err:
                return err
            if not self.alive() and text not in self.stderr():
                raise AssertionError(f"pid {self.pid} ended without saying {text!r}: {err}")
            if time.monotonic() > deadline:
                raise AssertionError(f"pid {self.pid} did not say {text!r} in {timeout} s: {err}")
            time.sleep(POLL)

    def send(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def kill(self, plan: str = "") -> None:
        """SIGKILL, unless it already ended."""
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.killed = True
            self.kill_plan = plan

    def wait(self, timeout: float = 60.0) -> Outcome:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(
                f"pid {self.pid} did not end within {timeout} s; stderr: {self.stderr()[-3000:]}"
            ) from None
        seconds = time.monotonic() - self.started
        killed = self.killed and code == -signal.SIGKILL
        return Outcome(
            index=self.index,
            pid=self.pid,
            returncode=code,
            killed=killed,
            keys=self.keys(),
            stdout=self.out.read_text(encoding="utf-8", errors="replace"),
            stderr=self.stderr(),
            seconds=seconds,
            checkpoint_before=self.checkpoint_before,
            checkpoint_after=self._read_checkpoint(),
            kill_plan=self.kill_plan if killed else "",
        )


class CrashJob:
    """The job script in ``folder``, and ways to run it, stop it and look at its store."""

    def __init__(self, folder: Path, spec: Spec, *, total: int | None = None) -> None:
        self.folder = folder
        self.spec = spec
        self.total = total if total is not None else spec.n
        self.key = make_job_id(spec.name, None).key
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "runs").mkdir(exist_ok=True)
        self.script = folder / "crashjob_script.py"
        fold_source = inspect.getsource(fold)
        self.script.write_text(SCRIPT.replace("FOLD_SOURCE", fold_source), encoding="utf-8")
        self.config = folder / "crashjob_config.json"
        self.config.write_text(json.dumps(asdict(spec)), encoding="utf-8")
        self._runs = 0

    # -- the store, read as a user would --------------------------------------------------

    def read_checkpoint(self) -> Checkpoint | None:
        store = open_store(self.spec.store)
        try:
            return store.load_checkpoint(self.key)
        finally:
            store.close()

    def job_record(self) -> JobRecord | None:
        store = open_store(self.spec.store)
        try:
            return store.get_job(self.key)
        finally:
            store.close()

    # -- processes ------------------------------------------------------------------------

    def start(self, **overrides: Any) -> Runner:
        """Start the script; ``overrides`` change Spec fields for this run only."""
        index = self._runs
        self._runs += 1
        runs = self.folder / "runs"
        log = runs / f"{index:03d}.log"
        out, err = runs / f"{index:03d}.out", runs / f"{index:03d}.err"
        before = self.read_checkpoint()
        changes = {"log": str(log), **overrides}
        with open(out, "wb") as fout, open(err, "wb") as ferr:
            proc = subprocess.Popen(
                [sys.executable, str(self.script), str(self.config), json.dumps(changes)],
                cwd=self.folder,
                stdin=subprocess.DEVNULL,
                stdout=fout,
                stderr=ferr,
            )
        _STARTED.append(proc)
        return Runner(index, proc, log, out, err, before, self.read_checkpoint)

    def run(self, timeout: float = 60.0, **overrides: Any) -> Outcome:
        """Run the script to its end."""
        return self.start(**overrides).wait(timeout)

    def kill_loop(
        self,
        *,
        seed: int,
        kills: int,
        early_chance: float = 0.15,
        early_max: float = 0.3,
        max_runs: int | None = None,
        timeout: float = 60.0,
    ) -> KillReport:
        """Run, SIGKILL, restart, ``kills`` times, then let the job finish.

        Most kills land once the run has logged a random number of keys (the kills spread
        over the whole input, whatever the machine's speed) plus a few milliseconds. With
        ``early_chance`` a kill lands instead at a random ``[0, early_max)`` s after the
        process started (in start-up: imports, the store, the lease, the first slice).
        A run to be killed holds at its item ``HOLD_AHEAD`` past the kill point for as long
        as its hold file exists (see the script's ``hold_at``): it cannot finish before the
        kill lands, however slowly this process is scheduled; nor can a kill land between
        the job's completion and the process's exit.
        """
        print(f"crashjob: kill loop seed={seed} (replay with MIDWAY_TEST_SEED={seed})")
        rng = random.Random(seed)
        max_runs = max_runs if max_runs is not None else 3 * kills + 5
        report = KillReport(seed)
        while True:
            if len(report.outcomes) >= max_runs:
                raise AssertionError(
                    f"the job did not finish in {max_runs} runs\n{report.describe()}"
                )
            early = rng.random() < early_chance
            delay = rng.uniform(0, early_max)
            jitter = rng.uniform(0, 0.02)
            before = self.read_checkpoint()
            left = self.total - (before.counters.processed if before is not None else 0)
            kill = report.kills < kills and left > 0
            hold: dict[str, Any] = {}
            target = 0
            if kill:
                target = rng.randint(1, max(1, min(left, 2 * left // (kills - report.kills + 1))))
                gate = self.folder / "runs" / f"{self._runs:03d}.hold"
                gate.touch()
                hold = {"hold_at": min(left, target + HOLD_AHEAD), "hold_file": str(gate)}
            runner = self.start(**hold)
            if kill:
                if early:
                    plan = f"{delay:.3f} s after start"
                    time.sleep(delay)
                else:
                    plan = f"after {target} keys + {jitter * 1000:.0f} ms"
                    runner.wait_for_keys(target, timeout)
                    time.sleep(jitter)
                runner.kill(plan)
            outcome = runner.wait(timeout)
            if hold:
                Path(hold["hold_file"]).unlink()
            report.outcomes.append(outcome)
            if outcome.killed:
                continue
            if outcome.returncode != 0:
                raise AssertionError(
                    f"run #{outcome.index} failed with exit code {outcome.returncode}\n"
                    f"{report.describe()}\nstderr:\n{outcome.stderr}"
                )
            return report


def store_is_busy(url: str, job_key: str) -> bool:
    """True while some process is inside a write to the store (holds its write lock).

    A runner stopped with SIGSTOP inside a write would block every other process that
    writes (the SQLite write lock, the file store's flock), so a test that pauses a runner
    to play a takeover pauses it only between writes. This peeks at the backends' locks.
    """
    if url.startswith("sqlite:///"):
        conn = sqlite3.connect(url[len("sqlite:///") :], timeout=0)
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                return True
            raise
        else:
            conn.execute("ROLLBACK")
        finally:
            conn.close()
        return False
    if url.startswith("file://"):
        lock = Path(url[len("file://") :]) / "jobs" / job_key / "lock"
        if not lock.exists():
            return False
        fd = os.open(lock, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
        return False
    if url.startswith(("postgresql:", "postgres:")):
        return pg.store_is_busy(url)
    raise ValueError(f"no lock peek for store {url}")


def wait_until_blocked(runner: Runner, quiet: float = 0.5, timeout: float = 60.0) -> int:
    """Wait until ``runner`` logs nothing more for ``quiet`` seconds (it waits for the
    store); return how many keys it logged. A run that is merely slow to be scheduled is
    killed sooner than it need be, which makes its rework smaller, never larger."""
    deadline = time.monotonic() + timeout
    seen, since = runner.count(), time.monotonic()
    while runner.alive() and time.monotonic() < deadline:
        time.sleep(0.02)
        now = runner.count()
        if now != seen:
            seen, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return seen


@contextmanager
def store_write_lock(url: str, job_key: str) -> Iterator[None]:
    """Hold the store's write lock from this process: commits of others wait meanwhile.

    SQLite: an open ``BEGIN IMMEDIATE`` transaction; PostgreSQL: a transaction holding a
    SHARE lock on the checkpoints table. It plays a store that is slow to commit (a busy
    disk, a slow network filesystem). The file store's runner takes no lock another process
    could hold against it (a paused runner must not block the store): stall its commit from
    inside instead, with ``MIDWAY_FAULTS=file.before_rename@N:stall``.
    """
    if url.startswith("sqlite:///"):
        conn = sqlite3.connect(url[len("sqlite:///") :], timeout=30, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            finally:
                conn.execute("ROLLBACK")
        finally:
            conn.close()
        return
    if url.startswith(("postgresql:", "postgres:")):
        with pg.write_lock(url):
            yield
        return
    raise ValueError(f"no write lock for store {url}")


def pause_between_writes(runner: Runner, url: str, job_key: str, tries: int = 200) -> None:
    """SIGSTOP ``runner`` at a moment when it holds no store lock."""
    for _ in range(tries):
        runner.send(signal.SIGSTOP)
        time.sleep(0.02)  # let the stop land
        if not store_is_busy(url, job_key):
            return
        runner.send(signal.SIGCONT)
        time.sleep(0.003)
    raise AssertionError(f"pid {runner.pid} held the store lock every time it was stopped")
