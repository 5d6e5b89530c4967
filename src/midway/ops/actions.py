"""What a person does to a job: read its ledger, put items back, decide in-doubt items,
leave a note, forget it, write its report. One job or a distributed one alike: a
distributed job's partitions each get their own records back (each partition's ledger is
its own), so the next distributed run hands every partition its own."""

from __future__ import annotations

import getpass
import json
import time
from collections.abc import Iterable, Iterator

from midway._model.jsonutil import JSONValue
from midway._model.ledger import DROP, FAILED, IN_DOUBT, RETRY, SKIPPED, ItemRecord, ItemStatus
from midway._model.owner import Owner, hostname
from midway.errors import ConfigError
from midway.ops.models import NoteInfo
from midway.ops.status import note_info
from midway.stores import Store
from midway.stores.base import check_lease_free
from midway.views import report as reports
from midway.views.whole import Target, items_of

ITEM_STATUSES = (FAILED, SKIPPED, IN_DOUBT, RETRY)
REPORT_FORMATS = ("md", "html", "json")


def items(store: Store, target: Target, status: str) -> Iterator[ItemRecord]:
    """The job's ledger records with ``status`` (every partition's, for a distributed job)."""
    if status not in ITEM_STATUSES:
        raise ConfigError(
            f"items(status={status!r}): choose one of "
            + ", ".join(repr(str(s)) for s in ITEM_STATUSES)
        )
    yield from items_of(store, target, (status,))


def listed_items(store: Store, target: Target, status: str) -> list[ItemRecord]:
    """:func:`items`, read while the store is open (the caller iterates them after)."""
    return list(items(store, target, status))


def retry(
    store: Store,
    target: Target,
    keys: Iterable[JSONValue] | None = None,
    error: str | None = None,
    *,
    skipped: bool = False,
) -> int:
    """Put failed (``skipped``: skipped) items back for the next run; how many."""
    return _change(
        store,
        target,
        keys,
        statuses=(SKIPPED,) if skipped else (FAILED,),
        error=error,
        to_status=RETRY,
        count_as="failed" if skipped else None,
    )


def resolve(
    store: Store, target: Target, keys: Iterable[JSONValue] | None, *, done: bool = True
) -> int:
    """Decide in-doubt items (``keys=None``: every one): ``done`` counts them as
    succeeded, else the next run handles them again. How many were decided."""
    return _change(
        store,
        target,
        keys,
        statuses=(IN_DOUBT,),
        error=None,
        to_status=DROP if done else RETRY,
        count_as="succeeded" if done else "failed",
    )


def _change(
    store: Store,
    target: Target,
    keys: Iterable[JSONValue] | None,
    *,
    statuses: tuple[ItemStatus, ...],
    error: str | None,
    to_status: ItemStatus,
    count_as: str | None,
) -> int:
    """Change the matching records in every ledger of the job. A key named that matches
    none of them is refused before anything changes."""
    wanted = None if keys is None else _keys(keys)
    if wanted is not None:
        found = {_text(r.key) for r in items_of(store, target, statuses)}
        missing = [k for k in wanted if _text(k) not in found]
        if missing:
            what = " or ".join(s.replace("_", "-") for s in statuses)
            shown = ", ".join(json.dumps(k) for k in missing[:10])
            more = f" (and {len(missing) - 10:,} more)" if len(missing) > 10 else ""
            raise ConfigError(
                f"job {target.key!r} has no {what} item with key {shown}{more}; "
                f"`midway show {target.key}` lists the items needing attention"
            )
    me = Owner.current()
    refuse_if_a_part_is_held(store, target, me)
    changed = 0
    for key in target.keys:
        changed += len(
            store.change_items(
                key,
                me,
                statuses=statuses,
                keys=wanted,
                error_type=error,
                to_status=to_status,
                count_as=count_as,
            )
        )
    return changed


def refuse_if_a_part_is_held(store: Store, target: Target, me: Owner) -> None:
    """Each partition of a distributed job changes in a transaction of its own, and one that
    a live runner holds refuses its change (``LeaseHeld``): asked first, such a partition
    refuses the change before any other partition has changed. (A runner that claims one
    in between is still refused there, as for a job of one part.)"""
    if len(target.keys) < 2:
        return
    now = time.time()
    for key, record in zip(target.keys, store.get_jobs(target.keys), strict=True):
        if record is not None:
            check_lease_free(key, record.lease, me, now)


def _keys(keys: Iterable[JSONValue]) -> list[JSONValue]:
    if isinstance(keys, str | int | float):  # one key given alone
        return [keys]
    return list(keys)


def _text(key: JSONValue) -> str:
    """A key as text: ``4711`` from the shell matches the integer key 4711."""
    return key if isinstance(key, str) else json.dumps(key)


def note(store: Store, target: Target, text: str, author: str | None = None) -> NoteInfo:
    """Leave a note on the job (a distributed job's note is the whole job's)."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError("a note needs some text: what was decided, and why")
    return note_info(store.add_note(target.key, text, author or default_author()))


def user_name() -> str:
    """The login name of whoever runs this (``someone`` where there is none)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "someone"


def default_author() -> str:
    """``$USER@host``: who is leaving a note when nobody says."""
    return f"{user_name()}@{hostname()}"


def reset(store: Store, target: Target) -> int:
    """Forget the job: checkpoint, ledger, summary, runs, notes (a distributed job: every
    partition, and how it was split). How many partitions were forgotten with it."""
    me = Owner.current()
    refuse_if_a_part_is_held(store, target, me)
    for part in target.part_keys:
        store.reset(part, me)
    store.reset(target.key, me)
    return len(target.part_keys)


def report(store: Store, target: Target, format: str = "md") -> str:
    """The handoff document: Markdown, one self-contained HTML page, or JSON."""
    if format not in REPORT_FORMATS:
        raise ConfigError(f"report(format={format!r}): choose 'md' (Markdown), 'html' or 'json'")
    data = reports.gather(store, target)
    if format == "json":
        return json.dumps(data.to_json(), indent=2, ensure_ascii=False) + "\n"
    return reports.html_page(data) if format == "html" else reports.markdown(data)
