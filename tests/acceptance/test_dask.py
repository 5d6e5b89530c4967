"""``job.run(source, handler, distributed=client)`` on a real Dask ``LocalCluster`` of three
worker processes, with the store on PostgreSQL: one Dask worker process is SIGKILLed
mid-partition (Dask runs its task again, midway's lease hands the partition over from its
last checkpoint), and one partition's task is run twice at once (the fence refuses the
stalled copy's late writes)."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import midway
from midway.stores import open_store
from midway.views import overview
from support.crashjob import pick_seed
from support.daskhandler import FailingHandler, LoggingHandler
from support.killer import LineCounter

distributed = pytest.importorskip("distributed")

N, EVERY, PARTITIONS = 1500, 20, 6


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    cluster = distributed.LocalCluster(
        n_workers=3,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        host="127.0.0.1",
    )
    dask_client = distributed.Client(cluster)
    try:
        yield dask_client
    finally:
        dask_client.close()
        cluster.close()


def spread(store_url: str, name: str = "spread", **options: Any) -> midway.Job:
    # max_lag=0: a moved partition redoes at most one interval, however slow the commits
    settings: dict[str, Any] = {
        "partitions": PARTITIONS,
        "every": EVERY,
        "max_lag": 0,
        "lease_ttl": 1.0,
        "progress": False,
        "quiet": True,
    }
    return midway.Job(name, store=store_url, **(settings | options))


class Submitted(threading.Thread):
    """``job.run(..., distributed=client)`` on a thread of the test, as a user's script
    calls it; the test watches the log and kills meanwhile."""

    def __init__(self, job: midway.Job, handler: Any, client: Any) -> None:
        super().__init__(daemon=True)
        self.job, self.handler, self.client = job, handler, client
        self.result: midway.RunResult | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.job.run(range(N), self.handler, distributed=self.client)
        except BaseException as exc:
            self.error = exc

    def outcome(self, timeout: float = 60) -> midway.RunResult:
        self.join(timeout)
        assert not self.is_alive(), "the job did not finish"
        assert self.error is None, self.error
        assert self.result is not None
        return self.result


def calls_of(log: Path) -> list[tuple[int, int]]:
    return [(int(a), int(b)) for a, b in (line.split() for line in log.read_text().splitlines())]


def whole_job_row(store_url: str) -> dict[str, Any]:
    store = open_store(store_url)
    try:
        rows = [row.to_json() for row in overview.status_rows(store)]
    finally:
        store.close()
    return next(r for r in rows if r["job"] == "spread")


def test_a_killed_dask_worker_loses_nothing_and_redoes_one_interval(
    client: Any, postgresql_url: str, tmp_path: Path
) -> None:
    seed = pick_seed()
    kill_at = random.Random(seed).randrange(150, 900)
    why = f"seed {seed}: kill at item {kill_at}"
    log = tmp_path / "calls.log"
    counter = LineCounter(log)
    submitted = Submitted(spread(postgresql_url), LoggingHandler(log), client)
    submitted.start()
    deadline = time.monotonic() + 60
    while counter.count() < kill_at:
        assert time.monotonic() < deadline, why
        assert submitted.is_alive(), why
        time.sleep(0.005)
    victim = calls_of(log)[-1][1]  # the Dask worker process that handled the last item
    os.kill(victim, signal.SIGKILL)
    # `midway status` meanwhile: the whole job, running, split into its partitions.
    row = whole_job_row(postgresql_url)
    assert row["status"] == "running", (row, why)
    assert row["partitions"]["planned"] == PARTITIONS, (row, why)
    result = submitted.outcome()

    items = list(range(N))
    assert result.status == "completed", (result, why)
    assert result.processed == N, (result, why)
    assert result.state == {"count": N, "sum": sum(items)}, (result, why)  # each item once
    assert result.partition_errors == {}, why
    calls = Counter(item for item, _ in calls_of(log))
    assert set(calls) == set(items), why  # nothing lost, nothing from outside the input
    extra = sum(calls.values()) - N
    print(f"dask: {extra} calls redone after killing pid {victim} ({why})")
    assert victim in {pid for _, pid in calls_of(log)}
    # One partition moved: it redoes at most one interval (max_lag=0), the item in hand
    # included; the bound allows two.
    assert extra <= 2 * EVERY, (extra, why)
    assert whole_job_row(postgresql_url)["status"] == "completed", why


def test_a_partition_that_fails_for_good_is_named_in_the_result(
    client: Any, postgresql_url: str, tmp_path: Path
) -> None:
    job = spread(postgresql_url, "bad")
    bad = 777  # in partition 3 of 6
    result = job.run(range(N), FailingHandler(tmp_path / "calls.log", bad), distributed=client)
    assert result.status == "failed", result
    assert list(result.partition_errors) == ["bad~p3of6"], result.partition_errors
    assert "ValueError: item 777 is bad" in result.partition_errors["bad~p3of6"]
    # The other partitions completed; the failed one kept its checkpoint before the item.
    assert result.processed == N - N // PARTITIONS, result


def test_a_task_run_twice_at_once_is_fenced(
    client: Any, postgresql_url: str, tmp_path: Path
) -> None:
    """Dask may run a task twice (a worker it took for lost comes back): here one
    partition's task is submitted twice at once. One copy runs while the other waits for
    the lease; the running one is SIGSTOPped past its lease, the waiting one takes the
    partition over from its checkpoint and completes it, and when the stopped one wakes
    the fence refuses its late writes: the partition's state counts each item once."""
    from midway.distributed.dask import partition_task
    from midway.distributed.plan import planned_partitions
    from midway.sources._input import as_source

    log = tmp_path / "calls.log"
    counter = LineCounter(log)
    job = spread(postgresql_url, "twice", every=10)
    source = as_source(range(600))
    store = open_store(postgresql_url)
    try:
        parts, _ = planned_partitions(store, job, source)
    finally:
        store.close()
    index = 2  # items 200..299
    runner = job._partition_runner(LoggingHandler(log, pause=0.01), None)
    args = (partition_task, job, parts[index], index, PARTITIONS, runner)
    copies = [client.submit(*args, pure=False) for _ in range(2)]
    deadline = time.monotonic() + 30
    while counter.count() < 30:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    stalled = calls_of(log)[-1][1]
    os.kill(stalled, signal.SIGSTOP)
    try:
        # Past the 1 s lease, the other copy takes over and completes the partition.
        while not _completed(postgresql_url, f"twice~p{index}of{PARTITIONS}"):
            assert time.monotonic() < deadline + 30
            time.sleep(0.05)
    finally:
        os.kill(stalled, signal.SIGCONT)
    results = [c.result(timeout=30) for c in copies]
    lost = [r for r in results if r["lost"]]
    assert len(lost) == 1, results  # the stalled copy: its late checkpoint was refused
    assert "lost its lease" in lost[0]["lost"][0], lost
    store = open_store(postgresql_url)
    try:
        record = store.get_job(f"twice~p{index}of{PARTITIONS}")
    finally:
        store.close()
    assert record is not None
    assert record.status == "completed", record
    summary = record.summary or {}
    items = range(200, 300)
    assert summary.get("state") == {"count": 100, "sum": sum(items)}, summary  # each item once
    calls = calls_of(log)
    assert {item for item, _ in calls} == set(items)
    assert len({pid for _, pid in calls}) == 2  # both copies handled items
    extra = len(calls) - 100
    # the taken-over interval, and what the stalled copy handled after waking before its
    # checkpoint met the fence: one interval each, and the items in hand
    assert extra <= 2 * 10 + 2, extra


def _completed(store_url: str, key: str) -> bool:
    store = open_store(store_url)
    try:
        record = store.get_job(key)
        return record is not None and record.status == "completed"
    finally:
        store.close()


def test_distributed_takes_true_false_or_a_dask_client(tmp_path: Path) -> None:
    job = midway.Job("odd", store=f"sqlite:///{tmp_path / 'state.db'}", partitions=2)
    with pytest.raises(midway.ConfigError, match=r"True, False or a dask\.distributed\.Client"):
        job.run(range(4), LoggingHandler(tmp_path / "calls.log"), distributed="yes")
    assert not (tmp_path / "calls.log").exists()  # refused before the first item
