"""SQL lives in .sql files beside the code: numbered migrations and named queries."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)
_MIGRATION = re.compile(r"^(\d{4})_\w+\.sql$")


def _folder(dialect: str) -> Traversable:
    """The folder beside this file; through importlib.resources only when the package is
    not on disk (a zip): importlib.resources loads tempfile and zipfile, which would slow
    the start of every command that opens a store."""
    beside = Path(__file__).with_name("sql") / dialect
    if beside.is_dir():
        return beside
    from importlib import resources

    return resources.files("midway.stores").joinpath("sql", dialect)


@cache
def queries(dialect: str) -> dict[str, str]:
    """``-- name: x`` blocks of ``queries.sql``, by name."""
    text = _folder(dialect).joinpath("queries.sql").read_text(encoding="utf-8")
    parts = _NAME.split(text)
    return {
        name: body.strip().rstrip(";") for name, body in zip(parts[1::2], parts[2::2], strict=True)
    }


@cache
def migrations(dialect: str) -> list[tuple[int, list[str]]]:
    """(version, statements) for each ``NNNN_name.sql``, in order."""
    found = []
    for entry in _folder(dialect).iterdir():
        match = _MIGRATION.match(entry.name)
        if match:
            found.append((int(match.group(1)), split_statements(entry.read_text("utf-8"))))
    return sorted(found)


def split_statements(script: str) -> list[str]:
    """Split a script on the ``;`` that end lines (our files keep one statement per block)."""
    lines = [ln for ln in script.splitlines() if not ln.lstrip().startswith("--")]
    statements, current = [], []
    for line in lines:
        current.append(line)
        if line.rstrip().endswith(";"):
            statements.append("\n".join(current).strip().rstrip(";"))
            current = []
    tail = "\n".join(current).strip()
    if tail:
        statements.append(tail)
    return [s for s in statements if s]
