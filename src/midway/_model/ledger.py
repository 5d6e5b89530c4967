"""The item ledger: per-item records, only for items that need one.

A record is written in the same transaction as a checkpoint (``Checkpoint.ledger``), or on
its own where it must be on disk before something happens (an at-most-once item is marked
*started* before its handler runs; a retry's attempt count before the retry waits).

Statuses a person sees: ``failed``, ``skipped``, ``in_doubt``, and ``retry`` (put back by
``midway retry`` / ``midway resolve --retry``, handled by the next run), ``waiting`` (the
handler asked ``ctx.approval`` and waits for a person) and ``decided`` (a person answered
with ``midway approve``; the next run hands it back). Statuses the engine
keeps for itself: ``started`` (at-most-once), ``retrying`` (attempts so far, so a poison item
is not retried for ever across restarts), ``steps`` (results of ``ctx.step`` for an item
not yet finished). A record whose status is :data:`DROP` deletes the row.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from enum import StrEnum
from types import UnionType

from midway._model.jsonutil import JSONValue


class ItemStatus(StrEnum):
    """An item record's status; the values are what the store keeps."""

    FAILED = "failed"
    SKIPPED = "skipped"
    IN_DOUBT = "in_doubt"
    RETRY = "retry"
    STARTED = "started"
    RETRYING = "retrying"
    STEPS = "steps"
    DONE = "done"
    WAITING = "waiting"
    DECIDED = "decided"
    DROP = "-"
    """Not kept: a record with this status deletes the item's row."""


DROP = ItemStatus.DROP
FAILED, SKIPPED, IN_DOUBT, RETRY = (
    ItemStatus.FAILED,
    ItemStatus.SKIPPED,
    ItemStatus.IN_DOUBT,
    ItemStatus.RETRY,
)
STARTED, RETRYING, STEPS, DONE = (
    ItemStatus.STARTED,
    ItemStatus.RETRYING,
    ItemStatus.STEPS,
    ItemStatus.DONE,
)
WAITING, DECIDED = ItemStatus.WAITING, ItemStatus.DECIDED
ATTENTION = (FAILED, SKIPPED, IN_DOUBT, RETRY, WAITING)
"""What ``midway show`` lists as items needing attention (a waiting item's ``error`` is its
question; ``midway.views.waiting`` lists them with their data and decisions)."""
KEPT = (FAILED, SKIPPED, IN_DOUBT, RETRY, WAITING, DECIDED)
"""What outlives a completed run: everything else is the engine's own bookkeeping."""


@dataclass(frozen=True)
class ItemRecord:
    """One item's record in a job's ledger: what ``job.items()`` yields, what
    ``on_item_failed`` is handed, what ``midway failed`` lists.

    ``status`` is ``"failed"``, ``"skipped"``, ``"in_doubt"`` or ``"retry"`` (put back for
    the next run); ``error`` the exception as ``Type: message``; ``attempts`` how many
    times the handler ran; ``at`` when the record was written (an aware ``datetime``);
    ``item`` the item itself where the job keeps it (``record_items=True``).

    >>> record = ItemRecord(key=4711, status="failed", error="ValueError: bad date",
    ...                     attempts=3, updated_at=1_700_000_000.0)
    >>> record.error_type, record.at.isoformat()
    ('ValueError', '2023-11-14T22:13:20+00:00')
    """

    key: JSONValue
    status: str
    error: str | None = None
    traceback: str | None = None
    attempts: int = 0
    position: JSONValue = None
    item: JSONValue = None
    updated_at: float = 0.0
    steps: dict[str, JSONValue] = field(default_factory=dict)

    @property
    def at(self) -> datetime | None:
        """When the record was written, in UTC (None for a record without a time)."""
        return aware(self.updated_at)

    @property
    def error_type(self) -> str | None:
        """``ValueError`` for an error recorded as ``ValueError: bad date``."""
        if not self.error:
            return None
        return self.error.split(":", 1)[0].strip()

    def to_json(self) -> dict[str, JSONValue]:
        """What a person is shown (``midway show --json``, the dashboard, the report)."""
        from midway._model.owner import iso  # not for ``import midway``: owner is a run's

        body = {name: getattr(self, name) for name in _SHOWN}
        body["updated_at"] = iso(self.updated_at)
        return body

    def to_export(self) -> dict[str, JSONValue]:
        """Everything, for ``midway failed --export``."""
        body = self.to_json()
        body["traceback"] = self.traceback
        body["item"] = self.item
        body["steps"] = self.steps or None
        return body

    def to_store(self) -> dict[str, JSONValue]:
        """Every field, as the file store keeps it (read back by :meth:`from_store`)."""
        return {name: getattr(self, name) for name in _STORED}

    @classmethod
    def from_store(cls, data: dict[str, JSONValue]) -> ItemRecord:
        """Lenient: a field of the wrong type reads as its default (the record stays usable)."""

        def typed(name: str, kind: type | UnionType, default: JSONValue) -> JSONValue:
            value = data.get(name)
            return value if isinstance(value, kind) else default

        return cls(
            key=data.get("key"),
            status=str(data.get("status")),
            error=typed("error", str, None),
            traceback=typed("traceback", str, None),
            attempts=typed("attempts", int, 0),
            position=data.get("position"),
            item=data.get("item"),
            updated_at=float(typed("updated_at", int | float, 0.0)),
            steps=typed("steps", dict, {}),
        )


_STORED = tuple(f.name for f in fields(ItemRecord))
_SHOWN = ("key", "status", "error", "attempts", "position", "updated_at")


def aware(ts: float | None) -> datetime | None:
    """A time kept as seconds since the epoch, as an aware ``datetime`` in UTC (None for
    none, or for a damaged value no date can hold)."""
    if not ts:
        return None
    try:
        return datetime.fromtimestamp(ts, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def drop(key: JSONValue) -> ItemRecord:
    """A ledger change that deletes the record of ``key``."""
    return ItemRecord(key=key, status=DROP)


def matches(record: ItemRecord, keys: list[JSONValue] | None, error_type: str | None) -> bool:
    """For ``midway retry --key / --error`` and ``resolve``: does this record qualify?"""
    if keys is not None and record.key not in keys and str(record.key) not in map(str, keys):
        return False
    return error_type is None or record.error_type == error_type


ALL = (FAILED, SKIPPED, IN_DOUBT, RETRY, STARTED, RETRYING, STEPS, DONE, WAITING, DECIDED)
