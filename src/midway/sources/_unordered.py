"""Inputs whose order is not the same in the next process are refused.

A set's order depends on the hash seed, which each Python process picks anew: a resumed
run would skip items that were never handled and handle others twice, and the job would
still say it completed. So a set is refused before anything is read or written."""

from __future__ import annotations

from collections.abc import Set
from typing import Any

from midway.errors import ConfigError

_UNORDERED_ITERATORS = ("set_iterator",)
_DICT_VIEWS: tuple[type, ...] = (type({}.keys()), type({}.items()))


def refuse_unordered(items: Any, where: str = "job.run() / job.loop()") -> None:
    """Raise ConfigError for a set, a frozenset, another set-like collection, or an
    iterator over a set: their order changes from one process to the next."""
    kind = type(items)
    if isinstance(items, _DICT_VIEWS):
        return  # a dict's keys keep its insertion order
    if isinstance(items, Set) or kind.__name__ in _UNORDERED_ITERATORS:
        raise ConfigError(
            f"{where} was given a {kind.__name__}, whose order is not the same in the "
            "next process (it depends on the hash seed): a resumed run would skip items "
            "and repeat others. Pass sorted(...) of it, or a list in the order you want"
        )
