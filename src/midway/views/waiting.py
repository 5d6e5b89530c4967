"""Items waiting for a person's decision (``ctx.approval``), for every screen that lists
them: ``midway status`` / ``show`` / ``report``, the dashboard, and a report across jobs."""

from __future__ import annotations

import json
import shlex

from midway._model import approval
from midway._model.jsonutil import JSONValue
from midway._model.ledger import DECIDED, WAITING
from midway.stores import Store

WaitingView = dict[str, JSONValue]
"""``key``, ``status`` (waiting, or decided and not handed back yet), ``question``,
``data``, ``asked_at``, and once decided ``approved``, ``by``, ``decided_at``, ``note``."""


def waiting_items(store: Store, job: str, *, decided: bool = True) -> list[WaitingView]:
    """The job's items that wait for a decision (and, with ``decided``, those decided and
    not yet handed back), the oldest question first."""
    statuses = (WAITING, DECIDED) if decided else (WAITING,)
    views = [approval.describe(r) for r in store.list_items(job, statuses)]
    return sorted(views, key=lambda v: str(v.get("asked_at") or ""))


def waiting_decisions(store: Store) -> list[WaitingView]:
    """Every job's waiting items, the oldest first, each with its ``job`` and the
    ``approve`` / ``reject`` commands that decide it (for a report across jobs)."""
    found: list[WaitingView] = []
    for record in store.list_jobs():
        for view in waiting_items(store, record.job, decided=False):
            key = view["key"] if isinstance(view["key"], str) else str(view["key"])
            command = f"midway approve {shlex.quote(record.job)} {shlex.quote(key)}"
            found.append(
                {"job": record.job, **view, "approve": command, "reject": command + " --reject"}
            )
    return sorted(found, key=lambda v: str(v.get("asked_at") or ""))


def markdown_section(items: list[WaitingView], quoted_job: str) -> list[str]:
    """The report's "Waiting for a decision" section, in Markdown."""
    if not items:
        return ["None."]
    lines = [
        "These items asked a person (`ctx.approval`); the job handles them once decided:",
        "",
        "```sh",
        f"midway approve {quoted_job} KEY...            # yes",
        f"midway approve {quoted_job} KEY... --reject   # no",
        "```",
        "",
        "| key | asked | question | decision |",
        "|---|---|---|---|",
    ]
    for item in items:
        question = str(item["question"]).replace("|", "\\|").replace("\n", " ")
        lines.append(
            f"| `{json.dumps(item['key'], ensure_ascii=False)}` | {item['asked_at']} | "
            f"{question} | {decision_text(item)} |"
        )
    return lines


def html_rows(items: list[WaitingView]) -> list[tuple[str, str, str, str]]:
    """The report's waiting items as escaped table cells: key, asked, question, decision."""
    import html  # only the HTML report needs it: not ``midway status``

    e = html.escape
    return [
        (
            f"<code>{e(json.dumps(item['key'], ensure_ascii=False))}</code>",
            e(str(item["asked_at"] or "")),
            e(str(item["question"])),
            e(decision_text(item)),
        )
        for item in items
    ]


def decision_text(item: WaitingView) -> str:
    """``approved by ann at ...``, ``rejected by ...``, or ``waiting``."""
    if item.get("approved") is None:
        return "waiting"
    verb = "approved" if item["approved"] else "rejected"
    note = f" ({item['note']})" if item.get("note") else ""
    return f"{verb} by {item['by']} at {item['decided_at']}{note}; handed back by the next run"
