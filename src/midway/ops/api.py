"""The API's entry points by store URL: open the store, find the job, act, close."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Concatenate, ParamSpec, TypeVar

if TYPE_CHECKING:  # the stores and views load when a call reads a store, not on import
    from midway.ops.models import JobStatus
    from midway.stores import Store
    from midway.views.whole import Target

P = ParamSpec("P")
R = TypeVar("R")


@contextmanager
def opened(url: str | None) -> Iterator[Store]:
    """The store at ``url`` (default: the one jobs use when none is named), which must
    exist: a mistyped URL is an error, not a new empty store."""
    from midway.stores import absolute_url, default_url, open_store

    store = open_store(absolute_url(url or default_url()), create=False)
    try:
        yield store
    finally:
        store.close()


def jobs(store: str | None = None) -> list[JobStatus]:
    """Every job in the store, a distributed job as one entry (its partitions inside).

    ``store`` is a URL (``sqlite:///state.db``, ``postgresql://...``, ``file:///dir``);
    by default ``MIDWAY_STORE``, else the store jobs use when none is named.

    Example::

        for job in midway.jobs("sqlite:///state.db"):
            print(job.job, job.status, f"{job.processed:,} of {job.total or '?'}")
    """
    from midway.ops.status import all_statuses

    with opened(store) as opened_store:
        return all_statuses(opened_store)


def on_job(
    url: str,
    name: str,
    action: Callable[Concatenate[Store, Target, P], R],
    *args: P.args,
    **kwargs: P.kwargs,
) -> R:
    """``action(store, target, ...)`` on the job named ``name`` in the store at ``url``."""
    from midway.views.whole import find

    with opened(url) as store:
        return action(store, find(store, name), *args, **kwargs)
