"""What a person is asked about an item (``ctx.approval``) and what they answered: data, no I/O.

The questions of an item live with its ``ctx.step`` results, in its ledger record's ``steps``
under :data:`APPROVALS` (so a resumed or handed-back item finds its steps and its decisions
in one place, and the stores keep them without a column of their own)::

    {"midway:approvals": {"send INV-7?": {"data": {...}, "asked_at": 1700000000.0,
                                          "approved": true, "by": "ann", "at": ..., "note": "ok"}}}

``approved`` is absent until a person decides.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from midway._model import jsonutil
from midway._model.jsonutil import JSONValue
from midway._model.ledger import DECIDED, ItemRecord
from midway._model.owner import iso
from midway.errors import ConfigError

APPROVALS = "midway:approvals"
"""The reserved ``steps`` entry that holds an item's questions (not a step name to use)."""
HANDED_BACK = "midway:handed_back"
"""Set (to the time) in a decided item's steps when an at-most-once run hands it back: a run
that finds it set again was killed in that item's handler, which is then in doubt."""
MAX_QUESTION = 2000


def questions(steps: dict[str, JSONValue]) -> dict[str, Any]:
    """The item's questions, by their text (empty when it asked none)."""
    found = steps.get(APPROVALS)
    return found if isinstance(found, dict) else {}


def decision(steps: dict[str, JSONValue], question: str) -> bool | None:
    """The person's answer to ``question``, or None while there is none."""
    entry = questions(steps).get(question)
    if isinstance(entry, dict) and isinstance(entry.get("approved"), bool):
        return bool(entry["approved"])
    return None


def check_question(question: object, data: object) -> tuple[str, JSONValue]:
    """``ctx.approval``'s arguments, refused clearly when they cannot be kept."""
    if not isinstance(question, str) or not question.strip():
        raise ConfigError("ctx.approval(question, data=None): question must be a non-empty str")
    if len(question) > MAX_QUESTION:
        raise ConfigError(
            f"ctx.approval: the question is {len(question):,} characters; keep it under "
            f"{MAX_QUESTION:,} and put the details in data="
        )
    try:
        jsonutil.dumps(data)
    except (TypeError, ValueError, RecursionError):
        raise ConfigError(
            f"ctx.approval({question[:60]!r}, data=...): data is a {type(data).__name__} that "
            "JSON cannot hold; it is stored for the person who decides: pass JSON (dict, "
            "list, str, number, bool or None), e.g. str() the values that are not"
        ) from None
    return question, data


def asked(steps: dict[str, JSONValue], question: str, data: JSONValue, now: float) -> None:
    """Record in ``steps`` that ``question`` was asked (kept if it was asked before)."""
    entries = dict(questions(steps))
    entries.setdefault(question, {"data": data, "asked_at": now})
    steps[APPROVALS] = entries


def handed_back(steps: dict[str, JSONValue]) -> bool:
    return HANDED_BACK in steps


def pending_question(record: ItemRecord) -> tuple[str, dict[str, Any]] | None:
    """The question the item waits on (the last one asked without an answer)."""
    for question, entry in reversed(questions(record.steps).items()):
        if isinstance(entry, dict) and not isinstance(entry.get("approved"), bool):
            return question, entry
    return None


def decided(
    record: ItemRecord, approved: bool, by: str, note: str | None, now: float
) -> ItemRecord:
    """A copy of a waiting record with the person's answer to its open question."""
    steps = dict(record.steps)
    entries = dict(questions(steps))
    open_question = pending_question(record)
    if open_question is not None:
        question, entry = open_question
        entries[question] = {**entry, "approved": approved, "by": by, "at": now, "note": note}
    steps[APPROVALS] = entries
    return dataclasses.replace(record, status=DECIDED, updated_at=now, steps=steps)


def describe(record: ItemRecord) -> dict[str, JSONValue]:
    """What a person is shown of a waiting or decided item: question, data, answer."""
    open_question = pending_question(record)
    if open_question is not None:
        question, entry = open_question
    else:
        entries = list(questions(record.steps).items())
        question, entry = entries[-1] if entries else (record.error or "", {})
    return {
        "key": record.key,
        "status": record.status,
        "question": question,
        "data": entry.get("data"),
        "asked_at": iso(entry.get("asked_at")),
        "approved": entry.get("approved"),
        "by": entry.get("by"),
        "decided_at": iso(entry.get("at")),
        "note": entry.get("note"),
    }
