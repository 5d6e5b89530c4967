"""Job.run and Job.loop in one process, on every store: results, state, resuming, ctx,
identity, configuration errors, input drift and state that JSON cannot hold."""

from __future__ import annotations

import csv as stdlib_csv
import datetime
import logging
import re
import sys
from pathlib import Path
from typing import Any

import pytest

import midway
from midway import Context, sources
from midway.stores import open_store


def quiet_job(name: str, store_url: str, **options: Any) -> midway.Job:
    options.setdefault("every", 10)
    options.setdefault("every_seconds", None)
    return midway.Job(name, store=store_url, quiet=True, **options)


def write_contacts(path: Path, ids: range) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = stdlib_csv.writer(f)
        writer.writerow(["id", "name", "city"])
        for i in ids:
            writer.writerow([f"c{i}", f"Name {i}", "Zürich, CH" if i % 2 else "東京"])


class Boom(Exception):
    pass


def failing_at(bad: Any, seen: list[Any], key: str | None = None) -> Any:
    """A handler that records items and raises on ``bad`` (an item, or a field value)."""

    def handle(item: Any, ctx: Context) -> None:
        if (item[key] if key else item) == bad:
            raise Boom(f"cannot handle {bad!r}")
        seen.append(item)

    return handle


# -- a run from start to end --------------------------------------------------------------


def test_run_completes_with_result_fields(store_url: str) -> None:
    job = quiet_job("complete", store_url)
    seen: list[int] = []
    result = job.run(range(25), lambda item, ctx: seen.append(item))
    assert seen == list(range(25))
    assert result.status == "completed"
    assert result.ok
    assert result.job == "complete"
    assert (result.succeeded, result.failed, result.skipped, result.in_doubt) == (25, 0, 0, 0)
    assert result.processed == 25
    assert result.processed_this_run == 25
    assert result.resumed_from is None
    assert result.position == 25
    assert result.run_id
    info = job.info()
    assert info is not None
    assert info.status == "completed"
    assert info.checkpoint is None, "a completed job leaves no resume checkpoint"
    assert info.summary is not None
    assert info.summary["counters"]["succeeded"] == 25


def test_a_completed_job_starts_fresh_next_time(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="midway")
    job = quiet_job("twice", store_url)
    job.run([1, 2, 3], lambda item, ctx: None)
    seen: list[int] = []
    result = job.run([1, 2, 3], lambda item, ctx: seen.append(item))
    assert seen == [1, 2, 3]
    assert result.resumed_from is None
    assert "from the beginning" in caplog.text
    assert "last run completed" in caplog.text


def test_empty_source_completes(store_url: str) -> None:
    result = quiet_job("empty", store_url).run([], lambda item, ctx: None)
    assert result.status == "completed"
    assert result.processed == 0


def test_state_is_seeded_then_resumed(store_url: str) -> None:
    job = quiet_job("stateful", store_url)

    def add(item: int, ctx: Context) -> None:
        if item == 33 and not ctx.state.get("failed_once"):
            raise Boom("once")
        ctx.state["total"] += item
        ctx.state["items"] += 1

    with pytest.raises(Boom):
        job.run(range(50), add, state={"total": 1000, "items": 0})
    info = job.info()
    assert info is not None
    assert info.checkpoint is not None
    done = info.checkpoint.position
    assert isinstance(done, int)
    # The handler changed ctx.state, so the failure keeps the last committed checkpoint; with
    # group commit and items this fast that may be an interval or two back.
    assert 0 <= done <= 33
    assert done % 10 == 0
    assert info.checkpoint.state == {"total": 1000 + sum(range(done)), "items": done}

    def add_after(item: int, ctx: Context) -> None:
        ctx.state["total"] += item
        ctx.state["items"] += 1

    # The seed is for a fresh start: a resumed run continues from the saved state.
    result = job.run(range(50), add_after, state={"total": -1, "items": -1})
    assert result.state == {"total": 1000 + sum(range(50)), "items": 50}


def test_state_must_be_a_dict_of_json_when_seeded(store_url: str) -> None:
    result = quiet_job("seeded", store_url).run(
        ["a", "b"], lambda item, ctx: ctx.state["seen"].append(item), state={"seen": []}
    )
    assert result.state == {"seen": ["a", "b"]}


# -- a handler that raises ----------------------------------------------------------------


