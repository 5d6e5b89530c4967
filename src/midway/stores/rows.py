"""Rows of the SQL stores <-> midway's records, in one place, columns read by name.

Both SQL stores keep the same tables with the same columns (see ``sql/*/0001_initial.sql``):
JSON as text, times as seconds since the epoch. A row read back arrives here as a mapping of
column name to value; what was written leaves here as the parameters of a named query. Each
record read back is checked as every store checks it (``StoreCorrupt`` for a value midway
never writes), so a damaged row fails here with a clear word rather than later, elsewhere.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from midway._model import jsonutil
from midway._model.checkpoint import Checkpoint, Counters
from midway._model.jsonutil import JSONValue
from midway._model.ledger import ItemRecord
from midway._model.owner import Owner
from midway.errors import StoreCorrupt
from midway.stores.base import (
    JOB_FIELDS,
    HistoryPoint,
    LeaseInfo,
    Note,
    RunRecord,
    checked,
)

Row = Mapping[str, Any]


def first(cursor: Any) -> dict[str, Any] | None:
    """The cursor's next row as a mapping of column name to value, or None."""
    row = cursor.fetchone()
    return None if row is None else dict(zip(_names(cursor), row, strict=True))


def every(cursor: Any) -> list[dict[str, Any]]:
    """The cursor's rows, each a mapping of column name to value."""
    found = cursor.fetchall()  # first: in pipeline mode the names come with the answer
    names = _names(cursor)
    return [dict(zip(names, row, strict=True)) for row in found]


def _names(cursor: Any) -> list[str]:
    return [column[0] for column in cursor.description]  # DB-API: the name comes first


def load_json(text: str, where: str) -> Any:
    """A JSON column read back, or ``StoreCorrupt`` if it is damaged."""
    try:
        return jsonutil.loads(text)
    except (TypeError, ValueError):
        raise StoreCorrupt(
            f"{where}: a stored JSON value is damaged ({text[:60]!r}...). Restore the store "
            "from a backup, or `midway reset` the job."
        ) from None


def _opt_json(value: JSONValue) -> str | None:
    return None if value is None else jsonutil.dumps(value)


def _opt_load(text: str | None, where: str) -> Any:
    """A nullable JSON column: None (or empty) stays None."""
    return load_json(text, where) if text else None


# -- checkpoints ----------------------------------------------------------------------------


def checkpoint_params(cp: Checkpoint, token: int) -> dict[str, Any]:
    """``write_checkpoint``'s (and ``insert_history``'s) parameters, fenced by ``token``."""
    params = dict(zip(PROGRESS, progress_values(cp), strict=True))
    params["job"] = cp.job
    params["token"] = token
    params["run_id"] = cp.run_id
    params["fingerprint"] = jsonutil.dumps(cp.fingerprint)
    params["total"] = cp.total
    params["started_at"] = cp.started_at
    return params


PROGRESS = (
    "version",
    "position",
    "succeeded",
    "failed",
    "skipped",
    "in_doubt",
    "state",
    "updated_at",
    "extra",
)
"""The columns that move from one checkpoint of a run to the next, in the order of
``update_progress``'s placeholders: not those a run writes once (its id, the input's
fingerprint and total, the start)."""


def progress_values(cp: Checkpoint) -> tuple[Any, ...]:
    """The :data:`PROGRESS` columns' values (a tuple: at every=1 this is built per item,
    and psycopg binds a tuple with less work than a mapping)."""
    counters = cp.counters
    extra = _extra_with_waiting(cp)
    return (
        cp.version,
        jsonutil.dumps(cp.position),
        counters.succeeded,
        counters.failed,
        counters.skipped,
        counters.in_doubt,
        cp.state_json or jsonutil.dumps_state(cp.state),
        cp.updated_at,
        jsonutil.dumps(extra) if extra else "{}",
    )


def fixed_part(cp: Checkpoint, token: int) -> tuple[Any, ...]:
    """What :data:`PROGRESS` leaves out, with the job and the token: while it stays
    the same, a store that wrote the whole row may write only the progress."""
    return (cp.job, token, cp.run_id, cp.fingerprint, cp.total, cp.started_at)


WAITING = "waiting"


def _extra_with_waiting(cp: Checkpoint) -> dict[str, JSONValue]:
    """The ``waiting`` counter rides in the ``extra`` column (no column of its own)."""
    if not cp.counters.waiting:
        return cp.extra
    return {**cp.extra, WAITING: cp.counters.waiting}


