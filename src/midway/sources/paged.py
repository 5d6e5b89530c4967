"""``sources.pages``: items from a paged API, resumed by fetching one page again.

``fetch_page(token) -> (items, next_token)`` is yours: ``token`` is None for the first page,
and a ``next_token`` of None says there are no more. The position of an item is the token of
its page and its index in it, ``{"token": ..., "offset": 3, "count": 7003}`` (``count``: items
before it, for people), so a resume calls ``fetch_page(token)`` once, skips ``offset`` items,
and carries on: no replay of the pages before it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from midway._model.jsonutil import JSONValue
from midway.errors import ConfigError, SourceError
from midway.sources.base import KeySpec, NumberedChunk, key_function

FetchPage = Callable[[Any], tuple[Iterable[Any], Any]]


class PageChunk(NumberedChunk):
    """The items of one page from ``skip`` on, numbered from ``start`` (the items before
    them in the whole input); after the last, the next page's start."""

    __slots__ = ("next_token", "skip", "token")

    def __init__(
        self,
        items: list[Any],
        key: Callable[[Any], JSONValue] | None,
        start: int,
        page: tuple[JSONValue, int, JSONValue],
    ) -> None:
        super().__init__(items, start, key)
        self.token, self.skip, self.next_token = page

    def position_before(self, index: int) -> JSONValue:
        count = self.start + index
        if index == len(self.items) and self.next_token is not None:
            return {"token": self.next_token, "offset": 0, "count": count}
        return {"token": self.token, "offset": self.skip + index, "count": count}


class PagesSource:
    kind = "pages"
    seekable = True

    def __init__(
        self,
        fetch_page: FetchPage,
        version: JSONValue,
        key: KeySpec,
        *,
        total: int | None,
        name: str,
    ) -> None:
        """See :func:`pages`, which holds the defaults."""
        if not callable(fetch_page):
            raise ConfigError(
                "sources.pages needs a function fetch_page(token) -> (items, next_token)"
            )
        self._fetch = fetch_page
        self._version = version
        self._key = key_function(key)
        self._total = total
        self._name = name or f"pages of {getattr(fetch_page, '__name__', 'fetch_page')}"

    def fingerprint(self) -> dict[str, JSONValue]:
        """A function cannot be inspected: ``version=`` is your word for what it returns."""
        return {"kind": self.kind, "version": self._version}

    def total(self) -> int | None:
        return self._total

    def open(self, position: JSONValue) -> PagesCursor:
        token, offset, count = self._position(position)
        return PagesCursor(self, token, offset, count)

    def describe(self) -> str:
        return self._name

    def describe_position(self, position: JSONValue) -> str:
        token, offset, count = self._position(position)
        if position is None:
            return "the first page"
        page = "the first page" if token is None else f"the page at token {token!r}"
        return f"item {count + 1:,} (item {offset + 1:,} of {page})"

    def _position(self, position: JSONValue) -> tuple[JSONValue, int, int]:
        if position is None:
            return None, 0, 0
        if isinstance(position, dict) and "token" in position:
            offset, count = position.get("offset"), position.get("count", 0)
            if (
                isinstance(offset, int)
                and isinstance(count, int)
                and not isinstance(offset, bool)
                and offset >= 0
                and count >= 0
            ):
                return position["token"], offset, count
        raise SourceError(
            f"the checkpoint position {position!r} is not a page position (token and offset); "
            "run with on_drift='restart', or `midway reset` the job"
        )

    def fetch(self, token: JSONValue) -> tuple[list[Any], JSONValue]:
        try:
            result = self._fetch(token)
        except Exception as exc:
            exc.add_note(f"midway: {self._name} failed fetching the page at token {token!r}")
            raise
        if not (isinstance(result, tuple | list) and len(result) == 2):
            raise SourceError(
                f"{self._name} returned {type(result).__name__} for token {token!r}; "
                "fetch_page must return a pair (items, next_token)"
            )
        items, next_token = result
        try:
            json.dumps(next_token)
        except (TypeError, ValueError):
            raise SourceError(
                f"{self._name} returned a next token of type {type(next_token).__name__}, "
                "which cannot be saved in a checkpoint; return a string, number or JSON value"
            ) from None
        return list(items), next_token


class PagesCursor:
    def __init__(self, source: PagesSource, token: JSONValue, skip: int, count: int) -> None:
        self._source = source
        self._token = token
        self._skip = skip
        self._count = count

    def __iter__(self) -> Iterator[PageChunk]:
        src = self._source
        token, skip, count = self._token, self._skip, self._count
        while True:
            items, next_token = src.fetch(token)
            if skip:
                items = items[skip:]  # a page that shrank since: nothing of it is left
            if items:
                yield PageChunk(items, src._key, count, (token, skip, next_token))
                count += len(items)
            if next_token is None:
                return
            if next_token == token:
                raise SourceError(
                    f"{src.describe()} returned the page's own token {token!r} as the next "
                    "one, which would fetch the same page forever; return None at the end"
                )
            token, skip = next_token, 0

    def close(self) -> None:
        pass


def pages(
    fetch_page: FetchPage,
    version: JSONValue = None,
    key: KeySpec = None,
    *,
    total: int | None = None,
    name: str = "",
) -> PagesSource:
    """Items of a paged API. ``fetch_page(token)`` returns ``(items, next_token)``: token
    None asks for the first page, and a next token of None ends the input. Tokens go into
    checkpoints, so they must be JSON (a cursor string, a page number, ...).

    A resume fetches the saved token's page once and skips the items already done, so the
    API must return the same page for the same token (cursor-based APIs do; offset-based
    ones do while nothing is inserted before). ``key=`` names the field that identifies an
    item (default: its number in the whole input); ``version=`` stands in for a fingerprint:
    change it when the data behind the API is another input. ``total=`` enables an ETA."""
    return PagesSource(fetch_page, version, key, total=total, name=name)


__all__ = ["PagesSource", "pages"]
