"""A page of ``sources.sql`` rows, and key values as a JSON checkpoint holds them."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, ClassVar

from midway._model.jsonutil import JSONValue
from midway.errors import SourceError


def jsonable(value: Any) -> JSONValue:
    """A key value as it can stand in a JSON checkpoint. Dates, times, UUIDs and decimals
    become text, which PostgreSQL casts back when it compares (the parameter is untyped)."""
    if isinstance(value, str | int | float):
        return value
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if value is None:
        raise SourceError("a key column is NULL; a key must identify every row")
    raise SourceError(
        f"a key value of type {type(value).__name__} cannot be saved in a checkpoint; "
        "use key columns of number, text, date/time or UUID type"
    )


@dataclass(slots=True)
class RowChunk:
    """One page of rows; the position before a row is the key of the row before it.

    ``lasts``: each row's key values; ``after``: the key before the first row (None: the
    first row of all); ``first``: the rows before it; ``to_json``: a key as JSON."""

    items: list[dict[str, Any]]
    lasts: list[Any]
    after: JSONValue
    first: int
    to_json: Callable[[Any], JSONValue]
    shared: ClassVar[bool] = False
    errors: ClassVar[dict[int, str] | None] = None

    def key(self, index: int) -> JSONValue:
        return self.to_json(self.lasts[index])

    def position_before(self, index: int) -> JSONValue:
        if index == 0:
            if self.after is None:
                return None
            return {"last": self.after, "count": self.first}
        return {"last": self.to_json(self.lasts[index - 1]), "count": self.first + index}


def jsonable_all(values: Sequence[Any]) -> JSONValue:
    return [jsonable(v) for v in values]


def jsonable_text(value: Any) -> str:
    if isinstance(value, tuple):
        return "(" + ", ".join(repr(v) for v in value) + ")"
    return repr(value)
