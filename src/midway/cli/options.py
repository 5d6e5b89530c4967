"""The options every command spells the same way (``--store``, ``--json``).

Only click is imported here, so ``midway each`` and ``midway ui`` (which the command line
imports) can declare their ``--store`` with the same words without importing any command.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import click

from midway._model.jsonutil import JSONValue

F = TypeVar("F", bound=Callable[..., Any])


def store_option(fn: F) -> F:
    """``--store URL`` (``$MIDWAY_STORE``), passed to the command as ``store_url``."""
    return click.option(
        "--store",
        "store_url",
        metavar="URL",
        envvar="MIDWAY_STORE",
        default=None,
        help="Store URL (default: $MIDWAY_STORE, else the nearest .midway/state.db at or above "
        "the working directory).",
    )(fn)


def json_option(fn: F) -> F:
    """``--json``, passed to the command as ``as_json``."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(
        fn
    )


def item_keys(values: Iterable[str]) -> list[JSONValue]:
    """Item keys as typed (``--key``, a dashboard link): JSON where it parses, so ``42``
    matches an item keyed 42 or "42", else the text itself."""
    keys: list[JSONValue] = []
    for value in values:
        try:
            keys.append(json.loads(value))
        except ValueError:
            keys.append(value)
    return keys


def file_option(*decls: str, help: str) -> Callable[[F], F]:
    """An option naming a file to write (not a folder); None when not given."""
    return click.option(*decls, type=click.Path(dir_okay=False), default=None, help=help)
