"""A person's decisions on items waiting for one (``midway approve``, the dashboard,
``job.approve``): one code path for the three.

A decision takes the job's lease for the moment it writes (so it is refused, clearly, while
a runner holds the job, and no runner can overwrite it half-way), turns each chosen
*waiting* record *decided* with who decided, when, and the note, and adds a note to the
job's history saying so. The next run hands the decided items back to the handler.
"""

from __future__ import annotations

import getpass
import time

from midway._model import approval, jsonutil
from midway._model.identity import JobId
from midway._model.jsonutil import JSONValue
from midway._model.ledger import WAITING, ItemRecord
from midway._model.owner import Owner
from midway.errors import ConfigError
from midway.stores.base import JobRecord, Store

DECISION_TTL = 30.0  # the lease lasts while the decision is written, then is given back


class NoSuchWaitingItem(ConfigError):
    """``midway approve`` named a key that matches no waiting item (exit 2)."""


def who() -> str:
    """The login name of whoever decides (``someone`` where there is none)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "someone"


def decide(
    store: Store,
    job: JobId,
    keys: list[JSONValue] | None,
    *,
    approved: bool = True,
    note: str | None = None,
    by: str | None = None,
) -> list[ItemRecord]:
    """Decide the waiting items ``keys`` of ``job`` (None: all of them); returns the
    records as decided. A key that matches no waiting item is refused before anything is
    written (``NoSuchWaitingItem``, naming it)."""
    by = by or who()
    if note is not None and not isinstance(note, str):
        raise ConfigError(f"note= must be text, not {type(note).__name__}")
    lease = store.acquire_lease(job, Owner.current(), DECISION_TTL)
    try:
        waiting = store.list_items(job.key, (WAITING,))
        chosen = _choose(job.key, waiting, keys)
        now = time.time()
        records = [approval.decided(r, approved, by, note, now) for r in chosen]
        if records:
            store.write_items(lease, records)
    finally:
        store.release_lease(lease)
    if records:
        store.add_note(job.key, _note_text(records, approved, note), by)
    return records


def job_id_of(record: JobRecord) -> JobId:
    """The identity of a job the store knows (a distributed job's partition: refused)."""
    job_id = JobId(record.name, record.params)
    if job_id.key != record.job:
        raise ConfigError(
            f"{record.job!r} is a partition of a distributed job: deciding its waiting items "
            "is not supported in this version"
        )
    return job_id


def _choose(job: str, waiting: list[ItemRecord], keys: list[JSONValue] | None) -> list[ItemRecord]:
    if keys is None:
        return waiting
    by_key = {jsonutil.dumps(r.key): r for r in waiting}
    by_text = {str(r.key): r for r in waiting}
    chosen: dict[str, ItemRecord] = {}
    missing = []
    for key in keys:
        record = by_key.get(jsonutil.dumps(key)) or by_text.get(str(key))
        if record is None:
            missing.append(key)
        else:
            chosen[jsonutil.dumps(record.key)] = record
    if missing:
        names = ", ".join(jsonutil.dumps(k) for k in missing[:10])
        raise NoSuchWaitingItem(
            f"job {job!r} has no item waiting for a decision with key {names}; nothing was "
            f"decided. `midway show {job}` lists the waiting items"
        )
    return list(chosen.values())


def _note_text(records: list[ItemRecord], approved: bool, note: str | None) -> str:
    verb = "approved" if approved else "rejected"
    keys = ", ".join(jsonutil.dumps(r.key) for r in records[:20])
    more = f" and {len(records) - 20:,} more" if len(records) > 20 else ""
    return f"{verb} {len(records):,} waiting item(s): {keys}{more}" + (f" ({note})" if note else "")
