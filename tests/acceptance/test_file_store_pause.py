"""A runner paused (SIGSTOP) at any moment holds up nobody on the file store.

The README promises a takeover ``lease_ttl`` seconds after the last heartbeat. The file
store's lease holder used to write under the job folder's flock: a runner stopped inside a
write made every other runner wait 30 s and fail ("stayed locked by another process").

Each case pauses an ``every=1`` file-store job (a write per item) either after a random
number of handled items (wherever it is then) or, through the fault point
``file.before_rename`` with the ``stop`` action, inside a write: its temporary file complete,
its rename not done. A new runner must then take over as soon as the lease expires and
complete the job; the old runner, woken, must exit with LeaseLost (3) and write nothing.
"""

from __future__ import annotations

import hashlib
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from midway.stores import open_store
from support.crashjob import CrashJob, Runner, Spec, clean_state, pick_seed, reap_runners

N = 200
TTL = 2.0
SLACK = 15.0  # seconds past the lease's expiry the new runner may take (under CPU load)


@pytest.fixture(autouse=True)
def _no_stray_runners() -> Iterator[None]:
    yield
    reap_runners()


def stopped(runner: Runner) -> bool:
    """The process is in the stopped state (``T`` in /proc/<pid>/stat)."""
    stat = Path(f"/proc/{runner.pid}/stat").read_text()
    return stat.rpartition(")")[2].split()[0] in ("T", "t")


def wait_stopped(runner: Runner, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not stopped(runner):
        assert runner.alive(), f"the runner ended before it stopped: {runner.stderr()[-2000:]}"
        assert time.monotonic() < deadline, f"pid {runner.pid} did not stop in {timeout} s"
        time.sleep(0.005)


def snapshot(root: Path) -> dict[str, str]:
    """Every file of the store but the job's lock, by its path and a digest of its bytes."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name != "lock"
    }


def lease_expiry(url: str, job: str) -> float:
    store = open_store(url)
    try:
        record = store.get_job(job)
    finally:
        store.close()
    assert record is not None
    assert record.lease is not None
    return record.lease.expires_at


CASES = [("after-items", i) for i in range(3)] + [("inside-a-write", i) for i in range(3)]


@pytest.mark.parametrize(("where", "case"), CASES)
def test_a_paused_runner_is_taken_over_and_writes_nothing_when_woken(
    where: str, case: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed = pick_seed()
    rng = random.Random(seed)
    print(f"seed {seed} (MIDWAY_TEST_SEED={seed} replays it), {where}")
    root = tmp_path / "store"
    url = f"file://{root}"
    job = CrashJob(tmp_path / "job", Spec(store=url, n=N, every=1, pause=0.002, lease_ttl=TTL))
    if where == "inside-a-write":
        # Past the lease's first writes (lease, job, run record): a checkpoint's rename.
        monkeypatch.setenv("MIDWAY_FAULTS", f"file.before_rename@{rng.randint(8, 150)}:stop")
        old = job.start()
        monkeypatch.delenv("MIDWAY_FAULTS")
    else:
        old = job.start()
        old.wait_for_keys(rng.randint(5, 150))
        old.send(signal.SIGSTOP)
    wait_stopped(old)
    handled_by_old = old.keys()
    assert len(handled_by_old) < N, "the job ended before the pause"

    expires = lease_expiry(url, job.key)
    assert expires <= time.time() + TTL + 0.5
    time.sleep(max(0.0, expires - time.time()) + 0.05)
    new = job.start()
    took = new.wait(timeout=60)
    finished = time.time()
    print(f"the new runner finished {finished - expires:.1f} s after the lease expired")
    assert took.returncode == 0, took.stderr
    assert f"took job 'crashjob' over from pid {old.pid}" in took.stderr, took.stderr
    assert finished - expires < SLACK, (
        f"the new runner finished {finished - expires:.1f} s after the lease expired"
    )
    result = took.result
    assert result is not None
    assert result["status"] == "completed"
    assert result["counters"]["processed"] == N
    assert result["state"] == clean_state(range(N))
    after_takeover = snapshot(root)

    old.send(signal.SIGCONT)
    woke = old.wait(timeout=60)
    assert woke.returncode == 3, woke.stderr
    assert "LeaseLost" in woke.stderr, woke.stderr
    assert snapshot(root) == after_takeover, "the woken runner changed the store"
    store = open_store(url)
    try:
        record = store.get_job(job.key)
    finally:
        store.close()
    assert record is not None
    assert record.status == "completed"
    assert record.checkpoint is None
