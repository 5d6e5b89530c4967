"""Structured logs: ``MIDWAY_LOG_FORMAT=json`` (``midway --log-format json``) writes one JSON
object per event to stderr, in the schema documented in ``midway.console``; each event is
logged once."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import midway
from midway.errors import ConfigError
from midway.stores import open_store
from support.itemjob import ItemJob, ItemSpec

SCHEMA = ["ts", "level", "event", "job", "run_id", "message"]


def events(stderr: str) -> list[dict[str, Any]]:
    """Every line of ``stderr`` as a JSON object with the schema's keys first."""
    out = []
    for line in stderr.splitlines():
        data = json.loads(line)  # nothing but JSON lines on stderr
        assert list(data)[: len(SCHEMA)] == SCHEMA, data
        assert data["ts"].endswith("Z")
        out.append(data)
    return out


def named(found: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    return [e for e in found if e["event"] == event]


def run_ids(url: str, job: str) -> list[str]:
    store = open_store(url)
    try:
        return [run.run_id for run in reversed(store.list_runs(job))]
    finally:
        store.close()


def test_json_lines_through_a_kill_and_a_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIDWAY_LOG_FORMAT", "json")
    store = f"sqlite:///{tmp_path / 'state.db'}"
    spec = ItemSpec(store=store, n=30, every=5, refuse=[3, 21], hold=[12], max_failures=10)
    job = ItemJob(tmp_path / "job", spec)
    job.hold(12)
    first = job.start()
    try:
        job.wait_for(0, 11)
        job.wait_for_checkpoint()  # committed by the keeper thread, a moment later
        first.kill()  # SIGKILL, held at item 12
        _, err = first.communicate(timeout=30)
    finally:
        job.stop_all()
    job.release(12)
    killed = events(err.decode())
    assert [e["event"] for e in killed] == ["run.started", "item.failed"]
    assert killed[1]["key"] == 3
    assert killed[1]["status"] == "failed"
    assert killed[1]["level"] == "warning"

    second = job.run()
    assert second.returncode == 0, second.stderr
    found = events(second.stderr)
    first_id, second_id = run_ids(store, job.key)
    assert {e["run_id"] for e in killed} == {first_id}
    assert {e["run_id"] for e in found} == {second_id}
    assert {e["job"] for e in killed + found} == {job.key}
    (resumed,) = named(found, "run.resumed")
    assert resumed["processed"] == job.handled(1)[0] > 0
    assert [e["key"] for e in named(found, "item.failed")] == [21]
    (finished,) = named(found, "run.finished")  # once
    assert finished["status"] == "completed_with_failures"
    counts = {k: finished[k] for k in ("processed", "succeeded", "failed", "skipped")}
    assert counts == {"processed": 30, "succeeded": 28, "failed": 2, "skipped": 0}
    assert "completed" in finished["message"]


def test_completed_is_logged_once_on_the_midway_logger(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="midway")
    job = midway.Job("once", store=f"sqlite:///{tmp_path / 'state.db'}", progress=False)
    job.run(range(10), lambda item, ctx: None)
    said = [
        r for r in caplog.records if r.name == "midway" and "'once' completed" in r.getMessage()
    ]
    assert len(said) == 1, [r.getMessage() for r in said]
    record = said[0]
    assert record.midway_event == "run.finished"
    assert record.midway_fields["succeeded"] == 10


def test_log_format_option_and_a_bad_format(tmp_path: Path) -> None:
    records = tmp_path / "names.txt"
    records.write_text("ada\ngrace\n")
    env = {k: v for k, v in os.environ.items() if k != "MIDWAY_LOG_FORMAT"}
    store = f"sqlite:///{tmp_path / 'state.db'}"
    command = [sys.executable, "-m", "midway", "--log-format", "json", "each", "names"]
    done = subprocess.run(
        [*command, "--input", str(records), "--store", store, "--", "true"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found = events(done.stderr)
    assert named(found, "run.finished")[0]["processed"] == 2

    os.environ["MIDWAY_LOG_FORMAT"] = "yaml"
    try:
        with pytest.raises(ConfigError, match="not a log format"):
            midway.Job("bad", store=f"sqlite:///{tmp_path / 'bad.db'}").run(range(3), print)
    finally:
        del os.environ["MIDWAY_LOG_FORMAT"]
    assert not (tmp_path / "bad.db").exists()
