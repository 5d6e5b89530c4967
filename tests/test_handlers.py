"""What a handler must be: ``async def`` handlers are awaited (or refused), never counted as
done un-run; ``executor="process"`` refuses handlers other processes cannot import."""

from __future__ import annotations

import asyncio
import functools
import warnings
from pathlib import Path
from typing import Any

import pytest

import midway


def store(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state.db'}"


async def count_async(item: int, ctx: Any, *, by: int = 1) -> None:
    await asyncio.sleep(0)
    ctx.state["handled"] = ctx.state.get("handled", 0) + by
    ctx.state.setdefault("order", []).append(item)


def returns_coroutine(item: int, ctx: Any) -> Any:
    """A plain function that returns a coroutine instead of running it."""
    return count_async(item, ctx)


class AsyncCallable:
    async def __call__(self, item: int, ctx: Any) -> None:
        await count_async(item, ctx)


def square(item: int, ctx: Any) -> None:
    """Module level: a process pool imports it by name."""
    ctx.state["sum"] = item * item


ASYNC_HANDLERS = {
    "async-def": count_async,
    "partial": functools.partial(count_async, by=1),
    "async-call": AsyncCallable(),
}


@pytest.mark.parametrize("kind", sorted(ASYNC_HANDLERS))
def test_an_async_handler_with_one_worker_is_awaited_item_by_item(
    tmp_path: Path, kind: str
) -> None:
    """Before: the coroutine was never awaited, and each item counted as succeeded."""
    job = midway.Job(f"async-{kind}", store=store(tmp_path), every=7, progress=False, quiet=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "coroutine ... was never awaited"
        result = job.run(range(30), ASYNC_HANDLERS[kind])
    assert result.status == "completed"
    assert result.succeeded == 30
    assert result.state == {"handled": 30, "order": list(range(30))}  # one at a time, in order


def test_a_handler_returning_a_coroutine_counts_nothing_as_done(tmp_path: Path) -> None:
    job = midway.Job("returns-coro", store=store(tmp_path), progress=False, quiet=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the coroutine is closed, not left un-awaited
        with pytest.raises(midway.ConfigError, match="returned an awaitable"):
            job.run(range(10), returns_coroutine)
    info = job.info()
    assert info is not None
    assert info.checkpoint is not None
    assert info.checkpoint.counters.processed == 0  # nothing counted as done
    assert info.checkpoint.state == {}


def test_a_handler_returning_a_coroutine_with_workers_stops_the_job(tmp_path: Path) -> None:
    job = midway.Job(
        "returns-coro-par", store=store(tmp_path), workers=4, progress=False, quiet=True
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(midway.ConfigError, match="returned an awaitable"):
            job.run(range(10), returns_coroutine)
    info = job.info()
    assert info is not None
    assert info.checkpoint is not None
    assert info.checkpoint.counters.processed == 0


def test_an_async_handler_with_thread_workers_is_refused_before_anything(tmp_path: Path) -> None:
    job = midway.Job("async-threads", store=store(tmp_path), workers=4, progress=False, quiet=True)
    with pytest.raises(midway.ConfigError, match="executor='async'"):
        job.run(range(10), AsyncCallable())
    assert job.info() is None  # refused before the store was written


def test_an_async_callable_object_runs_on_the_async_executor(tmp_path: Path) -> None:
    job = midway.Job(
        "async-obj", store=store(tmp_path), workers=4, executor="async", progress=False, quiet=True
    )
    # Before: refused, as only `async def` functions were recognised.
    result = job.run(
        range(40), AsyncCallable(), state={"handled": midway.Sum(), "order": midway.Append()}
    )
    assert result.succeeded == 40
    assert result.state["handled"] == 40
    assert sorted(result.state["order"]) == list(range(40))


def make_nested() -> Any:
    def nested(item: int, ctx: Any) -> None:
        ctx.state["sum"] = item

    return nested


@pytest.mark.parametrize(
    "handler",
    [
        lambda item, ctx: None,
        make_nested(),
        functools.partial(lambda item, ctx, k: None, k=1),
    ],
    ids=["lambda", "nested", "partial-of-lambda"],
)
def test_process_executor_refuses_a_handler_it_cannot_import(tmp_path: Path, handler: Any) -> None:
    """Before: a raw pickling error from the pool (or a hang), after the run had begun."""
    job = midway.Job(
        "proc-lambda", store=store(tmp_path), workers=2, executor="process", progress=False
    )
    with pytest.raises(midway.ConfigError, match="top level of a module"):
        job.run(range(10), handler)
    assert job.info() is None  # refused before the first item, nothing written


def test_process_executor_takes_a_module_level_function(tmp_path: Path) -> None:
    job = midway.Job(
        "proc-ok", store=store(tmp_path), workers=2, executor="process", progress=False, quiet=True
    )
    result = job.run(range(20), functools.partial(square), state={"sum": midway.Sum()})
    assert result.succeeded == 20
    assert result.state == {"sum": sum(n * n for n in range(20))}


def bad_csv(tmp_path: Path) -> Path:
    path = tmp_path / "people.csv"
    path.write_bytes(b"id,name\n1,Ada\n2,Bob,extra\n3,Cy\n4,Dan,x,y\n5,Eve\n")
    return path


def test_a_loop_with_max_failures_records_unreadable_records_and_goes_on(tmp_path: Path) -> None:
    """Before: loop() refused max_failures, so every run stopped at the same bad record."""
    job = midway.Job("loop-bad", store=store(tmp_path), max_failures=2, progress=False, quiet=True)
    loop = job.loop(midway.sources.csv(bad_csv(tmp_path), key="id"), state={"n": 0})
    seen = []
    for row in loop:
        seen.append(row["id"])
        loop.state["n"] += 1
    assert seen == ["1", "3", "5"]  # the unreadable records never reach the body
    result = loop.result
    assert result is not None
    assert (result.status, result.succeeded, result.failed) == ("completed_with_failures", 3, 2)
    assert result.state == {"n": 3}
    from midway.stores import open_store

    opened = open_store(store(tmp_path))
    try:
        failed = opened.list_items(job.key, ("failed",))
    finally:
        opened.close()
    assert len(failed) == 2
    assert all("SourceError" in (r.error or "") for r in failed)


def test_a_loop_stops_when_more_records_are_unreadable_than_tolerated(tmp_path: Path) -> None:
    job = midway.Job("loop-bad2", store=store(tmp_path), max_failures=1, progress=False, quiet=True)
    with pytest.raises(midway.TooManyFailures):
        for _ in job.loop(midway.sources.csv(bad_csv(tmp_path), key="id")):
            pass


def test_a_loop_skips_unreadable_records_with_skip_on(tmp_path: Path) -> None:
    job = midway.Job(
        "loop-skip", store=store(tmp_path), skip_on=midway.SourceError, progress=False, quiet=True
    )
    loop = job.loop(midway.sources.csv(bad_csv(tmp_path), key="id"))
    assert [row["id"] for row in loop] == ["1", "3", "5"]
    assert loop.result is not None
    assert (loop.result.skipped, loop.result.succeeded) == (2, 3)


def test_an_exception_from_the_loop_body_still_stops_the_loop(tmp_path: Path) -> None:
    job = midway.Job("loop-body", store=store(tmp_path), max_failures=5, progress=False, quiet=True)
    seen = []

    def body() -> None:
        for row in job.loop(midway.sources.csv(bad_csv(tmp_path), key="id")):
            seen.append(row["id"])
            if row["id"] == "3":
                raise KeyError("the body's own error")

    with pytest.raises(KeyError):
        body()
    assert seen == ["1", "3"]
    info = job.info()
    assert info is not None
    assert info.checkpoint is not None
    assert info.checkpoint.counters.failed == 1  # record 2; the body's item 3 is not done


def test_a_loop_still_refuses_retry(tmp_path: Path) -> None:
    job = midway.Job("loop-retry", store=store(tmp_path), retry=midway.Retry(attempts=2))
    with pytest.raises(midway.ConfigError, match="retry="):
        job.loop([1, 2])
