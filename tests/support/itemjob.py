"""A small midway job in a real subprocess whose handler refuses chosen items.

The dashboard's tests use it to leave failed items (``max_failures``) or an in-doubt item
(``guarantee="at-most-once"``: an item whose handler raised may have taken effect) in a
store, then act on them through the page and run the job again. Each process appends the
items it handled to a log of its own, so a test can tell which run handled what. A test
can also hold a run before an item (:meth:`ItemJob.hold`) for as long as it needs to look.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from midway._model.identity import make_job_id
from midway.stores import open_store

SCRIPT = '''\
"""A midway job run by tests/support/itemjob.py; it refuses the items it is told to."""
import json
import os
import sys
import time

import midway
import midway.run.commits

cfg = json.loads(sys.argv[1])
# The history keeps a point every few seconds of a run; a short test run wants several.
midway.run.commits.HISTORY_SECONDS = cfg["history_seconds"]
refuse = set(cfg["refuse"])
hold = set(cfg["hold"])
log_fd = os.open(cfg["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)


def handle(item, ctx):
    if item in hold:
        while os.path.exists(f"hold-{item}"):
            time.sleep(0.01)
    os.write(log_fd, f"{item}\\n".encode())
    time.sleep(cfg["pause"])
    if item in refuse:
        raise ValueError(f"item {item} was refused on purpose")


job = midway.Job(
    cfg["name"],
    store=cfg["store"],
    every=cfg["every"],
    every_seconds=None,
    guarantee=cfg["guarantee"],
    max_failures=cfg["max_failures"],
    progress=False,
)
result = job.run(midway.sources.sequence(list(range(cfg["n"]))), handle)
print(json.dumps({"status": result.status, "succeeded": result.succeeded,
                  "failed": result.failed, "in_doubt": result.in_doubt}), flush=True)
'''


@dataclass
class ItemSpec:
    store: str
    name: str = "itemjob"
    n: int = 40
    refuse: list[int] = field(default_factory=list)  # the items whose handler raises
    hold: list[int] = field(default_factory=list)  # items that wait while hold-<item> exists
    pause: float = 0.0  # seconds per item
    every: int = 5
    guarantee: str = "at-least-once"
    max_failures: int | None = None  # None: the first refused item stops the job
    history_seconds: float = 0.2


class ItemJob:
    """The script in ``folder``; :meth:`start` and :meth:`run` take ItemSpec overrides."""

    def __init__(self, folder: Path, spec: ItemSpec) -> None:
        self.folder = folder
        self.spec = spec
        self.key = make_job_id(spec.name, None).key
        folder.mkdir(parents=True, exist_ok=True)
        self.script = folder / "itemjob_script.py"
        self.script.write_text(SCRIPT, encoding="utf-8")
        self.runs = 0
        self.started: list[subprocess.Popen[bytes]] = []

    def hold(self, item: int) -> None:
        """Runs wait before ``item`` (if the spec lists it in ``hold``) until release."""
        (self.folder / f"hold-{item}").touch()

    def release(self, item: int) -> None:
        (self.folder / f"hold-{item}").unlink()

    def wait_for(self, run: int, item: int, timeout: float = 30.0) -> None:
        """Until run number ``run`` has started to handle ``item``."""
        deadline = time.monotonic() + timeout
        while item not in self.handled(run):
            if time.monotonic() > deadline:
                raise AssertionError(f"run {run} did not reach item {item} in {timeout} s")
            time.sleep(0.01)

    def wait_for_checkpoint(self, timeout: float = 30.0) -> None:
        """Until the store holds a checkpoint of the job. With group commit the keeper
        thread commits it a moment after the run reached it: a test that kills the run and
        expects a resume must first see one on disk."""
        deadline = time.monotonic() + timeout
        while True:
            store = open_store(self.spec.store)
            try:
                if store.load_checkpoint(self.key) is not None:
                    return
            finally:
                store.close()
            if time.monotonic() > deadline:
                raise AssertionError(f"no checkpoint of {self.key} in {timeout} s")
            time.sleep(0.01)

    def log(self, run: int) -> Path:
        return self.folder / f"run-{run}.log"

    def handled(self, run: int) -> list[int]:
        """The items run number ``run`` (from 0) handled, in order."""
        path = self.log(run)
        return [int(line) for line in path.read_text().split()] if path.exists() else []

    def start(self, **overrides: Any) -> subprocess.Popen[bytes]:
        config = {**asdict(self.spec), **overrides, "log": str(self.log(self.runs))}
        self.runs += 1
        proc = subprocess.Popen(
            [sys.executable, str(self.script), json.dumps(config)],
            cwd=self.folder,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.started.append(proc)
        return proc

    def run(self, timeout: float = 60.0, **overrides: Any) -> subprocess.CompletedProcess[str]:
        proc = self.start(**overrides)
        out, err = proc.communicate(timeout=timeout)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out.decode(), err.decode())

    def stop_all(self) -> None:
        """SIGKILL what is still running (after a failed test)."""
        for proc in self.started:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