def test_handler_exception_resumes_at_the_failed_item(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="midway")
    job = quiet_job("fails", store_url)
    seen: list[int] = []
    with pytest.raises(Boom) as info:
        job.run(range(100), failing_at(37, seen))
    assert seen == list(range(37))
    notes = " ".join(getattr(info.value, "__notes__", []))
    assert "37 items are done" in notes
    assert "index 37" in notes

    record = job.info()
    assert record is not None
    assert record.status == "failed"
    assert record.checkpoint is not None
    assert record.checkpoint.position == 37
    assert record.checkpoint.counters.processed == 37
    store = open_store(store_url)
    try:
        runs = store.list_runs(job.key)
    finally:
        store.close()
    assert runs[0].status == "failed"
    assert runs[0].message is not None
    assert "Boom" in runs[0].message

    again: list[int] = []
    result = job.run(range(100), lambda item, ctx: again.append(item))
    assert again == list(range(37, 100)), "resumes at the failed item, not after it"
    assert result.status == "completed"
    assert result.processed == 100
    assert result.processed_this_run == 63
    assert result.resumed_from is not None
    assert result.resumed_from["position"] == 37
    assert result.resumed_from["processed"] == 37
    assert "RESUMING job 'fails'" in caplog.text


def test_failure_on_the_first_item_leaves_a_checkpoint_at_the_start(store_url: str) -> None:
    job = quiet_job("first", store_url)
    with pytest.raises(Boom):
        job.run(range(5), failing_at(0, []))
    again: list[int] = []
    job.run(range(5), lambda item, ctx: again.append(item))
    assert again == [0, 1, 2, 3, 4]


def test_state_changes_of_the_failed_item_are_not_kept(store_url: str) -> None:
    """State and position must agree: the item that raised is handled again on resume, so
    whatever it did to ctx.state before raising must not be in the checkpoint."""
    job = quiet_job("coherent", store_url)
    crashed: list[bool] = []

    def handle(item: int, ctx: Context) -> None:
        ctx.state["sum"] += item  # then the API call after it fails
        if item == 7 and not crashed:
            crashed.append(True)
            raise Boom("API down")

    with pytest.raises(Boom):
        job.run(range(20), handle, state={"sum": 0})
    result = job.run(range(20), handle, state={"sum": 0})
    assert result.state["sum"] == sum(range(20))


# -- ctx ----------------------------------------------------------------------------------


def test_ctx_key_and_position_for_a_sequence(store_url: str) -> None:
    seen: list[tuple[Any, Any, int]] = []
    quiet_job("ctx-seq", store_url).run(
        ["a", "b", "c"], lambda item, ctx: seen.append((ctx.key, ctx.position, ctx.attempt))
    )
    assert seen == [(0, 0, 1), (1, 1, 1), (2, 2, 1)]


def test_ctx_key_and_position_for_a_csv(store_url: str, tmp_path: Path) -> None:
    path = tmp_path / "contacts.csv"
    write_contacts(path, range(30))
    by_record: list[tuple[Any, Any, Any]] = []
    quiet_job("ctx-csv", store_url).run(
        sources.csv(path), lambda row, ctx: by_record.append((row, ctx.key, ctx.position))
    )
    assert [k for _, k, _ in by_record] == list(range(1, 31))
    for i, (row, _, position) in enumerate(by_record):
        assert position["record"] == i
        # Reading from ctx.position hands out this very item first.
        cursor = sources.csv(path).open(position)
        try:
            assert next(iter(cursor)).items[0] == row
        finally:
            cursor.close()
    by_id: list[Any] = []
    quiet_job("ctx-csv-id", store_url).run(
        sources.csv(path, key="id"), lambda row, ctx: by_id.append(ctx.key)
    )
    assert by_id == [f"c{i}" for i in range(30)]


def test_ctx_run_id_and_job(store_url: str) -> None:
    seen: list[tuple[str, str]] = []
    result = quiet_job("ctx-run", store_url).run(
        [1], lambda item, ctx: seen.append((ctx.run_id, ctx.job))
    )
    assert seen == [(result.run_id, "ctx-run")]


def _idempotency_keys(job: midway.Job, items: list[str]) -> list[str]:
    keys: list[str] = []
    job.run(
        sources.sequence(items, key=lambda x: x), lambda i, ctx: keys.append(ctx.idempotency_key)
    )
    return keys


def test_idempotency_keys_are_stable_and_distinct(store_url: str, tmp_path: Path) -> None:
    items = ["ann@example.com", "bob@example.com", "cy@example.com"]
    other_store = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    first = _idempotency_keys(quiet_job("mail", store_url, params={"batch": 1}), items)
    again = _idempotency_keys(quiet_job("mail", other_store, params={"batch": 1}), items)
    assert first == again, "the same job and item give the same key, on any store, any run"
    assert all(re.fullmatch(r"midway-[0-9a-f]{32}", k) for k in first), first
    assert len(set(first)) == len(first)
    other_name = _idempotency_keys(quiet_job("mail2", store_url, params={"batch": 1}), items)
    other_params = _idempotency_keys(quiet_job("mail", store_url, params={"batch": 2}), items)
    assert not set(first) & set(other_name)
    assert not set(first) & set(other_params)


