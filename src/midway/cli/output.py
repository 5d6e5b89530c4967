"""How the commands print: JSON, and rich tables whose text from the store cannot inject
markup or terminal controls."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from midway._model.printable import printable
from midway._model.result import RunStatus
from midway.stores import Store, default_url, open_store

if TYPE_CHECKING:  # rich is imported when something is printed with it: it is slow to load
    from rich.console import Console
    from rich.text import Text

STATUS_STYLE: dict[str, str] = {
    RunStatus.RUNNING: "bold green",
    RunStatus.COMPLETED: "green",
    RunStatus.COMPLETED_WITH_FAILURES: "yellow",
    RunStatus.STOPPED: "yellow",
    RunStatus.FAILED: "red",
    RunStatus.CRASHED: "bold red",
    RunStatus.WAITING: "magenta",
}


def open_existing(url: str | None) -> Store:
    """The store a command works on, which must exist: a mistyped --store is an error,
    not a new empty store."""
    return open_store(url or default_url(), create=False)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def terminal() -> Console:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def cell(value: str | tuple[str, str]) -> Text:
    """Text from the store in a table: no rich markup read in it, its controls escaped;
    with a style, as ``columns.Cell`` gives it (``("failed", "red")``)."""
    from rich.text import Text

    text, style = (value, "") if isinstance(value, str) else value
    return Text(printable(text), style=style)


def safe(value: str) -> str:
    """Text from the store inside a rich markup string."""
    from rich.markup import escape

    return escape(printable(value))


def clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
