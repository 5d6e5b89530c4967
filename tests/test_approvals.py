"""People in the loop: ``ctx.approval`` parks an item as waiting while the job goes on,
``midway approve`` / ``job.approve`` decide, and the next run hands decided items back."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import midway
from midway.cli.app import cli
from midway.errors import ConfigError

ASKS = {7, 14, 21}


def make_job(store_url: str, **options: Any) -> midway.Job:
    return midway.Job("invoices", store=store_url, every=5, quiet=True, **options)


class Handler:
    """Prepares each item in a step, asks about the items in ASKS, records what it did."""

    def __init__(self) -> None:
        self.prepared: list[int] = []
        self.finished: list[tuple[int, bool | None]] = []

    def __call__(self, item: int, ctx: midway.Context) -> None:
        ctx.step("prepare", self.prepared.append, item)
        answer = None
        if item in ASKS:
            try:
                answer = ctx.approval(f"pay invoice {item}?", data={"amount": item * 1000})
            except Exception:  # a handler's own catch-all must not swallow the question
                raise AssertionError("ctx.approval was swallowed by except Exception") from None
        self.finished.append((item, answer))
        ctx.state["done"] = ctx.state.get("done", 0) + 1


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False, env={"COLUMNS": "200"})


@pytest.mark.parametrize("guarantee", ["at-least-once", "at-most-once", "exactly-once"])
def test_round_trip_ask_decide_carry_on(tmp_path: Path, guarantee: str) -> None:
    store_url = f"sqlite:///{tmp_path / 'state.db'}"
    job = make_job(store_url, guarantee=guarantee)
    first = Handler()
    result = job.run(range(30), first)
    assert result.status == "waiting"
    assert (result.succeeded, result.waiting, result.processed) == (27, 3, 30)
    assert sorted(first.prepared) == list(range(30))
    assert [i for i, _ in first.finished] == [i for i in range(30) if i not in ASKS]

    again = Handler()  # nothing decided yet: nothing is handled again
    result = job.run(range(30), again)
    assert (result.status, result.waiting, again.prepared, again.finished) == (
        "waiting",
        3,
        [],
        [],
    )

    assert job.approve([7, 14], note="checked the PO") == 2
    assert job.approve([21], approved=False) == 1
    last = Handler()
    result = job.run(range(30), last)
    assert result.status == "completed"
    assert (result.succeeded, result.waiting, result.processed) == (30, 0, 30)
    assert sorted(last.finished) == [(7, True), (14, True), (21, False)]
    assert last.prepared == []  # the steps before the question are not run again
    assert result.state["done"] == 30


def test_status_show_and_report_list_the_questions(tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'state.db'}"
    make_job(store_url).run(range(30), Handler())
    shown = json.loads(invoke("show", "invoices", "--json", "--store", store_url).output)
    assert shown["status"] == "waiting"
    assert shown["waiting"] == 3
    waiting = {item["key"]: item for item in shown["waiting_items"]}
    assert set(waiting) == ASKS
    assert waiting[7]["question"] == "pay invoice 7?"
    assert waiting[7]["data"] == {"amount": 7000}
    assert waiting[7]["asked_at"]
    assert waiting[7]["approved"] is None
    table = invoke("show", "invoices", "--store", store_url).output
    assert "pay invoice 14?" in table
    assert "midway approve invoices" in table
    status = invoke("status", "--store", store_url).output
    assert "waiting" in status
    assert "3 item(s) wait for a decision" in status
    assert "7: pay invoice 7?" in status  # the oldest questions
    assert json.loads(invoke("status", "--json", "--store", store_url).output)[0]["waiting"] == 3

    out = invoke(
        "approve", "invoices", "7", "--reject", "--note", "duplicate", "--store", store_url
    )
    assert out.exit_code == 0
    assert "1 item(s) of 'invoices' rejected" in out.output
    shown = json.loads(invoke("show", "invoices", "--json", "--store", store_url).output)
    seven = next(item for item in shown["waiting_items"] if item["key"] == 7)
    assert (seven["status"], seven["approved"], seven["note"]) == ("decided", False, "duplicate")
    assert seven["by"]
    assert seven["decided_at"]
    report = invoke("report", "invoices", "--store", store_url).output
    assert "rejected 1 waiting item(s): 7 (duplicate)" in report
    assert "## Waiting for a decision" in report
    assert "| `14` |" in report
    assert "pay invoice 14? | waiting |" in report
    assert "rejected by" in report
    page = invoke("report", "invoices", "--format", "html", "--store", store_url).output
    assert "<h2>Waiting for a decision</h2>" in page
    assert "pay invoice 14?" in page


def test_approve_refuses_a_key_that_is_not_waiting(tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'state.db'}"
    make_job(store_url).run(range(30), Handler())
    done = subprocess.run(
        [sys.executable, "-m", "midway", "approve", "invoices", "7", "8", "--store", store_url],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "no item waiting for a decision with key 8" in done.stderr
    assert (
        json.loads(invoke("show", "invoices", "--json", "--store", store_url).output)["waiting"]
        == 3
    )  # nothing decided: 7 still waits too
    with pytest.raises(ConfigError, match="key 99"):
        make_job(store_url).approve([99])
    assert invoke("approve", "invoices", "--store", store_url).exit_code == 2  # no KEYS


def test_approve_all_and_the_hook(tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'state.db'}"
    told: list[midway.ItemRecord] = []
    make_job(store_url, on_waiting=told.append).run(range(30), Handler())
    assert sorted(r.key for r in told) == sorted(ASKS)  # type: ignore[type-var]
    assert {r.status for r in told} == {"waiting"}
    assert told[0].error == "pay invoice 7?"
    assert invoke("approve", "invoices", "--all", "--store", store_url).exit_code == 0
    handler = Handler()
    assert make_job(store_url).run(range(30), handler).status == "completed"
    assert sorted(handler.finished) == [(7, True), (14, True), (21, True)]


def test_data_must_be_json(tmp_path: Path) -> None:
    job = make_job(f"sqlite:///{tmp_path / 'state.db'}")

    def handler(item: int, ctx: midway.Context) -> None:
        ctx.approval("ok?", data={"when": object()})

    with pytest.raises(ConfigError, match="JSON cannot hold"):
        job.run(range(3), handler)


def test_approval_in_a_loop_body_is_refused(tmp_path: Path) -> None:
    loop = make_job(f"sqlite:///{tmp_path / 'state.db'}").loop(range(3))
    for _ in loop:
        with pytest.raises(ConfigError, match=r"job\.loop"):
            loop.ctx.approval("ok?")


def test_a_second_question_waits_again_with_the_first_answer_kept(store_url: str) -> None:
    job = make_job(store_url)
    asked: list[tuple[int, str]] = []

    def handler(item: int, ctx: midway.Context) -> None:
        if item == 3:
            asked.append((item, "first"))
            first = ctx.approval("first?")
            asked.append((item, f"second after {first}"))
            ctx.approval("second?")
            asked.append((item, "done"))

    assert job.run(range(5), handler).status == "waiting"
    job.approve([3])
    assert job.run(range(5), handler).status == "waiting"
    job.approve([3], approved=False)
    assert job.run(range(5), handler).status == "completed"
    assert asked == [
        (3, "first"),
        (3, "first"),
        (3, "second after True"),
        (3, "first"),
        (3, "second after True"),
        (3, "done"),
    ]


def test_approval_with_workers_is_refused(tmp_path: Path) -> None:
    job = make_job(f"sqlite:///{tmp_path / 'state.db'}", workers=2)

    def handler(item: int, ctx: Any) -> None:
        ctx.approval("ok?")

    with pytest.raises(ConfigError, match="workers="):
        job.run(range(3), handler)


def test_report_all_lists_the_decisions_waiting_across_jobs(tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'state.db'}"
    make_job(store_url).run(range(30), Handler())
    midway.Job("plain", store=store_url, quiet=True).run(range(5), lambda item, ctx: None)

    page = invoke("report", "--all", "--store", store_url)
    assert page.exit_code == 0, page.output
    section = page.output.split("## Decisions waiting, oldest first", 1)[1].split("\n## ", 1)[0]
    assert [f"pay invoice {n}?" in section for n in sorted(ASKS)] == [True] * len(ASKS)
    assert "midway approve invoices 7" in section
    assert "midway approve invoices 21 --reject" in section
    assert "plain" not in section

    data = json.loads(invoke("report", "--all", "--format", "json", "--store", store_url).output)
    assert [(d["job"], d["key"]) for d in data["decisions"]] == [
        ("invoices", n) for n in (7, 14, 21)
    ]

    midway.Job("invoices", store=store_url, every=5, quiet=True).approve(sorted(ASKS))
    data = json.loads(invoke("report", "--all", "--format", "json", "--store", store_url).output)
    assert data["decisions"] == []  # decided: no longer waiting for a person
