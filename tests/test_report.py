"""``midway report`` and ``midway note``: the handoff document in Markdown, HTML and JSON."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import midway
from midway.cli.app import cli
from midway.run import commits


@pytest.fixture
def finished_job(store_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A job stopped half-way with failures, a few history points and a note."""
    monkeypatch.setattr(commits, "HISTORY_SECONDS", 0.0)  # a history point per checkpoint

    def handle(item: int, ctx: Any) -> None:
        if item % 25 == 3:
            raise KeyError(f"no customer {item}")
        time.sleep(0.0005)

    job = midway.Job(
        "handoff", store=store_url, every=10, max_failures=5, progress=False, quiet=True
    )
    with pytest.raises(midway.TooManyFailures):
        job.run(list(range(200)), handle)
    runner = CliRunner()
    out = runner.invoke(
        cli, ["note", "handoff", "CRM maintenance until 18:00; resume after", "--store", store_url]
    )
    assert out.exit_code == 0, out.output
    return store_url


def test_markdown_report_says_where_the_job_stands(finished_job: str) -> None:
    out = CliRunner().invoke(cli, ["report", "handoff", "--store", finished_job])
    assert out.exit_code == 0, out.output
    text = out.output
    assert text.startswith("# Handoff: job `handoff`")
    assert "| failed | 6 |" in text  # 3, 28, 53, 78, 103, 128
    assert "| remaining | 71 |" in text  # the 6th failure (item 128) stopped it
    assert "KeyError" in text
    assert "`3`, `28`, `53`" in text  # example keys of the most common error
    assert "midway retry handoff" in text
    assert "CRM maintenance until 18:00" in text
    assert re.search(r"\| \d{4}-\d\d-\d\dT[\d:]+Z \| [\d,]+ \| [\d,.]+ \|", text)  # throughput
    assert "resumes it" in text  # the command that carries on


def test_html_report_is_self_contained(finished_job: str, tmp_path: Path) -> None:
    target = tmp_path / "handoff.html"
    out = CliRunner().invoke(
        cli, ["report", "handoff", "--format", "html", "-o", str(target), "--store", finished_job]
    )
    assert out.exit_code == 0, out.output
    page = target.read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>")
    assert "<svg" in page
    assert "<polyline" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)  # no fetches
    assert "<script" not in page
    assert "CRM maintenance" in page


def test_json_report_and_in_doubt_section(store_url: str) -> None:
    def send(item: int, ctx: Any) -> None:
        if item == 4:
            raise ConnectionError("the SMTP server hung up mid-message")

    job = midway.Job(
        "mailing", store=store_url, guarantee="at-most-once", progress=False, quiet=True
    )
    with pytest.raises(ConnectionError):
        job.run(list(range(10)), send)
    runner = CliRunner()
    data = json.loads(
        runner.invoke(cli, ["report", "mailing", "--format", "json", "--store", store_url]).output
    )
    assert [item["key"] for item in data["in_doubt_items"]] == [4]
    text = runner.invoke(cli, ["report", "mailing", "--store", store_url]).output
    assert "midway resolve mailing KEY... --done" in text
    assert "| `4` |" in text


def test_note_needs_an_existing_job(store_url: str) -> None:
    midway.Job("exists", store=store_url, progress=False, quiet=True).run([1], lambda i, c: None)
    out = CliRunner().invoke(cli, ["note", "missing", "text", "--store", store_url])
    assert out.exit_code != 0


def short_job(store_url: str, refuse: tuple[int, ...] = ()) -> midway.Job:
    """A job over 500 items of unknown number (a generator), done in well under the few
    seconds between two history points: ``refuse`` fail (tolerated)."""

    def handle(item: int, ctx: Any) -> None:
        if item in refuse:
            raise KeyError(f"no customer {item}")

    job = midway.Job("short", store=store_url, every=100, max_failures=10, quiet=True)
    job.run((i for i in range(500)), handle)
    return job