# -- identity -----------------------------------------------------------------------------


def test_params_make_another_job(store_url: str) -> None:
    plain = quiet_job("report", store_url)
    january = quiet_job("report", store_url, params={"month": "2024-01", "region": "eu"})
    same = quiet_job("report", store_url, params={"region": "eu", "month": "2024-01"})
    february = quiet_job("report", store_url, params={"month": "2024-02", "region": "eu"})
    assert plain.key == "report"
    assert re.fullmatch(r"report@[0-9a-f]{8}", january.key)
    assert same.key == january.key, "params are identified by content, not key order"
    assert february.key != january.key
    assert january.params == {"month": "2024-01", "region": "eu"}

    # Separate checkpoints: interrupting one does not make the other resume.
    with pytest.raises(Boom):
        january.run(range(20), failing_at(5, []))
    seen: list[int] = []
    february.run(range(20), lambda item, ctx: seen.append(item))
    assert seen == list(range(20))
    info = same.info()
    assert info is not None
    assert info.checkpoint is not None
    assert info.checkpoint.position == 5


# -- configuration errors -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"every": 0}, "every=0"),
        ({"every": -5}, "every=-5"),
        ({"every": 2.5}, "whole number"),
        ({"every": True}, "every=True"),
        ({"every": None, "every_seconds": None}, "never checkpoint"),
        ({"every_seconds": 0}, "every_seconds=0"),
        ({"every_seconds": float("nan")}, "every_seconds=nan"),
        ({"guarantee": "exactly once"}, "at-least-once"),
        ({"on_drift": "ignore"}, "refuse, restart, continue"),
        ({"lease_ttl": 0}, "lease_ttl=0"),
        ({"params": {"when": datetime.date(2024, 1, 1)}}, "params['when']"),
        ({"store": "mysql://db/x"}, "sqlite:///"),
    ],
)
def test_bad_options_are_config_errors(options: dict[str, Any], words: str) -> None:
    def configure_and_run() -> None:
        midway.Job("configured", quiet=True, **options).run([1], lambda item, ctx: None)

    with pytest.raises(midway.ConfigError) as info:
        configure_and_run()
    assert info.value.exit_code == 2
    assert words in str(info.value)


@pytest.mark.parametrize(
    "name", ["", " spaced", "has space", "a/b", "-dash-first", "x" * 201, "tab\there"]
)
def test_bad_names_are_config_errors(name: str) -> None:
    with pytest.raises(midway.ConfigError, match="letters, digits") as info:
        midway.Job(name)
    assert "import-contacts" in str(info.value)  # an example of a good name


def test_non_string_name_is_a_config_error() -> None:
    with pytest.raises(midway.ConfigError):
        midway.Job(42)  # type: ignore[arg-type]


@pytest.mark.parametrize("source", ["a string", b"bytes", {"a": 1}, 42])
def test_not_a_source_is_a_config_error(store_url: str, source: Any) -> None:
    with pytest.raises(midway.ConfigError, match="source"):
        quiet_job("not-a-source", store_url).run(source, lambda item, ctx: None)


# -- input drift --------------------------------------------------------------------------


def _interrupted_csv_job(
    store_url: str, tmp_path: Path, on_drift: str
) -> tuple[midway.Job, Path, list[Any]]:
    """A CSV job that failed at c6, after which the file gained a row."""
    path = tmp_path / "contacts.csv"
    write_contacts(path, range(10))
    job = quiet_job("drifty", store_url, every=2, on_drift=on_drift)
    with pytest.raises(Boom):
        job.run(sources.csv(path, key="id"), failing_at("c6", [], key="id"))
    write_contacts(path, range(11))
    return job, path, []


def test_input_drift_is_refused(store_url: str, tmp_path: Path) -> None:
    job, path, seen = _interrupted_csv_job(store_url, tmp_path, "refuse")
    with pytest.raises(midway.InputDrift) as info:
        job.run(sources.csv(path, key="id"), lambda row, ctx: seen.append(row))
    assert seen == []
    err = info.value
    assert err.exit_code == 3
    message = str(err)
    assert "size:" in message, message
    assert "head_sha256:" in message
    assert "header" not in message, "only the fields that changed are named"
    assert "on_drift='restart'" in message
    assert "on_drift='continue'" in message
    assert "midway reset drifty --yes" in message
    assert err.saved["size"] != err.current["size"]
    assert err.saved["header"] == err.current["header"]
    # The refusal kept the checkpoint for a decision.
    info_after = job.info()
    assert info_after is not None
    assert info_after.checkpoint is not None
    assert info_after.checkpoint.position["record"] == 6


