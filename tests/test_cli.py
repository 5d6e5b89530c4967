"""The ``midway`` command: status / show / reset output and JSON shapes, exit codes from a
real process, help texts with examples, and the demo end to end."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

import midway
from midway._model.identity import JobId
from midway._model.owner import Owner, hostname
from midway.cli.app import cli
from midway.stores import RunRecord, open_store

STATUS_FIELDS = {
    "job",
    "name",
    "params",
    "status",
    "processed",
    "succeeded",
    "failed",
    "skipped",
    "in_doubt",
    "total",
    "position",
    "state",
    "checkpoint",
    "updated_at",
    "checkpoint_age_seconds",
    "rate_per_second",
    "eta_seconds",
    "owner",
}
SHOW_FIELDS = STATUS_FIELDS | {"fingerprint", "items", "runs", "lease", "created_at"}
ITEM_FIELDS = {"key", "status", "error", "attempts"}
RUN_FIELDS = {"run_id", "status", "host", "pid", "started_at", "ended_at", "message"}

COMPLETED_PARAMS = {"file": "contacts.csv"}


class Boom(Exception):
    pass


def populate(url: str) -> str:
    """A completed job (with params), a failed one, a stopped one and a crashed one.
    Returns the completed job's key."""
    done = midway.Job("done", store=url, params=COMPLETED_PARAMS, quiet=True)
    done.run(range(40), lambda item, ctx: ctx.state.__setitem__("last", item), state={})

    def explode(item: int, ctx: midway.Context) -> None:
        if item == 37:
            raise Boom("the CRM said no")

    failed = midway.Job("broken", store=url, every=10, every_seconds=None, quiet=True)
    with pytest.raises(Boom):
        failed.run(range(100), explode, state={"batch": "b-7"})

    stopped = midway.Job("halted", store=url, every=10, every_seconds=None, quiet=True)

    def interrupted() -> None:
        for item in stopped.loop(range(100)):
            if item == 12:
                raise Boom("interrupted")

    with pytest.raises(Boom):
        interrupted()

    # A runner that died without a word: its run still says "running", its lease is dead.
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    store = open_store(url)
    try:
        ghost = Owner(hostname(), child.pid, None)
        lease = store.acquire_lease(JobId("ghost"), ghost, 3600.0)
        store.begin_run(
            lease,
            RunRecord(
                run_id="r-ghost",
                job="ghost",
                status="running",
                host=hostname(),
                pid=child.pid,
                started_at=time.time(),
            ),
        )
    finally:
        store.close()
    return done.key


def invoke(*args: str) -> Result:
    """In-process, for output checks; a wide terminal so that tables do not wrap names."""
    return CliRunner().invoke(cli, list(args), catch_exceptions=False, env={"COLUMNS": "200"})


def midway_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """The real command in a child process, stdin not a terminal."""
    return subprocess.run(
        [sys.executable, "-m", "midway", *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        env=env,
        cwd=cwd,
        check=False,
    )


# -- status -------------------------------------------------------------------------------


def test_status_json_shapes_and_values(store_url: str) -> None:
    done_key = populate(store_url)
    result = invoke("status", "--json", "--store", store_url)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert isinstance(rows, list)
    by_job = {row["job"]: row for row in rows}
    assert set(by_job) == {done_key, "broken", "halted", "ghost"}
    for row in rows:
        assert set(row) >= STATUS_FIELDS, STATUS_FIELDS - set(row)
        assert "items" not in row

    done = by_job[done_key]
    assert done["name"] == "done"
    assert done["params"] == COMPLETED_PARAMS
    assert done["status"] == "completed"
    assert (done["processed"], done["succeeded"], done["failed"]) == (40, 40, 0)
    assert done["checkpoint"] is None
    assert done["checkpoint_age_seconds"] is None
    assert done["state"] == {"last": 39}
    assert done["owner"] is None
    assert isinstance(done["updated_at"], str)

    broken = by_job["broken"]
    assert broken["status"] == "failed"
    assert broken["processed"] == 37
    assert broken["position"] == 37
    assert broken["state"] == {"batch": "b-7"}
    assert isinstance(broken["checkpoint"]["version"], int)
    assert broken["checkpoint"]["version"] >= 1
    assert broken["checkpoint"]["position"] == 37
    assert broken["remaining"] == 63
    assert broken["checkpoint_age_seconds"] >= 0
    assert broken["total"] == 100
    assert broken["rate_per_second"] is None or broken["rate_per_second"] > 0
    assert broken["eta_seconds"] is None, "no ETA for a job nobody is running"

    halted = by_job["halted"]
    assert halted["status"] == "stopped"
    assert halted["processed"] == 12
    assert halted["position"] == 12

    assert by_job["ghost"]["status"] == "crashed"
    assert by_job["ghost"]["owner"] is None


def test_status_table(store_url: str) -> None:
    done_key = populate(store_url)
    result = invoke("status", "--store", store_url)
    assert result.exit_code == 0
    out = result.stdout
    for word in (done_key, "broken", "halted", "ghost", "completed", "failed", "stopped"):
        assert word in out, (word, out)
    assert "crashed" in out


def test_status_of_an_empty_store(store_url: str) -> None:
    result = invoke("status", "--json", "--store", store_url)
    assert result.exit_code == 0
    assert json.loads(result.stdout) == []
    table = invoke("status", "--store", store_url)
    assert table.exit_code == 0
    assert "No jobs" in table.stdout
    assert "midway demo" in table.stdout
    with pytest.raises(midway.StoreNotFound, match="no store at"):
        invoke("show", "anything", "--store", store_url)
    open_store(store_url).close()  # now it exists, and holds no job
    table = invoke("status", "--store", store_url)
    assert "No jobs in" in table.stdout
    with pytest.raises(midway.JobNotFound, match="no job 'anything'"):
        invoke("show", "anything", "--store", store_url)


def test_reading_commands_do_not_create_a_mistyped_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'typo' / 'state.db'}"
    result = midway_cli("show", "x", "--store", url)
    assert result.returncode == 2
    assert "no store at" in result.stderr
    assert not (tmp_path / "typo").exists()


