"""The checkpoint a job resumes from, and how it is turned into JSON and back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from midway._model.jsonutil import JSONValue, dumps, dumps_state
from midway._model.ledger import ItemRecord, ItemStatus
from midway.errors import StoreCorrupt

COUNTER_NAMES = ("succeeded", "failed", "skipped", "in_doubt", "waiting")
MAX_COUNT = 2**53
"""No job counts this far (JSON's exact integers end here): a larger counter or version was
damaged, and adding to it would overflow the store's 64-bit integers on the next write."""


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_COUNT


@dataclass(slots=True)
class Counters:
    """Items by outcome. ``processed`` is their sum: an item counts once it has an outcome."""

    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    in_doubt: int = 0
    waiting: int = 0
    """Items whose handler asked ``ctx.approval`` and wait for a person's decision."""

    @property
    def processed(self) -> int:
        return self.succeeded + self.failed + self.skipped + self.in_doubt + self.waiting

    def as_dict(self) -> dict[str, int]:
        """The counters by name; ``waiting`` only when some item waits (the shape stays as
        it was for every job that never asked ``ctx.approval``)."""
        counts = {name: getattr(self, name) for name in COUNTER_NAMES}
        if not self.waiting:
            del counts["waiting"]
        return counts

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Counters:
        values = {}
        for name in COUNTER_NAMES:
            value = data.get(name, 0)
            if not _is_count(value):
                raise StoreCorrupt(f"checkpoint counter {name!r} is {value!r}, not a count")
            values[name] = value
        return cls(**values)

    def copy(self) -> Counters:
        return Counters(self.succeeded, self.failed, self.skipped, self.in_doubt, self.waiting)

    def moved(self, records: list[ItemRecord], count_as: str) -> Counters:
        """A copy with each record's count moved from its status to ``count_as``
        (``midway resolve --done``: an in-doubt item now counts as succeeded)."""
        result = self.copy()
        for record in records:
            # an item put back for a retry is still counted as failed
            source = ItemStatus.FAILED if record.status == ItemStatus.RETRY else record.status
            if source in COUNTER_NAMES and getattr(result, source) > 0:
                setattr(result, source, getattr(result, source) - 1)
                setattr(result, count_as, getattr(result, count_as) + 1)
        return result


@dataclass(slots=True)
class Checkpoint:
    """The durable record a job resumes from. ``version`` grows by one with every write."""

    job: str
    version: int
    run_id: str
    position: JSONValue
    counters: Counters
    state: dict[str, JSONValue]
    fingerprint: dict[str, JSONValue]
    total: int | None = None
    started_at: float = 0.0
    updated_at: float = 0.0
    extra: dict[str, JSONValue] = field(default_factory=dict)
    state_json: str | None = field(default=None, compare=False, repr=False)
    """``state`` already encoded (by the engine, which checks it); stores reuse it."""
    ledger: list[ItemRecord] = field(default_factory=list, compare=False, repr=False)
    """Item ledger changes that commit with this checkpoint (status ``"-"`` deletes)."""
    sample: bool = field(default=False, compare=False, repr=False)
    """Also record the counters in the job's history (for throughput charts)."""

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "job": self.job,
            "version": self.version,
            "run_id": self.run_id,
            "position": self.position,
            "counters": self.counters.as_dict(),
            "state": self.state,
            "fingerprint": self.fingerprint,
            "total": self.total,
            "started_at": self.started_at,
            "updated_at": self.updated_at,
            "extra": self.extra,
        }

    def to_json_text(self) -> str:
        """The JSON document, with ``state`` as the engine encoded it when the checkpoint was
        taken (the live dict may have changed since: the writer runs on another thread)."""
        body = self.to_json()
        del body["state"]
        state = self.state_json if self.state_json is not None else dumps_state(self.state)
        return '{"state":' + state + "," + dumps(body)[1:]

    @classmethod
    def from_json(cls, data: object, where: str) -> Checkpoint:
        """Validate as we read: a damaged record is a clear ``StoreCorrupt``, never a restart."""
        if not isinstance(data, dict):
            raise StoreCorrupt(f"{where}: the checkpoint is not a JSON object")
        try:
            job = data["job"]
            version = data["version"]
            run_id = data["run_id"]
            state = data["state"]
            fingerprint = data["fingerprint"]
            counters = data["counters"]
        except KeyError as missing:
            raise StoreCorrupt(
                f"{where}: the checkpoint has no field {missing}; it was damaged. "
                "Restore the store from a backup, or `midway reset` the job to start again."
            ) from None
        extra = data.get("extra") or {}
        started_at, updated_at = data.get("started_at") or 0.0, data.get("updated_at") or 0.0
        checks = [
            (isinstance(job, str), "job"),
            (_is_count(version), "version"),
            (isinstance(run_id, str), "run_id"),
            (isinstance(state, dict), "state"),
            (isinstance(fingerprint, dict), "fingerprint"),
            (isinstance(counters, dict), "counters"),
            (isinstance(extra, dict), "extra"),
            (_is_timestamp(started_at), "started_at"),
            (_is_timestamp(updated_at), "updated_at"),
        ]
        for ok, name in checks:
            if not ok:
                raise StoreCorrupt(f"{where}: checkpoint field {name!r} has the wrong type")
        total = data.get("total")
        return cls(
            job=job,
            version=version,
            run_id=run_id,
            position=data.get("position"),
            counters=Counters.from_dict(counters),
            state=state,
            fingerprint=fingerprint,
            total=total if isinstance(total, int) else None,
            started_at=float(started_at),
            updated_at=float(updated_at),
            extra=extra,
        )


LAST_TIMESTAMP = 253_402_300_800  # 10000-01-01: past it, no clock wrote the value


def _is_timestamp(value: object) -> bool:
    """Seconds since the epoch that a date can be made of (a damaged one cannot)."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and 0 <= value < LAST_TIMESTAMP  # NaN fails both comparisons
    )


def describe_drift(saved: dict[str, JSONValue], current: dict[str, JSONValue]) -> list[str]:
    """Human lines for each fingerprint field that differs, e.g. ``size: 1200 -> 1310``."""
    lines = []
    for name in sorted(set(saved) | set(current)):
        before, after = saved.get(name), current.get(name)
        if before != after:
            lines.append(f"{name}: {_short(before)} -> {_short(after)}")
    return lines


def _short(value: JSONValue) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
