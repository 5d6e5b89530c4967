"""Promise 6, one owner at a time, checked with real runner processes on every store.

- a live runner makes a second run fail at once (exit 3, naming the owner's pid);
- a SIGKILLed runner's lease is taken over at once on the same host (its pid is dead);
- another host's lease blocks until it expires, then is taken over;
- a runner paused past its lease (SIGSTOP) whose job was taken over meanwhile exits with
  LeaseLost (3) when it wakes, and writes no checkpoint after the takeover.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import midway
from midway._model.identity import make_job_id
from midway._model.owner import Owner, hostname
from midway.stores import open_store
from support.crashjob import CrashJob, Spec, clean_state, pause_between_writes, reap_runners

N = 1000


@pytest.fixture(autouse=True)
def _no_stray_runners() -> Iterator[None]:
    """A failed test must not leave its job processes running."""
    yield
    reap_runners()


def all_keys(n: int = N) -> list[str]:
    return [str(i) for i in range(n)]


def test_live_runner_refuses_a_second_and_a_killed_one_is_taken_over(
    store_url: str, tmp_path: Path
) -> None:
    job = CrashJob(
        tmp_path / "job", Spec(store=store_url, n=N, every=20, pause=0.01, lease_ttl=60.0)
    )
    # The first runner holds the lease and waits at its 5th item (while the hold file
    # exists) until it is killed: the second surely starts while the first runs.
    gate = tmp_path / "hold"
    gate.touch()
    first = job.start(hold_at=5, hold_file=str(gate))
    first.wait_for_keys(5)

    second = job.run(timeout=30)
    assert second.returncode == 3, second.stderr
    assert "LeaseHeld" in second.stderr, second.stderr
    assert f"pid {first.pid} on {hostname()}" in second.stderr, second.stderr
    assert "already running" in second.stderr, second.stderr
    assert second.keys == [], "a refused run handled items"
    assert second.seconds < 20, f"the refusal took {second.seconds:.1f} s"
    assert first.alive(), "the first runner should not be disturbed by the refused one"

    first.kill("by the test")
    killed = first.wait()
    assert killed.killed
    # The lease had ~60 s left, but its owner is a dead pid on this host: taken over at once.
    third = job.run(pause=0)
    assert third.returncode == 0, third.stderr
    assert f"took job 'crashjob' over from pid {first.pid}" in third.stderr, third.stderr
    assert "which is gone" in third.stderr, third.stderr
    start = third.processed_before
    assert third.keys == all_keys()[start:], third.stderr
    assert set(killed.keys) | set(third.keys) == set(all_keys())
    result = third.result
    assert result is not None
    assert result["status"] == "completed"
    assert result["counters"]["processed"] == N
    assert result["state"] == clean_state(range(N))


def test_another_hosts_lease_blocks_until_it_expires(store_url: str, tmp_path: Path) -> None:
    ttl = 1.5
    store = open_store(store_url)
    try:
        store.acquire_lease(make_job_id("crashjob", None), Owner("other-host", 12345, None), ttl)
        expires = time.time() + ttl
    finally:
        store.close()

    refused = midway.Job("crashjob", store=store_url, progress=False, quiet=True)
    with pytest.raises(midway.LeaseHeld) as caught:
        refused.run(range(10), lambda item, ctx: None)
    assert time.time() < expires, "the check came too late to mean anything"
    err = caught.value
    assert err.exit_code == 3
    assert "pid 12345 on other-host" in str(err)
    assert err.owner["host"] == "other-host"
    assert err.owner["pid"] == 12345

    time.sleep(max(0.0, expires - time.time()) + 0.1)
    job = CrashJob(tmp_path / "job", Spec(store=store_url, n=200, pause=0))
    after = job.run()
    assert after.returncode == 0, after.stderr
    assert "over from pid 12345 on other-host, which stopped renewing its lease" in after.stderr
    assert after.keys == all_keys(200)
    result = after.result
    assert result is not None
    assert result["status"] == "completed"
    assert result["counters"]["processed"] == 200


def test_paused_runner_that_lost_its_lease_writes_nothing(store_url: str, tmp_path: Path) -> None:
    ttl = 1.0
    job = CrashJob(tmp_path / "job", Spec(store=store_url, n=N, every=5, pause=0.01, lease_ttl=ttl))
    runner = job.start()
    runner.wait_for_keys(20)
    assert job.read_checkpoint() is not None, "the runner should have saved a checkpoint"

    pause_between_writes(runner, store_url, job.key)
    record = job.job_record()
    assert record is not None
    assert record.lease is not None
    assert record.lease.owner is not None
    assert record.lease.owner.pid == runner.pid
    expires = record.lease.expires_at

    job_id = make_job_id("crashjob", None)
    me = Owner.current()
    store = open_store(store_url)
    try:
        # A stopped process still looks alive on this host: its lease holds until it expires.
        if time.time() < expires - 0.1:
            with pytest.raises(midway.LeaseHeld):
                store.acquire_lease(job_id, me, 30.0)
        else:
            print("the paused runner's lease ran out before the early check could run")
        time.sleep(max(0.0, expires - time.time()) + 0.1)
        lease = store.acquire_lease(job_id, me, 30.0)
        assert lease.took_over is not None
        assert lease.took_over.owner is not None
        assert lease.took_over.owner.pid == runner.pid
        at_takeover = job.read_checkpoint()
        assert at_takeover is not None

        runner.send(signal.SIGCONT)
        woke = runner.wait(timeout=20)
        assert woke.returncode == 3, woke.stderr
        assert "LeaseLost" in woke.stderr, woke.stderr
        assert "lost its lease" in woke.stderr, woke.stderr
        now = job.read_checkpoint()
        assert now is not None
        assert (now.version, now.updated_at, now.counters, now.position) == (
            at_takeover.version,
            at_takeover.updated_at,
            at_takeover.counters,
            at_takeover.position,
        ), "the runner wrote a checkpoint after its lease was taken over"
        store.release_lease(lease)
    finally:
        store.close()

    # The job is intact: the next runner resumes at the last checkpoint and loses nothing.
    final = job.run(pause=0)
    assert final.returncode == 0, final.stderr
    assert "RESUMING" in final.stderr, final.stderr
    assert final.processed_before == at_takeover.counters.processed
    assert final.keys == all_keys()[final.processed_before :]
    result = final.result
    assert result is not None
    assert result["counters"]["processed"] == N
    assert result["state"] == clean_state(range(N))