def test_input_drift_restart_starts_from_the_beginning(store_url: str, tmp_path: Path) -> None:
    job, path, seen = _interrupted_csv_job(store_url, tmp_path, "restart")
    result = job.run(sources.csv(path, key="id"), lambda row, ctx: seen.append(ctx.key))
    assert seen == [f"c{i}" for i in range(11)]
    assert result.resumed_from is None
    assert result.processed == 11


def test_input_drift_continue_resumes_at_the_saved_position(store_url: str, tmp_path: Path) -> None:
    job, path, seen = _interrupted_csv_job(store_url, tmp_path, "continue")
    result = job.run(sources.csv(path, key="id"), lambda row, ctx: seen.append(ctx.key))
    assert seen == [f"c{i}" for i in range(6, 11)]
    assert result.resumed_from is not None
    assert result.processed == 11


def test_unchanged_input_resumes_without_drift(store_url: str, tmp_path: Path) -> None:
    path = tmp_path / "same.csv"
    write_contacts(path, range(10))
    job = quiet_job("steady", store_url, every=3)
    with pytest.raises(Boom):
        job.run(sources.csv(path, key="id"), failing_at("c4", [], key="id"))
    seen: list[Any] = []
    job.run(sources.csv(path, key="id"), lambda row, ctx: seen.append(ctx.key))
    assert seen == [f"c{i}" for i in range(4, 10)]


# -- state JSON cannot hold ---------------------------------------------------------------


def test_non_json_state_names_the_key_and_keeps_the_last_checkpoint(store_url: str) -> None:
    job = quiet_job("bad-state", store_url)

    def handle(item: int, ctx: Context) -> None:
        ctx.state["n"] = item
        if item == 15:
            ctx.state["when"] = datetime.datetime(2024, 5, 1, 12, 0)

    with pytest.raises(midway.StateNotSerializable) as info:
        job.run(range(30), handle, state={"n": None})
    assert info.value.path == "ctx.state['when']"
    assert "ctx.state['when']" in str(info.value)
    assert "datetime" in str(info.value)

    store = open_store(store_url)
    try:
        cp = store.load_checkpoint(job.key)
        runs = store.list_runs(job.key)
    finally:
        store.close()
    assert cp is not None, "the previous checkpoint must stay loadable"
    assert cp.version == 1
    assert cp.position == 10
    assert cp.state == {"n": 9}
    assert runs[0].status == "failed"

    seen: list[int] = []
    result = job.run(range(30), lambda item, ctx: seen.append(item))
    assert seen == list(range(10, 30))
    assert result.status == "completed"


# -- loop() -------------------------------------------------------------------------------


def test_loop_completes(store_url: str) -> None:
    loop = quiet_job("loop-done", store_url).loop(range(12), state={"sum": 0})
    assert loop.result is None
    for item in loop:
        loop.state["sum"] += item
        assert loop.ctx.key == item
    assert loop.result is not None
    assert loop.result.status == "completed"
    assert loop.result.state == {"sum": sum(range(12))}
    assert loop.resumed_from is None


def test_loop_break_checkpoints_before_the_item_in_hand(store_url: str) -> None:
    job = quiet_job("loop-break", store_url)
    loop = job.loop(range(100))
    for item in loop:
        if item == 25:
            break
    assert loop.result is not None
    assert loop.result.status == "stopped"
    info = job.info()
    assert info is not None
    assert info.status == "stopped"
    assert info.checkpoint is not None
    assert info.checkpoint.position == 25, "item 25 was in hand, not done"
    assert info.checkpoint.counters.processed == 25
    seen = list(job.loop(range(100)))
    assert seen == list(range(25, 100))


def test_loop_body_exception_checkpoints_before_the_item_in_hand(store_url: str) -> None:
    job = quiet_job("loop-raise", store_url)

    def body() -> None:
        for item in job.loop(range(50)):
            if item == 17:
                raise Boom("body")

    with pytest.raises(Boom):
        body()
    info = job.info()
    assert info is not None
    assert info.checkpoint is not None
    assert info.checkpoint.position == 17
    assert list(job.loop(range(50))) == list(range(17, 50))


def test_loop_runs_once(store_url: str) -> None:
    loop = quiet_job("loop-once", store_url).loop([1, 2, 3])
    assert list(loop) == [1, 2, 3]
    with pytest.raises(midway.ConfigError, match="runs once"):
        for _ in loop:
            pass


def test_runs_record_the_command_that_resumes_them(store_url: str) -> None:
    job = quiet_job("commanded", store_url)
    with pytest.raises(Boom):
        job.run(range(20), failing_at(12, []))
    store = open_store(store_url)
    try:
        runs = store.list_runs(job.key)
    finally:
        store.close()
    assert runs[0].status == "failed"
    assert runs[0].command
    assert Path(sys.argv[0]).name in runs[0].command
