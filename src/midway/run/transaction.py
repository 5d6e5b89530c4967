"""``ctx.transaction`` for ``guarantee="exactly-once"``: the store's own connection, inside
the transaction that the next checkpoint commits.

It behaves as the DB-API connection it wraps (``execute``, ``executemany``, ``cursor``...),
except that committing, rolling back or closing it is midway's job: a handler that
committed would publish its writes without the progress that goes with them.
"""

from __future__ import annotations

from typing import Any

from midway.errors import ConfigError

_FORBIDDEN = ("commit", "rollback", "close")


class TransactionConnection:
    __slots__ = ("_conn",)

    def __init__(self, conn: Any) -> None:
        object.__setattr__(self, "_conn", conn)

    def __getattr__(self, name: str) -> Any:
        if name in _FORBIDDEN:
            raise ConfigError(
                f"ctx.transaction.{name}() is not allowed: with guarantee='exactly-once' "
                "midway commits the handler's writes together with the checkpoint, so that "
                "each item's effect lands exactly once"
            )
        return getattr(self._conn, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._conn, name, value)

    def __repr__(self) -> str:
        return f"<midway transaction on {self._conn!r}>"
