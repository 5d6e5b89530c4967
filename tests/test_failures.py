"""Failing items: retries, skip_on, the tolerance, the ledger, ``midway retry``, hooks, steps.

Each test runs real jobs on each store kind; the item-by-item checks are against what the
handler saw, not against midway's own counters alone.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner

import midway
from midway.cli.app import cli
from midway.run.failures import Action, Decision, FailurePolicy, Retry, backoff_delay, retry_after
from support.ledgers import ledger

FAST = midway.Retry(attempts=3, on=(TimeoutError,), backoff=0)


class Flaky:
    """A handler with a known fate per item: n % 10 == 3 invalid, == 7 broken for good,
    == 5 times out twice before it works."""

    def __init__(self) -> None:
        self.calls: Counter[int] = Counter()
        self.attempts: dict[int, list[int]] = {}

    def __call__(self, item: int, ctx: midway.Context) -> None:
        self.calls[item] += 1
        self.attempts.setdefault(item, []).append(ctx.attempt)
        if item % 10 == 3:
            raise ValueError(f"item {item} is not valid")
        if item % 10 == 7:
            raise KeyError(f"item {item} is broken")
        if item % 10 == 5 and ctx.attempt < 3:
            raise TimeoutError("the service was slow")
        ctx.state["sum"] = ctx.state.get("sum", 0) + item


def job_for(store_url: str, name: str = "flaky", **options: Any) -> midway.Job:
    options.setdefault("retry", FAST)
    options.setdefault("skip_on", (ValueError,))
    options.setdefault("max_failures", 0.5)
    return midway.Job(name, store=store_url, every=7, progress=False, quiet=True, **options)


def test_retries_skips_and_failures_are_recorded_and_the_job_goes_on(store_url: str) -> None:
    handler = Flaky()
    result = job_for(store_url).run(range(100), handler)

    assert result.status == "completed_with_failures"
    assert (result.succeeded, result.failed, result.skipped) == (80, 10, 10)
    assert result.state["sum"] == sum(n for n in range(100) if n % 10 not in (3, 7))
    for n in range(100):
        if n % 10 == 5:
            assert handler.attempts[n] == [1, 2, 3], n  # transient: retried, then succeeded
        else:
            assert handler.attempts[n] == [1], n  # skipped and permanent: tried once
    failed = ledger(store_url, "flaky", "failed")
    skipped = ledger(store_url, "flaky", "skipped")
    assert set(failed) == {n for n in range(100) if n % 10 == 7}
    assert set(skipped) == {n for n in range(100) if n % 10 == 3}
    record = failed[17]
    assert record.error is not None
    assert record.error.startswith("KeyError:")
    assert record.attempts == 1
    assert record.traceback is not None
    assert "broken" in record.traceback
    assert record.item == 17
    assert record.position == 17
    assert not ledger(store_url, "flaky", "retrying", "steps", "started")


def test_a_retry_policy_without_tolerance_still_stops_at_a_permanent_failure(
    store_url: str,
) -> None:
    seen: list[int] = []

    def handle(item: int, ctx: midway.Context) -> None:
        seen.append(item)
        if item == 4:
            raise KeyError("broken")

    job = midway.Job("strict", store=store_url, every=2, retry=FAST, progress=False, quiet=True)
    with pytest.raises(KeyError):
        job.run(range(10), handle)
    info = job.info()
    assert info is not None
    assert info.checkpoint is not None
    assert info.checkpoint.position == 4  # the failing item is not done: tried again next run
    again: list[int] = []
    result = job.run(range(10), lambda item, ctx: again.append(item))
    assert again == list(range(4, 10))
    assert result.status == "completed"


def test_too_many_failures_stops_with_a_checkpoint_and_names_the_error(store_url: str) -> None:
    handler = Flaky()
    job = job_for(store_url, "tolerance", max_failures=3)
    with pytest.raises(midway.TooManyFailures) as stop:
        job.run(range(100), handler)
    message = str(stop.value)
    assert "KeyError" in message
    assert "max_failures=3" in message
    assert stop.value.exit_code == 1
    info = job.info()
    assert info is not None
    assert info.checkpoint is not None
    # The 4th permanent failure (item 37) stopped it; it and all before it are done.
    assert info.checkpoint.position == 38
    assert info.checkpoint.counters.failed == 4
    assert info.status == "failed"
    # A run with a fixed cause goes on from there, not from the start.
    rest: list[int] = []
    result = job_for(store_url, "tolerance", max_failures=None, skip_on=None).run(
        range(100), lambda item, ctx: rest.append(item)
    )
    assert rest == list(range(38, 100))
    assert result.failed == 4
    assert result.status == "completed_with_failures"


def test_a_fraction_tolerance_with_a_known_total(store_url: str) -> None:
    def handle(item: int, ctx: midway.Context) -> None:
        if item % 4 == 0:
            raise KeyError(item)

    job = midway.Job("fraction", store=store_url, max_failures=0.2, progress=False, quiet=True)
    with pytest.raises(midway.TooManyFailures, match=r"20\.0%"):
        job.run(list(range(100)), handle)
    info = job.info()
    assert info is not None
    assert info.checkpoint is not None
    assert info.checkpoint.counters.failed == 21  # more than 20% of 100


def test_midway_retry_handles_only_the_failed_items_after_completion(store_url: str) -> None:
    handler = Flaky()
    job_for(store_url, "again").run(range(100), handler)
    runner = CliRunner()
    out = runner.invoke(cli, ["retry", "again", "--store", store_url, "--error", "KeyError"])
    assert out.exit_code == 0, out.output
    assert "10 item(s)" in out.output

    fixed: list[int] = []
    result = job_for(store_url, "again").run(
        range(100), lambda item, ctx: fixed.append(item) or None
    )
    assert sorted(fixed) == [n for n in range(100) if n % 10 == 7]
    assert result.status == "completed"  # skipped items were judged invalid: not failures
    assert (result.succeeded, result.failed, result.skipped) == (90, 0, 10)
    assert not ledger(store_url, "again", "failed", "retry")
    assert set(ledger(store_url, "again", "skipped")) == {n for n in range(100) if n % 10 == 3}


def test_midway_retry_by_key_on_a_csv_seeks_to_each_item(store_url: str, tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("id,value\n" + "".join(f"{n},v{n}\n" for n in range(500)), encoding="utf-8")

    def handle(row: dict[str, str], ctx: midway.Context) -> None:
        if row["id"] in ("42", "420"):
            raise KeyError(row["id"])

    source = midway.sources.csv(path, key="id")
    job = midway.Job("csv-retry", store=store_url, max_failures=10, progress=False, quiet=True)
    job.run(source, handle)
    out = CliRunner().invoke(cli, ["retry", "csv-retry", "--key", "420", "--store", store_url])
    assert out.exit_code == 0, out.output
    seen: list[dict[str, str]] = []
    result = job.run(midway.sources.csv(path, key="id"), lambda row, ctx: seen.append(row))
    assert seen == [{"id": "420", "value": "v420"}]
    assert result.failed == 1
    assert set(ledger(store_url, "csv-retry", "failed")) == {"42"}


def test_failed_export_and_show_list_the_ledger(store_url: str, tmp_path: Path) -> None:
    job_for(store_url, "listing").run(range(30), Flaky())
    runner = CliRunner()
    export = tmp_path / "failed.jsonl"
    out = runner.invoke(cli, ["failed", "listing", "--export", str(export), "--store", store_url])
    assert out.exit_code == 0, out.output
    rows = [json.loads(line) for line in export.read_text(encoding="utf-8").splitlines()]
    assert [row["key"] for row in rows] == [7, 17, 27]
    assert all(row["error"].startswith("KeyError") and row["traceback"] for row in rows)
    shown = runner.invoke(cli, ["show", "listing", "--json", "--store", store_url])
    detail = json.loads(shown.output)
    statuses = Counter(item["status"] for item in detail["items"])
    assert statuses == {"failed": 3, "skipped": 3}
    assert {"key", "status", "error", "attempts"} <= set(detail["items"][0])


def test_hooks_and_logging_records(store_url: str, caplog: pytest.LogCaptureFixture) -> None:
    failed: list[tuple[Any, str]] = []
    checkpoints: list[dict[str, Any]] = []
    finished: list[midway.RunResult] = []

    def on_failed(record: midway.ItemRecord, exc: BaseException | None) -> None:
        failed.append((record.key, type(exc).__name__))

    caplog.set_level(logging.DEBUG, logger="midway")
    job_for(
        store_url,
        "hooks",
        on_item_failed=on_failed,
        on_checkpoint=checkpoints.append,
        on_finish=finished.append,
    ).run(range(20), Flaky())
    assert failed == [(3, "ValueError"), (7, "KeyError"), (13, "ValueError"), (17, "KeyError")]
    assert checkpoints
    assert [c["version"] for c in checkpoints] == sorted(c["version"] for c in checkpoints)
    assert len(finished) == 1
    assert finished[0].status == "completed_with_failures"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 4
    ends = [r for r in caplog.records if getattr(r, "midway_event", None) == "run.finished"]
    assert len(ends) == 1  # how the run ended is logged once
    assert ends[0].midway_fields["status"] == "completed_with_failures"
    told = [r for r in caplog.records if getattr(r, "midway_event", None) == "checkpoint"]
    assert [r.midway_fields["version"] for r in told] == [c["version"] for c in checkpoints]


def test_a_failing_hook_does_not_break_the_job(store_url: str) -> None:
    def broken(*args: Any) -> None:
        raise RuntimeError("the alerting service is down")

    result = job_for(store_url, "bad-hook", on_item_failed=broken, on_finish=broken).run(
        range(20), Flaky()
    )
    assert result.failed == 2


def test_steps_are_memoised_across_retries_and_cleaned_up(store_url: str) -> None:
    runs: Counter[str] = Counter()

    def handle(item: int, ctx: midway.Context) -> None:
        def fetch() -> dict[str, int]:
            runs[f"fetch-{item}"] += 1
            return {"n": item}

        data = ctx.step("fetch", fetch)
        rendered = ctx.step("render", lambda d: f"report {d['n']}", data)
        if item == 2 and ctx.attempt < 3:
            raise TimeoutError("mail server busy")
        ctx.state.setdefault("sent", []).append(rendered)

    result = midway.Job(
        "steps", store=store_url, retry=FAST, progress=False, quiet=True, every=2
    ).run(range(4), handle)
    assert result.state["sent"] == [f"report {n}" for n in range(4)]
    assert runs == {f"fetch-{n}": 1 for n in range(4)}  # item 2 tried 3 times, fetched once
    assert not ledger(store_url, "steps", "steps", "retrying")


def test_a_step_result_must_be_json(store_url: str) -> None:
    def handle(item: int, ctx: midway.Context) -> None:
        ctx.step("bad", object)

    with pytest.raises(midway.ConfigError, match="not JSON"):
        midway.Job("bad-step", store=store_url, progress=False, quiet=True).run([1], handle)


def test_retry_after_is_honoured() -> None:
    policy = Retry(attempts=5, backoff=0.01, max_backoff=60)
    assert policy.delay(1, midway.RetryAfter(7)) == 7
    assert policy.delay(1, midway.RetryAfter(600)) == 60  # capped

    class Response:
        headers: ClassVar[dict[str, str]] = {"Retry-After": "12"}

    class HTTPError(Exception):
        response = Response()

    assert retry_after(HTTPError()) == 12
    waits = [policy.delay(n, TimeoutError()) for n in (1, 2, 3, 4)]
    assert all(
        0.01 <= w <= 0.01 * 2 ** (n - 1) + 0.01 for n, w in zip((1, 2, 3, 4), waits, strict=True)
    )


def test_backoff_is_a_pure_function_of_the_attempt() -> None:
    assert [backoff_delay(n, 0.5, 30, lambda: 0.0) for n in (1, 2, 3, 4)] == [0.5, 1, 2, 4]
    assert backoff_delay(2, 0.5, 30, lambda: 0.5) == 1.25  # plus up to `backoff` of jitter
    assert backoff_delay(8, 0.5, 30, lambda: 0.0) == 30  # capped
    assert backoff_delay(10_000, 0.5, 30, lambda: 0.9) == 30  # no overflow


def test_one_decision_per_failure() -> None:
    retry = Retry(attempts=3, on=TimeoutError, backoff=0.01, max_time=60)
    policy = FailurePolicy(retry, skip_on=(KeyError,), max_failures=2)
    decide = policy.decide
    first = decide(TimeoutError(), 1, 100.0, 100.0)
    assert first.action is Action.RETRY
    assert 0.01 <= first.delay <= 0.02
    assert decide(TimeoutError(), 3, 100.0, 100.0).action is Action.FAIL  # out of attempts
    assert decide(TimeoutError(), 1, 100.0, 161.0).action is Action.FAIL  # out of time
    assert decide(ValueError(), 1, 100.0, 100.0).record == "failed"  # not transient
    assert decide(KeyError(), 1, 100.0, 100.0).record == "skipped"
    assert decide(ValueError(), 1, 0, 0, failed=1, processed=5).action is Action.FAIL
    too_many = decide(ValueError(), 1, 0, 0, failed=2, processed=5)
    assert too_many == Decision(Action.STOP, too_many=True)
    assert too_many.record == "failed"
    strict = FailurePolicy(None, skip_on=(), max_failures=None).decide(ValueError(), 1, 0, 0)
    assert strict == Decision(Action.STOP)
    assert strict.record is None


def test_policy_options_are_checked() -> None:
    with pytest.raises(midway.ConfigError):
        midway.Retry(attempts=0)
    with pytest.raises(midway.ConfigError):
        midway.Job("x", max_failures=1.5)
    with pytest.raises(midway.ConfigError):
        midway.Job("x", max_failures=-1)
    with pytest.raises(midway.ConfigError):
        midway.Job("x", skip_on="ValueError")  # type: ignore[arg-type]
    with pytest.raises(midway.ConfigError, match=r"job\.run"):
        midway.Job("x", retry=midway.Retry(attempts=2)).loop([1, 2])


def test_a_malformed_csv_row_is_a_failing_item(store_url: str, tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_bytes(b"id,name\n1,Ada\n2,Bob,extra\n3,Z\xe9e\n4,Dan\n")
    seen: list[str] = []
    job = midway.Job("malformed", store=store_url, max_failures=5, progress=False, quiet=True)
    result = job.run(midway.sources.csv(path, key="id"), lambda row, ctx: seen.append(row["id"]))
    assert seen == ["1", "4"]
    assert (result.succeeded, result.failed) == (2, 2)
    failed = ledger(store_url, "malformed", "failed")
    assert len(failed) == 2
    errors = sorted(r.error or "" for r in failed.values())
    assert any("record 2" in e and "byte 14" in e for e in errors), errors
    assert any("UTF-8" in e or "utf-8" in e for e in errors), errors


def test_a_malformed_row_stops_a_job_without_tolerance(store_url: str, tmp_path: Path) -> None:
    path = tmp_path / "people.jsonl"
    path.write_text('{"id": 1}\n{"id": 2\n{"id": 3}\n', encoding="utf-8")
    seen: list[int] = []
    job = midway.Job("malformed-strict", store=store_url, progress=False, quiet=True)
    with pytest.raises(midway.SourceError, match="record 2"):
        job.run(midway.sources.jsonl(path, key="id"), lambda row, ctx: seen.append(row["id"]))
    assert seen == [1]

    def walk() -> None:
        for row in job.loop(midway.sources.jsonl(path, key="id")):
            seen.append(row["id"])

    with pytest.raises(midway.SourceError, match="record 2"):
        walk()
    assert seen == [1]  # the loop resumed at the bad record, and stopped there again


def test_a_completed_at_most_once_job_does_not_start_again(store_url: str) -> None:
    sent: list[int] = []
    job = midway.Job("newsletter", store=store_url, guarantee="at-most-once", quiet=True)
    job.run([1, 2, 3], lambda item, ctx: sent.append(item))
    with pytest.raises(midway.RefusedError, match="already completed") as refused:
        job.run([1, 2, 3], lambda item, ctx: sent.append(item))
    assert refused.value.exit_code == 3
    assert sent == [1, 2, 3]
    out = CliRunner().invoke(cli, ["reset", "newsletter", "--yes", "--store", store_url])
    assert out.exit_code == 0, out.output
    job.run([1, 2, 3], lambda item, ctx: sent.append(item))  # on purpose, after a reset
    assert sent == [1, 2, 3, 1, 2, 3]
