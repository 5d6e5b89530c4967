"""Connections kept from one store to the next while a distributed worker runs.

A worker runs partition after partition, and each partition's run opens a store of its own
(for its background writer) and closes it at the end. While :func:`reusing_connections` is
active, a store that closes leaves its connection idle for the next store of the same URL
in this process (PostgreSQL: a new connection costs the server a process and the client a
few round trips, a good part of a small partition's fixed cost). When the last such block
ends, the idle connections are closed: nothing lingers after the work.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

_depth = 0
_lock = threading.Lock()
_drains: list[Callable[[], None]] = []


def active() -> bool:
    """A closing store may keep its connection for the next one."""
    return _depth > 0


def on_end(drain: Callable[[], None]) -> None:
    """Call ``drain`` (close what was kept) when the last block ends."""
    with _lock:
        if drain not in _drains:
            _drains.append(drain)


@contextmanager
def reusing_connections() -> Iterator[None]:
    global _depth
    with _lock:
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            drains = list(_drains) if _depth == 0 else []
        for drain in drains:
            drain()
