"""``workers=N``: threads, processes and coroutines, the watermark, merged state, the rate."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

import midway
from midway.run.workers import merge_state
from midway.stores import open_store


def slow_square(item: int, ctx: Any) -> None:
    """Module level, so a process pool can import it."""
    time.sleep(0.001)
    ctx.state["sum"] = item * item
    ctx.state["count"] = 1


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_workers_handle_every_item_once_and_merge_state(store_url: str, executor: str) -> None:
    job = midway.Job(
        f"par-{executor}",
        store=store_url,
        workers=4,
        executor=executor,
        every=25,
        progress=False,
        quiet=True,
    )
    result = job.run(range(300), slow_square, state={"sum": midway.Sum(), "count": midway.Sum()})
    assert result.status == "completed"
    assert result.succeeded == 300
    assert result.state == {"sum": sum(n * n for n in range(300)), "count": 300}


def test_threads_really_run_at_once(store_url: str) -> None:
    running, peak = 0, 0
    lock = threading.Lock()

    def handle(item: int, ctx: Any) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.01)
        with lock:
            running -= 1

    midway.Job("peak", store=store_url, workers=8, progress=False, quiet=True).run(
        range(80), handle
    )
    assert peak >= 4  # (8 on an idle machine)


def test_async_handlers_share_one_event_loop(store_url: str) -> None:
    loops: set[int] = set()

    async def handle(item: int, ctx: Any) -> None:
        loops.add(id(asyncio.get_running_loop()))
        await asyncio.sleep(0.002)
        ctx.state["items"] = [item]

    result = midway.Job(
        "async", store=store_url, workers=20, executor="async", progress=False, quiet=True
    ).run(range(100), handle, state={"items": midway.Append()})
    assert len(loops) == 1
    assert sorted(result.state["items"]) == list(range(100))


def test_failures_with_workers_go_to_the_ledger(store_url: str) -> None:
    def handle(item: int, ctx: Any) -> None:
        if item % 10 == 4:
            raise KeyError(item)
        if item % 10 == 6 and ctx.attempt == 1:
            raise TimeoutError("flaky")
        ctx.state["ok"] = 1

    job = midway.Job(
        "par-fail",
        store=store_url,
        workers=6,
        max_failures=0.5,
        progress=False,
        quiet=True,
        retry=midway.Retry(attempts=2, on=(TimeoutError,), backoff=0),
    )
    result = job.run(range(100), handle, state={"ok": midway.Sum()})
    assert (result.succeeded, result.failed) == (90, 10)
    assert result.state == {"ok": 90}
    assert result.status == "completed_with_failures"


def test_a_failure_without_tolerance_stops_at_the_watermark(store_url: str) -> None:
    def handle(item: int, ctx: Any) -> None:
        if item == 50:
            raise KeyError("broken")
        ctx.state["n"] = 1

    job = midway.Job("par-stop", store=store_url, workers=4, progress=False, quiet=True)
    with pytest.raises(KeyError):
        job.run(range(200), handle, state={"n": midway.Sum()})
    info = job.info()
    assert info is not None
    assert info.checkpoint is not None
    assert info.checkpoint.position == 50  # the watermark: item 50 is not done
    seen: list[int] = []
    result = midway.Job("par-stop", store=store_url, progress=False, quiet=True).run(
        range(200), lambda item, ctx: seen.append(item), state={"n": midway.Sum()}
    )
    # Items finished above the watermark are not handled again, even by a sequential run.
    assert seen[0] == 50
    assert len(seen) == len(set(seen))
    assert result.processed == 200


def test_rate_limit_paces_the_items(store_url: str) -> None:
    started = time.monotonic()
    midway.Job("paced", store=store_url, rate="200/s", progress=False, quiet=True).run(
        range(60), lambda item, ctx: None
    )
    assert time.monotonic() - started >= 60 / 200 * 0.8


def test_merge_rules_and_a_custom_merge(store_url: str) -> None:
    state: dict[str, Any] = {"n": 1, "names": ["a"], "by": {"x": 1}, "last": "a"}
    merge_state(state, {"n": 2, "names": ["b"], "by": {"x": 2, "y": 1}, "last": "b"})
    assert state == {"n": 3, "names": ["a", "b"], "by": {"x": 3, "y": 1}, "last": "b"}

    def keep_max(total: dict[str, Any], part: dict[str, Any]) -> None:
        total["max"] = max(total.get("max", 0), part["v"])

    result = midway.Job(
        "maxed", store=store_url, workers=3, merge=keep_max, progress=False, quiet=True
    ).run(range(50), lambda item, ctx: ctx.state.update(v=item))
    assert result.state == {"max": 49}


def test_worker_options_are_checked() -> None:
    with pytest.raises(midway.ConfigError):
        midway.Job("x", workers=0)
    with pytest.raises(midway.ConfigError):
        midway.Job("x", executor="fork")  # type: ignore[arg-type]
    with pytest.raises(midway.ConfigError):
        midway.Job("x", rate="fast")
    with pytest.raises(midway.ConfigError, match="one transaction"):
        midway.Job("x", workers=4, guarantee="exactly-once")
    midway.Job("x", workers=4, guarantee="at-most-once")  # each start is marked first
    with pytest.raises(midway.ConfigError):
        midway.Job("x", workers=4).loop([1])


def test_at_most_once_with_workers_marks_each_start_and_leaves_nothing(store_url: str) -> None:
    running, peak, calls = 0, 0, []
    lock = threading.Lock()
    marks: list[int] = []

    def handle(item: int, ctx: Any) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            calls.append(item)
        time.sleep(0.003)
        ctx.state["sum"] = item
        with lock:
            running -= 1

    job = midway.Job(
        "amo-par",
        store=store_url,
        workers=6,
        guarantee="at-most-once",
        progress=False,
        quiet=True,
        on_checkpoint=lambda info: marks.append(1),
    )
    result = job.run(range(200), handle, state={"sum": midway.Sum()})
    assert result.status == "completed"
    assert sorted(calls) == list(range(200))  # each once
    assert result.state == {"sum": sum(range(200))}
    assert 2 <= peak <= 6  # never more in flight than workers: each one marked first
    assert len(marks) <= 200 + 1  # a commit per start at most (fewer when several start)
    store = open_store(store_url)
    try:
        assert store.list_items(job.key, ("started", "done", "in_doubt")) == []
    finally:
        store.close()


def test_at_most_once_with_workers_an_item_that_raises_is_in_doubt(store_url: str) -> None:
    calls: list[int] = []

    def handle(item: int, ctx: Any) -> None:
        calls.append(item)
        time.sleep(0.001)
        if item == 40:
            raise ConnectionError("the mail server hung up mid-send")

    job = midway.Job("amo-raise", store=store_url, workers=4, guarantee="at-most-once", quiet=True)
    with pytest.raises(ConnectionError):
        job.run(range(100), handle)
    assert calls.count(40) == 1
    first = set(calls)
    calls.clear()
    result = job.run(range(100), handle)  # the in-doubt item is not sent again
    assert 40 not in calls
    assert first.isdisjoint(calls)  # nor anything the first run began
    assert sorted(first | set(calls)) == list(range(100))
    assert (result.status, result.in_doubt, result.succeeded) == ("completed_with_failures", 1, 99)
    store = open_store(store_url)
    try:
        doubtful = store.list_items(job.key, ("in_doubt",))
    finally:
        store.close()
    assert [r.key for r in doubtful] == [40]
    assert "mail server hung up" in (doubtful[0].error or "")
