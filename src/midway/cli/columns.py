"""A table as plain aligned columns, for ``midway status``.

``status`` is the command people type most, and the start-up issue gives it 120 ms. rich
alone takes about 30 ms to import on the machine the bar was set on, a quarter of that, on
top of click's 35 ms and Python's own 15 ms; so ``status`` draws its table here, with what
is already loaded (``click.style`` for colour, which ``click.echo`` drops when the output is
not a terminal). The other reading commands, which are not timed, keep rich's tables.

Cells are plain text: whatever comes from the store goes through
:func:`midway._model.printable.printable` first, so it can neither move the cursor nor colour
anything, and the only colour is the one a cell names for a status word.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Sequence

import click

from midway._model.printable import printable

GAP = "  "

Cell = str | tuple[str, str]
"""Text, or text and the colour to show it in (rich's words: ``"bold red"``)."""


def width(text: str) -> int:
    """Terminal columns ``text`` takes: East Asian wide characters two, combining marks
    none (as terminals draw them)."""
    if text.isascii():
        return len(text)
    total = 0
    for char in text:
        if unicodedata.combining(char):
            continue
        total += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return total


def _styled(text: str, style: str) -> str:
    """``text`` in the colour ``style`` names (rich's words: ``bold``, a colour name)."""
    if not style or os.environ.get("NO_COLOR"):
        return text
    words = style.split()
    colours = [word for word in words if word != "bold"]
    fg = colours[-1] if colours else None
    return click.style(text, fg=fg, bold=True if "bold" in words else None)


def render(
    headers: Sequence[str],
    rows: Sequence[Sequence[str | Cell]],
    right: frozenset[str] = frozenset(),
) -> list[str]:
    """The table's lines: a header, a rule, a line per row, each column as wide as its
    widest cell; the columns named in ``right`` aligned right."""
    table = [
        [(printable(c), "") if isinstance(c, str) else (printable(c[0]), c[1]) for c in row]
        for row in rows
    ]
    widths = [
        max([width(header)] + [width(row[i][0]) for row in table])
        for i, header in enumerate(headers)
    ]

    def line(row: Sequence[tuple[str, str]]) -> str:
        parts = []
        for (text, style), header, columns in zip(row, headers, widths, strict=True):
            pad, shown = " " * (columns - width(text)), _styled(text, style)
            parts.append(pad + shown if header in right else shown + pad)
        return GAP.join(parts).rstrip()

    head = line([(header, "bold") for header in headers])
    rule = GAP.join("─" * columns for columns in widths)
    return [head, rule, *(line(row) for row in table)]
