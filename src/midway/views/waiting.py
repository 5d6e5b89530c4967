"""Items waiting for a person's decision (``ctx.approval``), for every screen that lists
them: ``midway status`` / ``show`` / ``report``, the dashboard, and a report across jobs."""

from __future__ import annotations

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
