"""The operator's Python API on every store: ``midway.jobs()``, ``job.status()``,
``job.items()``, ``job.retry()``, ``job.resolve()``, ``job.note()``, ``job.reset()`` and
``job.report()``; and the command line giving the same answers (one code path)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

import midway
from midway._model.identity import JobId
from midway._model.owner import Owner, hostname, process_start_ticks
from midway.stores import open_store
from test_cli import invoke, midway_cli


class Refused(Exception):
    pass


def failing(url: str, name: str = "imp", refuse: tuple[int, ...] = (3, 7, 11)) -> midway.Job:
    """A job over 20 items that completed with ``refuse`` failed (``max_failures``)."""

    def handle(item: int, ctx: midway.Context) -> None:
        if item in refuse:
            raise Refused(f"item {item} is not welcome")
        ctx.state["sum"] = ctx.state.get("sum", 0) + item

    job = midway.Job(name, store=url, every=5, every_seconds=None, max_failures=10, quiet=True)
    assert job.run(range(20), handle).failed == len(refuse)
    return job


def doubtful(url: str) -> midway.Job:
    """An at-most-once job over 10 items whose handler raised on item 4: in doubt."""

    def handle(item: int, ctx: midway.Context) -> None:
        if item == 4:
            raise Refused("the mail server hung up")

    job = midway.Job("mail", store=url, guarantee="at-most-once", quiet=True)
    with pytest.raises(Refused):
        job.run(range(10), handle)
    return job


def recent(when: datetime | None) -> bool:
    return (
        when is not None
        and when.tzinfo is not None
        and (abs(datetime.now(UTC) - when) < timedelta(minutes=5))
    )


def test_status_of_a_completed_job_and_jobs_lists_it(store_url: str) -> None:
    job = failing(store_url)
    status = job.status()
    assert isinstance(status, midway.JobStatus)
    assert (status.job, status.name, status.status) == ("imp", "imp", "completed_with_failures")
    assert (status.processed, status.succeeded, status.failed) == (20, 17, 3)
    assert (status.skipped, status.in_doubt) == (0, 0)
    assert status.total == 20
    assert status.remaining == 0
    assert status.checkpoint is None  # completed: the next run starts fresh
    assert status.owner is None
    assert status.partitions is None
    assert recent(status.updated_at)
    assert [run.status for run in status.runs] == ["completed_with_failures"]
    run = status.runs[0]
    assert isinstance(run, midway.RunInfo)
    assert recent(run.started_at)
    assert recent(run.ended_at)
    assert status.notes == ()
    with pytest.raises(AttributeError):
        status.status = "x"  # type: ignore[misc]  # frozen

    listed = midway.jobs(store_url)
    assert listed == [listed[0]]
    assert listed[0].job == "imp"
    assert listed[0].processed == 20
    shown = json.loads(invoke("status", "--json", "--store", store_url).stdout)
    assert shown == [listed[0].to_json()]  # --json is the API's object, serialised


def test_status_of_a_stopped_job_has_its_checkpoint(store_url: str) -> None:
    def handle(item: int, ctx: midway.Context) -> None:
        if item == 12:
            raise Refused("stop here")

    job = midway.Job("half", store=store_url, every=5, every_seconds=None, quiet=True)
    with pytest.raises(Refused):
        job.run(range(30), handle)
    status = job.status()
    assert status.status == "failed"
    assert isinstance(status.checkpoint, midway.CheckpointInfo)
    assert status.checkpoint.version >= 1
    assert status.checkpoint.position == 12
    assert recent(status.checkpoint.saved_at)
    assert (status.processed, status.total, status.remaining) == (12, 30, 18)
    data = status.to_json()
    assert data["checkpoint"]["position"] == 12
    assert data["position"] == 12
    assert isinstance(data["checkpoint"]["saved_at"], str)


def test_items_yields_the_ledgers_records(store_url: str) -> None:
    job = failing(store_url)
    records = list(job.items("failed"))
    assert [r.key for r in records] == [3, 7, 11]
    record = records[0]
    assert isinstance(record, midway.ItemRecord)
    assert record.status == "failed"
    assert record.error == "Refused: item 3 is not welcome"
    assert record.error_type == "Refused"
    assert record.attempts == 1
    assert recent(record.at)
    assert list(job.items("skipped")) == []
    with pytest.raises(midway.ConfigError, match="choose one of"):
        job.items("broken")


def test_retry_puts_back_only_what_it_names_and_the_next_run_handles_them(
    store_url: str,
) -> None:
    job = failing(store_url)
    with pytest.raises(midway.ConfigError, match=r"no failed item with key 5, 99") as refused:
        job.retry(keys=[3, 5, 99])
    assert refused.value.exit_code == 2
    assert [r.key for r in job.items("failed")] == [3, 7, 11]  # nothing changed
    assert job.retry(keys=[7]) == 1
    assert job.retry(error="KeyError") == 0
    assert job.retry(error="Refused") == 2
    assert job.retry() == 0  # nothing failed is left
    assert sorted(r.key for r in job.items("retry")) == [3, 7, 11]
    handled: list[int] = []
    job.run(range(20), lambda item, ctx: handled.append(item))
    assert sorted(handled) == [3, 7, 11]
    status = job.status()
    assert (status.status, status.succeeded, status.failed) == ("completed", 20, 0)


def test_resolve_decides_in_doubt_items(store_url: str) -> None:
    job = doubtful(store_url)
    assert [r.key for r in job.items("in_doubt")] == [4]
    with pytest.raises(midway.ConfigError, match="no in-doubt item with key 5"):
        job.resolve([5])
    assert job.resolve([4], done=False) == 1
    assert [r.key for r in job.items("retry")] == [4]
    job.run(range(10), lambda item, ctx: None)
    status = job.status()
    assert (status.succeeded, status.in_doubt) == (10, 0)


def test_resolve_done_counts_them_as_succeeded(store_url: str) -> None:
    """Once people decided the last in-doubt item of a finished job, nothing is left that
    failed or is in doubt: the job has completed, as a run that ended so would say."""
    job = doubtful(store_url)
    job.run(range(10), lambda item, ctx: None)  # the rest
    assert job.status().status == "completed_with_failures"
    assert job.resolve(None) == 1
    status = job.status()
    assert (status.status, status.succeeded, status.in_doubt) == ("completed", 10, 0)
    assert list(job.items("in_doubt")) == []
    assert [j.status for j in midway.jobs(store_url)] == ["completed"]


def test_resolve_to_retry_leaves_a_finished_job_with_failures(store_url: str) -> None:
    job = doubtful(store_url)
    job.run(range(10), lambda item, ctx: None)
    assert job.resolve(None, done=False) == 1
    status = job.status()
    assert (status.status, status.succeeded, status.failed) == ("completed_with_failures", 9, 1)


def test_note_reset_and_report(store_url: str) -> None:
    job = failing(store_url)
    job.note("looked at it; the customer fixes 3, 7 and 11 on Monday", author="ana")
    job.note("second look")
    notes = job.status().notes
    assert next((n.author, n.text) for n in notes) == (
        "ana",
        "looked at it; the customer fixes 3, 7 and 11 on Monday",
    )
    assert notes[1].author.endswith("@" + notes[1].author.split("@")[1])
    assert all(recent(n.at) for n in notes)
    with pytest.raises(midway.ConfigError, match="needs some text"):
        job.note("  ")

    md = job.report()
    assert "# Handoff: job `imp`" in md
    assert "customer fixes" in md
    assert job.report(format="html").startswith("<!doctype html>")
    data = json.loads(job.report(format="json"))
    assert data["job"] == "imp"
    assert data["failed"] == 3
    assert (
        invoke("report", "imp", "--store", store_url).stdout.split("Generated")[0]
        == (md.split("Generated")[0])
    )
    with pytest.raises(midway.ConfigError, match="'md'"):
        job.report(format="pdf")

    job.reset()
    with pytest.raises(midway.JobNotFound):
        job.status()
    assert midway.jobs(store_url) == []


def test_the_cli_retry_of_a_key_that_matches_nothing_exits_2(store_url: str) -> None:
    failing(store_url)
    result = midway_cli("retry", "imp", "--key", "42", "--store", store_url)
    assert result.returncode == 2, result.stderr
    assert "has no failed item with key 42" in result.stderr
    with pytest.raises(midway.ConfigError, match="no in-doubt item with key 42"):
        invoke("resolve", "imp", "42", "--done", "--store", store_url)
    ok = invoke("retry", "imp", "--key", "3", "--store", store_url)
    assert ok.exit_code == 0
    assert "1 item(s)" in ok.stdout


def test_a_job_that_never_ran_is_not_found(store_url: str) -> None:
    failing(store_url)
    with pytest.raises(midway.JobNotFound, match="no job 'other'"):
        midway.Job("other", store=store_url).status()


def test_a_held_partition_refuses_retry_and_reset_of_the_whole_job_before_any_change(
    store_url: str,
) -> None:
    """A live runner holding one partition refuses the retry (and the reset) before any
    partition changed: the failures put back are all of the job's or none (here, none)."""
    job = midway.Job("spread", store=store_url, partitions=3, quiet=True, max_failures=100)

    def refuse_fives(item: int, ctx: midway.Context) -> None:
        if item % 5 == 0:
            raise Refused(f"item {item} is not welcome")

    job.run(range(30), refuse_fives, distributed=True)
    assert len(list(job.items("failed"))) == 6
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    store = open_store(store_url)
    try:
        owner = Owner(hostname(), child.pid, process_start_ticks(child.pid))
        store.acquire_lease(JobId("spread").partition(2, 3), owner, 3600.0)
        with pytest.raises(midway.LeaseHeld, match="already running"):
            job.retry()
        assert len(list(job.items("failed"))) == 6
        assert list(job.items("retry")) == []
        with pytest.raises(midway.LeaseHeld, match="already running"):
            job.reset()
        status = job.status()
        assert status.partitions is not None
        assert len(status.partitions) == 3
        assert len(list(job.items("failed"))) == 6
    finally:
        store.close()
        child.kill()
        child.wait()