# -- show ---------------------------------------------------------------------------------


def test_show_json_of_a_failed_job(store_url: str) -> None:
    populate(store_url)
    result = invoke("show", "broken", "--json", "--store", store_url)
    assert result.exit_code == 0, result.output
    detail = json.loads(result.stdout)
    assert set(detail) >= SHOW_FIELDS, SHOW_FIELDS - set(detail)
    assert detail["job"] == "broken"
    assert detail["status"] == "failed"
    assert detail["processed"] == 37
    assert detail["fingerprint"]["kind"] == "sequence"
    assert isinstance(detail["items"], list)
    assert detail["runs"], "the run history is shown"
    run = detail["runs"][0]
    assert set(run) >= RUN_FIELDS
    assert run["status"] == "failed"
    assert "the CRM said no" in run["message"]
    assert detail["lease"] is None or detail["lease"]["live"] is False
    assert isinstance(detail["created_at"], str)


def test_show_json_of_a_stopped_job(store_url: str) -> None:
    populate(store_url)
    result = invoke("show", "halted", "--json", "--store", store_url)
    assert result.exit_code == 0, result.output
    detail = json.loads(result.stdout)
    assert set(detail) >= SHOW_FIELDS
    assert detail["status"] == "stopped"
    assert detail["processed"] == 12
    assert detail["position"] == 12
    assert detail["runs"][0]["status"] == "stopped"
    assert "left before the end" in detail["runs"][0]["message"]


def test_show_json_of_a_completed_job_by_name(store_url: str) -> None:
    done_key = populate(store_url)
    result = invoke("show", "done", "--json", "--store", store_url)
    assert result.exit_code == 0, result.output
    detail = json.loads(result.stdout)
    assert detail["job"] == done_key
    assert detail["status"] == "completed"
    assert detail["checkpoint"] is None
    assert detail["fingerprint"] is None
    assert detail["items"] == []
    assert detail["runs"][0]["status"] == "completed"


def test_show_human(store_url: str) -> None:
    populate(store_url)
    done = invoke("show", "done", "--store", store_url)
    assert done.exit_code == 0
    assert "completed" in done.stdout
    assert "none (the next run starts fresh)" in done.stdout
    broken = invoke("show", "broken", "--store", store_url)
    assert broken.exit_code == 0
    out = broken.stdout
    assert "failed" in out
    assert "37" in out
    assert "runs (newest first)" in out
    halted = invoke("show", "halted", "--store", store_url)
    assert halted.exit_code == 0
    assert "stopped" in halted.stdout
    assert "12 of 100" in halted.stdout
    assert re.search(r"checkpoint\s+#2 at ", halted.stdout), halted.stdout


