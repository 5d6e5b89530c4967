"""``executor="process"``: the pool's worker processes end with the run's process.

A run SIGKILLed while its workers handle items leaves them orphaned; they used to finish
the item in hand and then wait for work forever, one process per worker, each still able
to act on an item after a new run had taken the job over. Now each worker watches its
parent and exits once it is gone. The test kills the run once both workers are inside an
item that would take a minute (counted by the items they logged, not by a delay)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    import midway

    LOG = sys.argv[2]

    def handle(item, ctx):
        with open(LOG, "a") as log:
            log.write(f"{os.getpid()} {item}\\n")
        time.sleep(60)

    if __name__ == "__main__":
        job = midway.Job("pool", store=sys.argv[1], workers=2, executor="process", quiet=True)
        job.run(range(10), handle)
    """
)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is gone for our purpose
        return stat.read().split(")")[-1].split()[0] != "Z"


def test_workers_end_when_the_run_is_killed(tmp_path: Path) -> None:
    script, log = tmp_path / "pooljob.py", tmp_path / "calls.log"
    script.write_text(SCRIPT)
    log.touch()
    run = subprocess.Popen(
        [sys.executable, str(script), f"sqlite:///{tmp_path / 's.db'}", str(log)]
    )
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 60
        while len(workers) < 2:
            assert time.monotonic() < deadline, "the two workers never started an item"
            assert run.poll() is None, "the run ended before it was killed"
            workers = {int(line.split()[0]) for line in log.read_text().splitlines()}
            time.sleep(0.05)
        assert all(alive(pid) for pid in workers)
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=30)
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = [pid for pid in workers if alive(pid)]
        assert not left, f"worker processes {left} outlived the run that started them"
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        for pid in workers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
