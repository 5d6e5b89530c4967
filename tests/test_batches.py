"""``batch=N``: lists to the handler, one unit of work each; ``ctx.keys`` / ``fail`` / ``skip``
to the ledger; a raising batch retried, split, or stopping the job; the options refused."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import midway
from midway import Context, sources
from midway.cli.app import cli
from support.ledgers import ledger

FAST = midway.Retry(attempts=2, on=(Exception,), backoff=0)


def job_for(store_url: str, name: str = "batches", **options: Any) -> midway.Job:
    options.setdefault("every", 10)
    options.setdefault("every_seconds", None)
    return midway.Job(name, store=store_url, quiet=True, progress=False, **options)


def numbers(n: int) -> Any:
    return sources.sequence(list(range(n)), key=lambda x: x)


class Poison(Exception):
    pass


def test_the_handler_gets_lists_and_counters_are_in_items(store_url: str) -> None:
    seen: list[list[int]] = []

    def handle(items: list[int], ctx: Context) -> None:
        assert ctx.keys == items
        seen.append(list(items))
        ctx.state["n"] = ctx.state.get("n", 0) + len(items)

    result = job_for(store_url).run(numbers(250), handle, batch=100)
    assert [len(s) for s in seen] == [100, 100, 50]
    assert [x for s in seen for x in s] == list(range(250))
    assert (result.status, result.processed, result.succeeded) == ("completed", 250, 250)
    assert result.state == {"n": 250}


def test_every_is_rounded_up_to_whole_batches(tmp_path: Path) -> None:
    job = job_for(f"sqlite:///{tmp_path}/s.db", every=30)
    assert job.batched(100, None).every == 100
    assert job.batched(7, None).every == 35
    assert job.every == 30  # the job itself is unchanged


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"batch": 0}, "batch=0"),
        ({"batch": True}, "batch=True"),
        ({"batch": 2.5}, "batch=2.5"),
        ({"batch_seconds": 1.0}, "needs batch=N"),
        ({"batch": 10, "batch_seconds": 0}, "batch_seconds=0"),
        ({"batch": 10, "batch_seconds": -1}, "batch_seconds=-1"),
    ],
)
def test_bad_batch_options_are_refused_before_anything_is_written(
    tmp_path: Path, options: dict[str, Any], words: str
) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    calls: list[Any] = []
    with pytest.raises(midway.ConfigError, match=words.replace("=", "=").replace(".", r"\.")):
        job_for(url).run(range(5), lambda items, ctx: calls.append(items), **options)
    with pytest.raises(midway.ConfigError):
        job_for(url).loop(range(5), **options)
    assert calls == []
    assert not (tmp_path / "s.db").exists()


def test_fail_and_skip_go_to_the_ledger_with_the_item_and_reason(store_url: str) -> None:
    def handle(items: list[int], ctx: Context) -> None:
        for key in ctx.keys:
            if key % 10 == 3:
                ctx.fail(key, ValueError(f"rejected {key}"))
            elif key % 10 == 7:
                ctx.skip(key, "duplicate")

    result = job_for(store_url, max_failures=0.5).run(numbers(100), handle, batch=25)
    assert (result.status, result.succeeded, result.failed, result.skipped) == (
        "completed_with_failures",
        80,
        10,
        10,
    )
    failed = ledger(store_url, "batches", "failed")
    assert set(failed) == {n for n in range(100) if n % 10 == 3}
    assert failed[43].error == "ValueError: rejected 43"
    assert failed[43].item == 43
    skipped = ledger(store_url, "batches", "skipped")
    assert set(skipped) == {n for n in range(100) if n % 10 == 7}
    assert skipped[17].error == "duplicate"


def test_midway_retry_hands_only_the_failed_records_as_a_smaller_batch(store_url: str) -> None:
    def rejecting(items: list[int], ctx: Context) -> None:
        for key in ctx.keys:
            if key % 10 == 3:
                ctx.fail(key, "invalid e-mail")

    job_for(store_url, max_failures=0.5).run(numbers(100), rejecting, batch=30)
    out = CliRunner().invoke(cli, ["retry", "batches", "--store", store_url])
    assert out.exit_code == 0, out.output
    seen: list[list[int]] = []
    result = job_for(store_url, max_failures=0.5).run(
        numbers(100), lambda items, ctx: seen.append(list(items)), batch=30
    )
    assert len(seen) == 1
    assert sorted(seen[0]) == [3, 13, 23, 33, 43, 53, 63, 73, 83, 93]
    assert (result.status, result.succeeded, result.failed) == ("completed", 100, 0)
    assert not ledger(store_url, "batches", "failed", "retry")


def test_max_failures_counts_records(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/s.db"

    def rejecting(items: list[int], ctx: Context) -> None:
        for key in ctx.keys[:5]:
            ctx.fail(key, "no")

    with pytest.raises(midway.TooManyFailures):
        job_for(url, max_failures=12).run(numbers(100), rejecting, batch=10)
    info = job_for(url).info()
    assert info is not None
    assert info.checkpoint is not None
    assert info.checkpoint.counters.failed == 15  # stopped after the third batch
    assert info.checkpoint.counters.processed == 30


def test_ctx_fail_is_refused_outside_a_batch_and_for_a_key_not_in_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    errors: list[str] = []

    def per_item(item: int, ctx: Context) -> None:
        for call in (lambda: ctx.keys, lambda: ctx.fail(item, "x"), lambda: ctx.skip(item)):
            try:
                call()
            except midway.MidwayError as exc:
                errors.append(str(exc))

    job_for(url, "items").run(range(1), per_item)
    assert len(errors) == 3
    assert all("batch=N" in e for e in errors)

    def wrong_key(items: list[int], ctx: Context) -> None:
        ctx.fail(999, "nope")

    with pytest.raises(midway.MidwayError, match="999"):
        job_for(url).run(numbers(5), wrong_key, batch=5)
    loop = job_for(url, "after").loop(range(3), batch=2)
    for _ in loop:
        pass
    with pytest.raises(midway.MidwayError, match="batch"):
        loop.ctx.fail(0, "after the loop")


def test_outcomes_of_a_batch_that_raised_leave_no_trace(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/s.db"

    def fails_then_raises(items: list[int], ctx: Context) -> None:
        ctx.fail(ctx.keys[0], "staged")
        if 5 in items:
            raise Poison("the call failed")

    with pytest.raises(Poison):
        job_for(url).run(numbers(20), fails_then_raises, batch=5)
    assert set(ledger(url, "batches", "failed")) == {0}
    info = job_for(url).info()
    assert info is not None
    assert info.checkpoint is not None
    assert info.checkpoint.counters.processed == 5  # stopped at the batch that raised


def test_without_a_policy_a_raising_batch_stops_the_job_and_comes_back_whole(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    seen: list[list[int]] = []

    def handle(items: list[int], ctx: Context) -> None:
        if 42 in items and len(seen) < 100:
            seen.append(list(items))
            raise Poison("42")
        seen.append(list(items))

    with pytest.raises(Poison):
        job_for(url, every=1).run(numbers(100), handle, batch=30)
    assert seen[-1] == list(range(30, 60))
    seen.clear()
    job_for(url, every=1).run(numbers(100), lambda items, ctx: seen.append(list(items)), batch=30)
    assert seen == [list(range(30, 60)), list(range(60, 90)), list(range(90, 100))]


def test_a_poison_record_is_isolated_by_halving_and_fails_alone(store_url: str) -> None:
    calls: list[int] = []
    written: list[int] = []

    def handle(items: list[int], ctx: Context) -> None:
        calls.append(len(items))
        if 37 in items:
            raise Poison("record 37 breaks the call")
        written.extend(items)

    result = job_for(store_url, retry=FAST, max_failures=5).run(numbers(100), handle, batch=100)
    assert (result.succeeded, result.failed) == (99, 1)
    assert sorted(written) == [n for n in range(100) if n != 37]
    assert calls[:2] == [100, 100]  # retried whole first
    assert len(calls) <= 2 + 2 * 7
    assert set(ledger(store_url, "batches", "failed")) == {37}


def test_a_records_attempts_count_the_calls_that_included_it(tmp_path: Path) -> None:
    """The ledger's attempts of a record are the handler calls it was in: ``ctx.fail`` on
    the second try of a batch says 2; a poison record found by halving after two tries of
    its batch of 8 was in 2 + 3 calls (8 twice, then 4, 2 and itself)."""
    url = f"sqlite:///{tmp_path}/s.db"

    def handle(items: list[int], ctx: Context) -> None:
        if ctx.attempt == 1 and 0 in items:
            raise ValueError("the CRM timed out")  # the first batch: retried
        if 0 in items:
            ctx.fail(0, "rejected on the second try")
        if 13 in items:
            raise Poison("record 13 breaks the call")

    job = job_for(url, retry=FAST, max_failures=5)
    result = job.run(numbers(16), handle, batch=8)
    assert (result.succeeded, result.failed) == (14, 2)
    attempts = {r.key: r.attempts for r in job.items("failed")}
    assert attempts == {0: 2, 13: 5}


def test_skip_on_isolates_the_record_and_records_it_skipped(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/s.db"

    def handle(items: list[int], ctx: Context) -> None:
        if 5 in items or 6 in items:
            raise ValueError("bad record")

    result = job_for(url, skip_on=ValueError).run(numbers(16), handle, batch=8)
    assert (result.succeeded, result.skipped) == (14, 2)
    assert set(ledger(url, "batches", "skipped")) == {5, 6}


def test_at_most_once_a_raising_batch_is_in_doubt_and_stops(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    seen: list[int] = []

    def handle(items: list[int], ctx: Context) -> None:
        seen.extend(items)
        if 12 in items:
            raise Poison("mail server said no")

    job = job_for(url, guarantee="at-most-once")
    with pytest.raises(Poison):
        job.run(numbers(30), handle, batch=5)
    assert set(ledger(url, "batches", "in_doubt")) == set(range(10, 15))
    job.run(numbers(30), handle, batch=5)
    assert sorted(seen) == list(range(30))  # nothing ran twice


def test_loop_yields_lists_and_its_ctx_records_outcomes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    job = job_for(url, max_failures=10)
    loop = job.loop(numbers(10), batch=4)
    got: list[list[int]] = []
    for items in loop:
        got.append(items)
        loop.ctx.fail(loop.ctx.keys[-1], "last one")
    assert got == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert loop.result is not None
    assert loop.result.failed == 3
    assert set(ledger(url, "batches", "failed")) == {3, 7, 9}


def test_a_loop_left_inside_a_batch_redoes_that_batch_whole(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    for items in job_for(url, every=1).loop(numbers(10), batch=3):
        if 4 in items:
            break
    got = list(job_for(url, every=1).loop(numbers(10), batch=3))
    assert got == [[3, 4, 5], [6, 7, 8], [9]]


def test_a_crash_resumes_at_a_batch_boundary_from_a_csv(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("id\n" + "".join(f"{i}\n" for i in range(50)), encoding="utf-8")
    url = f"sqlite:///{tmp_path}/s.db"
    seen: list[list[str]] = []

    def stop_in_third(items: list[dict[str, str]], ctx: Context) -> None:
        ids = [row["id"] for row in items]
        if "25" in ids:
            raise Poison("stop")
        seen.append(ids)

    with pytest.raises(Poison):
        job_for(url, every=5).run(sources.csv(path, key="id"), stop_in_third, batch=10)
    seen.clear()
    job_for(url, every=5).run(
        sources.csv(path, key="id"), lambda items, ctx: seen.append(ctx.keys), batch=10
    )
    assert seen[0] == [str(i) for i in range(20, 30)]
    assert len(seen) == 3


def test_a_poison_record_in_the_middle_of_a_long_run_fails_alone(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    written: list[int] = []

    def handle(items: list[int], ctx: Context) -> None:
        if 5037 in items:
            raise Poison("5037")
        if 7001 in items:
            ctx.skip(7001, "not wanted")
        written.extend(items)

    result = job_for(url, every=1000, max_failures=1).run(numbers(10_000), handle, batch=100)
    assert (result.succeeded, result.failed, result.skipped) == (9998, 1, 1)
    assert sorted(written) == [n for n in range(10_000) if n != 5037]
    assert set(ledger(url, "batches", "failed")) == {5037}
    assert set(ledger(url, "batches", "skipped")) == {7001}


def test_ctx_key_is_none_and_ctx_step_refused_in_a_batch_handler(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    seen: list[Any] = []

    def handle(items: list[int], ctx: Context) -> None:
        seen.append(ctx.key)
        with pytest.raises(midway.ConfigError, match="batch"):
            ctx.step("x", lambda: 1)

    job_for(url).run(numbers(10), handle, batch=5)
    assert seen == [None, None]


def test_workers_run_batches_at_a_time_with_state_and_outcomes(store_url: str) -> None:
    lock = threading.Lock()
    seen: list[list[int]] = []

    def handle(items: list[int], ctx: Context) -> None:
        time.sleep(0.002)
        if 333 in items:
            raise Poison("333")
        for key in ctx.keys:
            if key % 100 == 7:
                ctx.fail(key, "rejected")
        ctx.state["records"] += len(items)
        with lock:
            seen.append(list(items))

    job = job_for(store_url, workers=4, every=50, max_failures=0.1)
    result = job.run(numbers(1000), handle, batch=20, state={"records": midway.Sum()})
    assert (result.succeeded, result.failed) == (989, 11)
    assert result.state == {"records": 999}  # the poison record's contribution is not in
    assert sorted(x for s in seen for x in s) == [n for n in range(1000) if n != 333]
    assert set(ledger(store_url, "batches", "failed")) == {333} | {
        n for n in range(1000) if n % 100 == 7
    }


def test_workers_without_a_policy_stop_at_the_raising_batch_and_resume_there(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/s.db"

    def handle(items: list[int], ctx: Context) -> None:
        if 250 in items:
            raise Poison("250")

    with pytest.raises(Poison):
        job_for(url, workers=4, every=10).run(numbers(1000), handle, batch=10)
    info = job_for(url).info()
    assert info is not None
    assert info.checkpoint is not None
    assert info.checkpoint.position == 250  # the watermark: every batch before it settled
    firsts: list[int] = []
    job_for(url, workers=4, every=10).run(
        numbers(1000), lambda items, ctx: firsts.append(items[0]), batch=10
    )
    assert sorted(firsts) == list(range(250, 1000, 10))


def test_batch_with_a_process_or_async_executor_is_refused(tmp_path: Path) -> None:
    job = job_for(f"sqlite:///{tmp_path}/s.db", workers=2, executor="process")
    with pytest.raises(midway.ConfigError, match="executor='process'"):
        job.run(range(5), lambda items, ctx: None, batch=2)


@pytest.mark.parametrize("workers", [1, 2])
def test_batch_seconds_hands_over_a_partial_batch_when_the_source_is_slow(
    tmp_path: Path, workers: int
) -> None:
    url = f"sqlite:///{tmp_path}/s.db"

    def slow_api() -> Iterator[int]:
        yield from range(10)
        time.sleep(0.3)
        yield from range(10, 30)
        time.sleep(0.3)
        yield from range(30, 40)

    def run(seconds: float | None) -> list[list[int]]:
        calls: list[list[int]] = []
        job = job_for(url, name=f"slow-{seconds}", workers=workers)
        job.run(
            sources.iterable(slow_api()),
            lambda items, ctx: calls.append(list(items)),
            batch=100,
            batch_seconds=seconds,
        )
        return calls

    early = run(0.2)
    assert len(early) >= 2
    assert early[0][:10] == list(range(10))
    assert len(early[0]) < 40  # it did not wait for the rest of the input
    assert sorted(x for c in early for x in c) == list(range(40))
    assert run(None) == [list(range(40))]


def test_distributed_runs_batch_inside_each_partition(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    calls: list[list[int]] = []
    job = job_for(url, partitions=3, max_failures=10)

    def handle(items: list[int], ctx: Context) -> None:
        calls.append(list(items))
        if 50 in items:
            ctx.fail(50, "rejected")

    result = job.run(list(range(100)), handle, batch=15, distributed=True)
    assert sorted(x for c in calls for x in c) == list(range(100))
    assert max(len(c) for c in calls) == 15
    assert len(calls) == 9  # three partitions of 34, 33, 33 records: three batches each
    assert (result.succeeded, result.failed) == (99, 1)


def test_rate_paces_handler_calls_not_records(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    starts: list[float] = []
    job = job_for(url, rate="20/s")
    began = time.monotonic()
    job.run(numbers(500), lambda items, ctx: starts.append(time.monotonic()), batch=100)
    assert len(starts) == 5
    took = time.monotonic() - began
    assert starts[-1] - starts[0] >= 0.1  # paced: five calls at 20 per second
    assert took < 2.0  # 500 records at 20 per second would take 25 s


@pytest.mark.parametrize("workers", [1, 3])
def test_a_batch_has_a_stable_idempotency_key_of_its_own(tmp_path: Path, workers: int) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    first: dict[int, str] = {}
    lock = threading.Lock()

    def remember(items: list[int], ctx: Context) -> None:
        with lock:
            again = items[0] in first
            first[items[0]] = ctx.idempotency_key
        if items[0] == 40 and not again:
            raise Poison("stop here")

    with pytest.raises(Poison):
        job_for(url, every=10, workers=workers).run(numbers(100), remember, batch=10)
    before = first[40]
    job_for(url, every=10, workers=workers).run(numbers(100), remember, batch=10)
    assert first[40] == before  # the same batch again: the same key
    assert len(set(first.values())) == len(first) == 10  # one per batch