def test_a_completed_job_shows_its_total_and_a_chart_of_its_run(store_url: str) -> None:
    job = short_job(store_url)
    text = job.report()
    assert "| remaining | 0 |" in text
    assert "| **total** | 500 |" in text
    assert "100.0%" in text
    assert "Not enough checkpoints" not in text  # its run's start and end draw a line
    assert len(re.findall(r"\| \d{4}-\d\d-\d\dT[\d:]+Z \| [\d,]+ \| [\d,.]+ \|", text)) >= 2
    page = job.report("html")
    assert "500 of 500 items" in page
    assert "<svg" in page
    assert job.status().total == 500


def test_a_job_completed_with_failures_says_how_to_retry_them(store_url: str) -> None:
    job = short_job(store_url, refuse=(7, 70))
    text = job.report()
    assert "2 item(s) failed: put them back with `midway retry short`, then run `cd " in text
    assert "only they are handled" in text
    page = job.report("html")
    assert "<code>midway retry short</code>" in page


def test_the_resume_command_names_the_folder_to_run_it_in(store_url: str) -> None:
    job = midway.Job("halt", store=store_url, every=10, quiet=True)

    def handle(item: int, ctx: Any) -> None:
        if item == 25:
            raise KeyError("stop")

    with pytest.raises(KeyError):
        job.run(range(50), handle)
    data = json.loads(job.report("json"))
    assert data["resume_command"].startswith(f"cd {Path.cwd()} && ")
    assert f"cd {Path.cwd()} && " in job.report()


def test_report_all_covers_every_job(store_url: str) -> None:
    short_job(store_url, refuse=(7,))
    halted = midway.Job("halted", store=store_url, every=10, quiet=True)
    with pytest.raises(KeyError):
        halted.run(range(50), lambda item, ctx: {}[item] if item == 25 else None)
    halted.note("the CRM is down until Monday", author="ana")
    runner = CliRunner()
    out = runner.invoke(cli, ["report", "--all", "--since", "7d", "--store", store_url])
    assert out.exit_code == 0, out.output
    text = out.output
    assert text.startswith("# Status of the jobs in ")
    finished = text.split("## Finished since")[1].split("## Running")[0]
    assert "| `short` | completed_with_failures | 500 of 500 | 1 |" in finished
    attention = text.split("## Needs a person")[1].split("## Notes")[0]
    assert "`halted`: its last run failed" in attention
    assert f"cd {Path.cwd()} && " in attention  # the command that resumes it
    assert "`short`: 1 item(s) failed" in attention
    assert "midway retry short" in attention
    assert "ana: the CRM is down until Monday" in text
    assert "| `short` | 500 |" in text.split("## Throughput per job")[1]

    data = json.loads(
        runner.invoke(cli, ["report", "--all", "--format", "json", "--store", store_url]).output
    )
    assert [j["job"] for j in data["finished"]] == ["short"]
    assert {a["job"] for a in data["attention"]} == {"short", "halted"}
    assert sorted(j["job"] for j in data["jobs"]) == ["halted", "short"]
    page = runner.invoke(cli, ["report", "--all", "--format", "html", "--store", store_url])
    assert page.output.startswith("<!doctype html>")
    assert "midway retry short" in page.output


def test_report_usage_errors(store_url: str) -> None:
    short_job(store_url)
    runner = CliRunner()
    assert runner.invoke(cli, ["report", "--store", store_url]).exit_code == 2
    assert runner.invoke(cli, ["report", "short", "--all", "--store", store_url]).exit_code == 2
    assert runner.invoke(cli, ["report", "short", "--since", "7d"]).exit_code == 2
    with pytest.raises(midway.ConfigError, match="not a duration"):
        runner.invoke(
            cli,
            ["report", "--all", "--since", "soon", "--store", store_url],
            catch_exceptions=False,
        )
