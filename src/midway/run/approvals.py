"""``ctx.approval``: an item that waits for a person's decision while the job goes on.

The handler asks; with no answer yet, :func:`ask` raises :class:`ApprovalPending`, which ends
the handler (it is not an ``Exception``: a handler's ``except Exception:`` lets it through,
as it does ``midway.Stopped``). The path that called the handler catches it and records the
item *waiting* (:func:`waiting_record`): a ledger record holding the question, its data, and
the results of the ``ctx.step`` calls made before it. ``midway approve`` turns the record
*decided*; the next run hands the item to the handler again (the retry pass), whose
``ctx.approval`` then finds the answer among the item's steps and returns it at once.

Nothing here runs per item unless a handler asks: the fast loop only gains an ``except``
clause, which costs nothing until an approval is raised.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from midway._model import approval, jsonutil
from midway._model.jsonutil import JSONValue
from midway._model.ledger import DECIDED, WAITING, ItemRecord
from midway.run.steps import StepRecords


class ApprovalPending(BaseException):
    """The item in hand waits for a person: its handler ends here, the job goes on.

    A ``BaseException``, like ``midway.Stopped``, so that ``except Exception:`` in a handler
    does not swallow it (the item would then count as succeeded, its question unasked)."""

    def __init__(self, question: str, data: JSONValue) -> None:
        super().__init__(question)
        self.question = question
        self.data = data


def ask(steps: StepRecords, key: JSONValue, question: Any, data: Any) -> bool:
    """The answer to ``question`` for the item ``key``, or :class:`ApprovalPending`."""
    question, data = approval.check_question(question, data)
    answer = approval.decision(steps.get(jsonutil.dumps(key)), question)
    if answer is None:
        raise ApprovalPending(question, data)
    return answer


def waiting_record(
    pending: ApprovalPending,
    where: tuple[JSONValue, JSONValue, int],
    item: JSONValue,
    steps: dict[str, JSONValue],
) -> ItemRecord:
    """The ledger record of an item that waits (``where``: its key, position, attempt),
    with the steps it finished before the question (``steps``, taken from the run's)."""
    key, position, attempt = where
    now = time.time()
    kept = dict(steps)
    kept.pop(approval.HANDED_BACK, None)  # a new question: the next hand-back is a new one
    approval.asked(kept, pending.question, pending.data, now)
    return ItemRecord(
        key=key,
        status=WAITING,
        error=pending.question,
        attempts=attempt,
        position=position,
        item=item,
        updated_at=now,
        steps=kept,
    )


def mark_handed_back(mark: ItemRecord, steps: StepRecords, key: JSONValue) -> ItemRecord:
    """An at-most-once run hands a decided item back: its mark on disk before the handler
    stays *decided* (so it is still found) and says it was handed back (so that, found
    again after a kill, it is in doubt, not handled a second time)."""
    kept = steps.results.setdefault(jsonutil.dumps(key), {})
    kept[approval.HANDED_BACK] = time.time()
    return dataclasses.replace(mark, status=DECIDED, steps=kept)


def same_position(record: ItemRecord, position: JSONValue) -> bool:
    """Whether ``record`` is of the item that starts at ``position`` (where a run resumes)."""
    return jsonutil.dumps(record.position) == jsonutil.dumps(position)
