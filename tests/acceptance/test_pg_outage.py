"""PostgreSQL goes away under a running job: its sessions are terminated, the server is
restarted, or it stays out of reach for longer than the store retries. The job either
carries on or stops with ``StoreUnavailable`` (exit 3) and its last checkpoint intact; run
again until it completes, every item is handled, none is lost, and the state is exactly that
of one clean pass (promises 1 and 2 on a flaky store)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.crashjob import CrashJob, Outcome, Spec, clean_state, reap_runners
from support.pg import PgServer
from support.pgproxy import CutProxy

N = 1500


@pytest.fixture(autouse=True)
def _no_stray_runners() -> Iterator[None]:
    yield
    reap_runners()


def finish_and_check(job: CrashJob, outcomes: list[Outcome], what: str) -> None:
    """Run ``job`` again after each exit 3 until it completes; check every item once."""
    while outcomes[-1].returncode != 0 and len(outcomes) < 5:
        last = outcomes[-1]
        assert last.returncode == 3, f"{last.describe()}\n{last.stderr}"
        assert "StoreUnavailable" in last.stderr, last.stderr
        outcomes.append(job.run(timeout=120))
    report = "\n".join(o.describe() for o in outcomes)
    print(f"{what}:\n{report}")
    final = outcomes[-1]
    assert final.returncode == 0, f"{report}\n{final.stderr}"
    # Each run went on exactly where the checkpoint before it said, in order.
    handled: set[int] = set()
    for outcome in outcomes:
        start = outcome.processed_before
        assert outcome.keys == [str(k) for k in range(start, start + len(outcome.keys))], report
        handled.update(int(k) for k in outcome.keys)
    assert handled == set(range(N)), f"items never handled: {sorted(set(range(N)) - handled)}"
    result = final.result
    assert result is not None, final.stdout
    assert result["status"] == "completed"
    assert result["counters"]["processed"] == N
    assert result["counters"]["succeeded"] == N
    assert result["state"] == clean_state(range(N)), "the state counts an item twice or not"
    record = job.job_record()
    assert record is not None
    assert record.status == "completed"
    assert record.checkpoint is None


@pytest.mark.parametrize("how", ["terminate", "restart"])
def test_a_job_outlives_postgresql_dropping_its_connections(
    pg_server: PgServer, postgresql_url: str, tmp_path: Path, how: str
) -> None:
    if how == "restart" and not pg_server.ours:
        why = "restarting the server needs the throwaway one: unset MIDWAY_TEST_POSTGRES_URL"
        if os.environ.get("CI"):
            pytest.fail(why)  # in CI every PostgreSQL test runs
        pytest.skip(why)
    job = CrashJob(tmp_path / "job", Spec(store=postgresql_url, n=N, every=10, pause=0.002))
    # It waits at item 1,000 until the cuts are done: it cannot finish before them.
    gate = tmp_path / "hold"
    gate.touch()
    runner = job.start(hold_at=1000, hold_file=str(gate))
    cuts = 0
    runner.wait_for_keys(100)
    for _ in range(3):
        if not runner.alive():
            break
        if how == "restart":
            pg_server.restart()
        else:
            pg_server.terminate(postgresql_url)
        cuts += 1
        runner.wait_for_keys(runner.count() + 150)
    gate.unlink()
    outcomes = [runner.wait(120)]
    assert cuts >= 2, f"the job ended before the store could be cut: {outcomes[0].describe()}"
    finish_and_check(job, outcomes, f"{how} x{cuts}")


def test_a_long_outage_stops_the_job_with_exit_3_and_it_resumes(
    pg_server: PgServer, postgresql_url: str, tmp_path: Path
) -> None:
    proxy = CutProxy(pg_server.admin_url)
    try:
        url = proxy.url(postgresql_url) + "&midway_retry_seconds=1"
        job = CrashJob(tmp_path / "job", Spec(store=url, n=N, every=10, pause=0.002))
        runner = job.start()
        runner.wait_for_keys(300)
        proxy.down = True
        proxy.cut_all()
        cut_at = time.monotonic()
        while runner.alive() and time.monotonic() - cut_at < 60:
            time.sleep(0.01)
        gave_up_after = time.monotonic() - cut_at
        proxy.down = False  # reachable again: the test reads the store through it
        first = runner.wait(10)
        assert first.returncode == 3, f"{first.describe()}\n{first.stderr}"
        assert gave_up_after < 10, f"gave up only after {gave_up_after:.1f} s"
        assert "lost the connection to store" in first.stderr, first.stderr
        assert "the last checkpoint stands" in first.stderr
        saved = first.checkpoint_after
        assert saved is not None, "the checkpoints written before the outage were lost"
        assert 0 < saved.counters.processed <= len(first.keys)
        finish_and_check(job, [first], f"outage, gave up after {gave_up_after:.1f} s")
    finally:
        proxy.close()
