"""A poison item's attempt count survives crashes: killed during each wait before a retry,
the job still gives the item ``attempts`` tries in all, neither more (retried for ever across
restarts) nor fewer, and then records it as failed and finishes the others. The poison item
is the first one (killed before any checkpoint exists: a fresh start must still carry its
count) or the eighth (after one, every=5)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from midway._model.ledger import RETRYING
from midway.stores import open_store
from support.crashjob import reap_runners

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import midway

    log = os.open(sys.argv[2], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)


    def handle(item, ctx):
        os.write(log, f"{item} {ctx.attempt}\\n".encode())
        if item == int(sys.argv[3]):
            raise TimeoutError("the API did not answer")


    retry = midway.Retry(attempts=4, on=(TimeoutError,), backoff=60, max_backoff=60)
    job = midway.Job("poison", store=sys.argv[1], every=5, retry=retry, max_failures=1,
                     progress=False)
    result = job.run(range(20), handle)
    print(json.dumps({"status": result.status, "failed": result.failed,
                      "succeeded": result.succeeded}))
    """
)
ATTEMPTS = 4


def calls(log: Path) -> list[tuple[int, int]]:
    if not log.exists():
        return []
    return [(int(a), int(b)) for a, b in (line.split() for line in log.read_text().splitlines())]


def recorded_attempts(store_url: str, poison: int) -> int:
    store = open_store(store_url)
    try:
        records = store.list_items("poison", (RETRYING,))
    finally:
        store.close()
    return max((r.attempts for r in records if r.key == poison), default=0)


@pytest.mark.parametrize("poison", [0, 7])
def test_killed_in_every_retry_wait_the_item_gets_its_attempts_and_no_more(
    store_url: str, tmp_path: Path, poison: int
) -> None:
    script, log = tmp_path / "poison.py", tmp_path / "calls.log"
    script.write_text(SCRIPT, encoding="utf-8")
    argv = [sys.executable, str(script), store_url, str(log), str(poison)]
    try:
        for attempt in range(1, ATTEMPTS):
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            deadline = time.monotonic() + 60
            # The attempt failed and its count is on disk: the runner now waits 60 s.
            while recorded_attempts(store_url, poison) < attempt:
                tries = [a for item, a in calls(log) if item == poison]
                assert tries == list(range(1, len(tries) + 1)), f"tries so far: {tries}"
                assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
                assert time.monotonic() < deadline, f"attempt {attempt} was never recorded"
                time.sleep(0.02)
            os.kill(proc.pid, 9)
            proc.wait()
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    finally:
        reap_runners()
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"status": "completed_with_failures", "failed": 1, "succeeded": 19}

    seen = calls(log)
    tries = [a for item, a in seen if item == poison]
    assert tries == [1, 2, 3, 4], tries  # each run went on from the count its killer left
    assert set(Counter(item for item, _ in seen)) == set(range(20))
    store = open_store(store_url)
    try:
        failed = store.list_items("poison", ("failed",))
        assert not store.list_items("poison", (RETRYING,))
    finally:
        store.close()
    assert [(r.key, r.attempts) for r in failed] == [(poison, ATTEMPTS)]
    assert "TimeoutError: the API did not answer" in (failed[0].error or "")