def checkpoint_from_row(row: Row, where: str) -> Checkpoint:
    counters = Counters(row["succeeded"], row["failed"], row["skipped"], row["in_doubt"])
    extra = load_json(row["extra"], where)
    if isinstance(extra, dict) and WAITING in extra:
        counters = Counters.from_dict({**counters.as_dict(), WAITING: extra.pop(WAITING)})
    return Checkpoint.from_json(
        {
            "job": row["job"],
            "version": row["version"],
            "run_id": row["run_id"],
            "position": load_json(row["position"], where),
            "counters": counters.as_dict(),
            "state": load_json(row["state"], where),
            "fingerprint": load_json(row["fingerprint"], where),
            "total": row["total"],
            "started_at": row["started_at"],
            "updated_at": row["updated_at"],
            "extra": extra,
        },
        where,
    )


# -- the item ledger ------------------------------------------------------------------------


def item_key(record: ItemRecord) -> str:
    """The ``key`` column: the item's key as JSON."""
    return jsonutil.dumps(record.key)


def item_params(job: str, record: ItemRecord) -> dict[str, Any]:
    """``put_item``'s parameters; a record without a time is stamped now."""
    return {
        "job": job,
        "key": item_key(record),
        "status": record.status,
        "position": _opt_json(record.position),
        "error": record.error,
        "traceback": record.traceback,
        "attempts": record.attempts,
        "item": _opt_json(record.item),
        "updated_at": record.updated_at or time.time(),
        "steps": jsonutil.dumps(record.steps) if record.steps else None,
    }


def item_from_row(row: Row, where: str) -> ItemRecord:
    """Through ``from_store``, as the file store reads its records: a damaged field gives
    way to its default instead of reaching the engine as the wrong type."""
    return ItemRecord.from_store(
        {
            "key": load_json(row["key"], where),
            "status": row["status"],
            "error": row["error"],
            "traceback": row["traceback"],
            "attempts": row["attempts"],
            "position": _opt_load(row["position"], where),
            "item": _opt_load(row["item"], where),
            "updated_at": row["updated_at"],
            "steps": _opt_load(row["steps"], where) or {},
        }
    )


# -- runs, jobs, leases, notes, history -----------------------------------------------------


def run_params(run: RunRecord) -> dict[str, Any]:
    """``insert_run``'s parameters."""
    return {
        "run_id": run.run_id,
        "job": run.job,
        "status": run.status,
        "host": run.host,
        "pid": run.pid,
        "started_at": run.started_at,
        "resumed_from": _opt_json(run.resumed_from),
        "start_processed": run.start_processed,
        "command": run.command,
    }


def end_run_params(run: RunRecord, ended_at: float) -> dict[str, Any]:
    """``end_run``'s parameters."""
    return {
        "run_id": run.run_id,
        "status": run.status,
        "ended_at": ended_at,
        "processed": run.processed,
        "message": run.message,
    }


def run_from_row(row: Row, where: str) -> RunRecord:
    record = dict(row)
    record["resumed_from"] = _opt_load(row["resumed_from"], where)
    return RunRecord.from_store(record, where)


def job_fields(row: Row, where: str) -> dict[str, Any]:
    """A ``midway_jobs`` row as the checked fields of a ``JobRecord``."""
    record = dict(row)
    record["params"] = load_json(row["params"], where)
    record["summary"] = _opt_load(row["summary"], where)
    return checked(record, JOB_FIELDS, where)


def summary_of(row: Row | None, where: str) -> Any:
    """The ``summary`` column of a ``midway_jobs`` row (None without one)."""
    return None if row is None else _opt_load(row["summary"], where)


def lease_params(job: str, token: int, owner: Owner, now: float, ttl: float) -> dict[str, Any]:
    """``put_lease``'s parameters: ``owner`` holds the job from ``now`` for ``ttl`` seconds."""
    return {
        "job": job,
        "token": token,
        "host": owner.host,
        "pid": owner.pid,
        "pid_started": owner.pid_started,
        "since": now,
        "expires_at": now + float(ttl),
    }


def lease_from_row(job: str, row: Row, where: str) -> LeaseInfo:
    return LeaseInfo.from_store(job, row, where)


def note_from_row(row: Row) -> Note:
    return Note.from_store(row)


def history_from_rows(rows: list[Row], where: str) -> list[HistoryPoint]:
    """The job's history points; a damaged one (or one torn by a crash) is left out."""
    points = [HistoryPoint.from_store(row, where) for row in rows]
    return [point for point in points if point is not None]
