"""Reading a store from a test: a job's ledger records, and whether a job has completed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from midway.stores import open_store


def ledger(store_url: str, job: str, *statuses: str) -> dict[Any, Any]:
    """The job's ledger records with those statuses, by key."""
    store = open_store(store_url)
    try:
        return {r.key: r for r in store.list_items(job, statuses)}
    finally:
        store.close()


def completed(store_url: str, name: str) -> Callable[[], bool]:
    """Whether the job called ``name`` has completed (its checkpoint dropped, its summary
    kept): for ``kill_until_done``, whose last kill may land during the last commits."""

    def finished() -> bool:
        store = open_store(store_url)
        try:
            return any(
                r.name == name and r.checkpoint is None and r.summary is not None
                for r in store.list_jobs()
            )
        finally:
            store.close()

    return finished