def test_show_lists_ledger_items(tmp_path: Path) -> None:
    """Failed items from the ledger appear in show, with key, status, error and attempts."""
    path = tmp_path / "ledger.db"
    url = f"sqlite:///{path}"
    populate(url)
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(
            "INSERT INTO midway_items (job, key, status, error, attempts, updated_at) "
            "VALUES ('broken', ?, 'failed', 'ValueError: bad e-mail', 3, ?)",
            (json.dumps("c-17"), time.time()),
        )
    conn.close()
    detail = json.loads(invoke("show", "broken", "--json", "--store", url).stdout)
    assert len(detail["items"]) == 1
    item = detail["items"][0]
    assert set(item) >= ITEM_FIELDS
    assert item["key"] == "c-17"
    assert item["status"] == "failed"
    assert item["error"] == "ValueError: bad e-mail"
    assert item["attempts"] == 3
    human = invoke("show", "broken", "--store", url)
    assert "items needing attention" in human.stdout
    assert "c-17" in human.stdout


# -- exit codes from a real process -------------------------------------------------------


def test_cli_exit_codes(store_url: str) -> None:
    populate(store_url)
    ok = midway_cli("status", "--json", "--store", store_url)
    assert ok.returncode == 0, ok.stderr
    assert len(json.loads(ok.stdout)) == 4

    unknown = midway_cli("show", "no-such-job", "--store", store_url)
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("midway: error: "), unknown.stderr
    assert "no job 'no-such-job'" in unknown.stderr
    assert "midway status" in unknown.stderr  # says where to look
    assert "Traceback" not in unknown.stderr

    unconfirmed = midway_cli("reset", "halted", "--store", store_url)
    assert unconfirmed.returncode == 2
    assert "--yes" in unconfirmed.stderr
    still = midway_cli("show", "halted", "--json", "--store", store_url)
    assert still.returncode == 0, "reset without --yes must change nothing"
    assert json.loads(still.stdout)["processed"] == 12

    confirmed = midway_cli("reset", "halted", "--yes", "--store", store_url)
    assert confirmed.returncode == 0, confirmed.stderr
    assert "halted" in confirmed.stdout
    gone = midway_cli("show", "halted", "--store", store_url)
    assert gone.returncode == 2
    jobs = {
        row["job"]
        for row in json.loads(midway_cli("status", "--json", "--store", store_url).stdout)
    }
    assert "halted" not in jobs
    assert "broken" in jobs


def test_cli_uses_midway_store_from_the_environment(store_url: str) -> None:
    populate(store_url)
    env = {**os.environ, "MIDWAY_STORE": store_url}
    proc = midway_cli("status", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "broken" in {row["job"] for row in json.loads(proc.stdout)}


def test_cli_usage_errors_exit_2() -> None:
    bad_store = midway_cli("status", "--store", "mysql://db/x")
    assert bad_store.returncode == 2
    assert "midway: error:" in bad_store.stderr
    no_such = midway_cli("frobnicate")
    assert no_such.returncode == 2
    missing_arg = midway_cli("show")
    assert missing_arg.returncode == 2


# -- help ---------------------------------------------------------------------------------


def test_every_command_has_an_example() -> None:
    names = cli.list_commands(click.Context(cli))  # the commands are imported when used
    assert {"status", "show", "reset", "demo"} <= set(names)
    for name in names:
        result = invoke(name, "--help")
        assert result.exit_code == 0, name
        assert "Example" in result.stdout, f"`midway {name} --help` shows no example"
        assert f"midway {name}" in result.stdout, name
    top = invoke("--help")
    assert top.exit_code == 0
    for name in names:
        assert name in top.stdout


def test_every_command_takes_store_and_listings_take_json() -> None:
    for name in ("status", "show", "reset", "demo"):
        assert "--store" in invoke(name, "--help").stdout, name
    for name in ("status", "show"):
        assert "--json" in invoke(name, "--help").stdout, name


# -- the demo -----------------------------------------------------------------------------


def test_demo_passes(tmp_path: Path) -> None:
    proc = midway_cli(
        "demo",
        "--count",
        "300",
        "--every",
        "20",
        "--crash-at",
        "150",
        "--dir",
        str(tmp_path / "demo-files"),
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Demo passed" in proc.stdout
    assert "SIGKILL" in proc.stdout
    assert "RESUMING" in proc.stderr
    # The demo used the default store, in the working directory; its summary stays there.
    status = midway_cli("status", "--json", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    rows: list[dict[str, Any]] = json.loads(status.stdout)
    assert [(r["job"], r["status"], r["processed"]) for r in rows] == [
        ("demo-import-contacts", "completed", 300)
    ]
