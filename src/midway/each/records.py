"""The records of an input file, as ``midway each`` hands them to a command.

Three formats, each read by a midway file source, so a resume seeks straight to its byte
offset. What a command sees of a record:

========  ==========================  ===============================  =====================
format    ``{}``                      ``{field}``                      on stdin (``--stdin``)
========  ==========================  ===============================  =====================
lines     the line                    (none: lines have no fields)     the line
csv       the row as one CSV record   the column's value               the header and the row
jsonl     the line, exactly           the field's value (``a.b``:      the line
                                      nested)
========  ==========================  ===============================  =====================

Blank lines are not records in any format (they run nothing and are not counted). A JSON
value that is not a string is inserted as JSON text (``3``, ``true``, ``null``, ``[1,2]``).
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any, Protocol

from midway._model import jsonutil
from midway._model.jsonutil import JSONValue
from midway.errors import ConfigError, SourceError
from midway.sources import Source
from midway.sources import csv as csv_source
from midway.sources.jsonl import LineRecordSource

FORMATS = ("lines", "csv", "jsonl")
_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_COUNT_LIMIT = 1 << 30  # count records for the progress bar only in files up to 1 GiB
_ENV_NAME = re.compile(r"[^A-Za-z0-9_]")


class RecordError(Exception):
    """This record cannot be given to the command (a missing field, a line that is not
    JSON). An item failure, not a midway error: the other records are not affected."""


def detect_format(path: Path) -> str:
    """From the file name: .csv, .jsonl / .ndjson (also with .gz after them), else lines."""
    name = path.name.lower().removesuffix(".gz")
    return _SUFFIXES.get(Path(name).suffix, "lines")


def env_name(field: str) -> str:
    """``MIDWAY_FIELD_`` + the field's name, upper case, anything but A-Z 0-9 _ as ``_``."""
    return "MIDWAY_FIELD_" + _ENV_NAME.sub("_", field).upper()


def as_text(value: JSONValue) -> str:
    """A field's value as an argument: a string as it is, anything else as JSON text."""
    return value if isinstance(value, str) else jsonutil.dumps(value)


class Record(Protocol):
    def whole(self) -> str:
        """What ``{}`` stands for."""
        ...

    def field(self, name: str) -> str:
        """What ``{name}`` stands for; RecordError when the record has no such field."""
        ...

    def fields(self) -> dict[str, str]:
        """Every top-level field, for ``--env``."""
        ...

    def stdin(self) -> bytes:
        """What the command reads with ``--stdin``."""
        ...


class Format(Protocol):
    name: str
    has_fields: bool

    def source(self) -> Source: ...

    def record(self, item: Any) -> Record: ...

    def check_fields(self, names: list[str], what: str) -> None:
        """Refuse (ConfigError) field names no record can have, before anything runs."""
        ...


def open_format(path: Path, name: str, key: str | None) -> Format:
    if name == "lines":
        if key is not None:
            raise ConfigError(
                "--key names a field, and plain lines have none (their key is the record "
                "number); use --format csv or jsonl, or leave --key out"
            )
        return LinesFormat(path)
    if name == "csv":
        return CsvFormat(path, key)
    if name == "jsonl":
        return JsonlFormat(path, key)
    raise ConfigError(f"--format {name!r}: choose one of {', '.join(FORMATS)}")


# -- lines --------------------------------------------------------------------------------


class LineRecord:
    __slots__ = ("line",)

    def __init__(self, line: str) -> None:
        self.line = line

    def whole(self) -> str:
        return self.line

    def field(self, name: str) -> str:
        raise RecordError(f"a plain line has no field {name!r}")

    def fields(self) -> dict[str, str]:
        return {}

    def stdin(self) -> bytes:
        return (self.line + "\n").encode()


class LinesFormat:
    name = "lines"
    has_fields = False

    def __init__(self, path: Path) -> None:
        self.path = path

    def source(self) -> Source:
        return LineRecordSource(
            self.path,
            None,
            kind="lines",
            parse=_strip_newline,
            skip_blank=True,
            total=count_lines(self.path),
        )

    def record(self, item: Any) -> Record:
        return LineRecord(item)

    def check_fields(self, names: list[str], what: str) -> None:
        if names:
            shown = ", ".join("{" + name + "}" for name in names)
            raise ConfigError(
                f"{what} uses {shown}, but plain lines have no fields: {{}} is the whole line. "
                "Read the file with --format csv or --format jsonl for fields; to pass a "
                "literal brace, write {{ or }}"
            )


def _strip_newline(line: str) -> str:
    return line.rstrip("\r\n")


# -- JSON lines ---------------------------------------------------------------------------


class JsonRecord:
    __slots__ = ("line", "value")

    def __init__(self, line: str, value: JSONValue) -> None:
        self.line = line
        self.value = value

    def whole(self) -> str:
        return self.line

    def field(self, name: str) -> str:
        value = self.value
        if not isinstance(value, dict):
            raise RecordError(
                f"the record is a JSON {_json_type(value)}, not an object, so it has no "
                f"field {name!r}"
            )
        if name in value:
            return as_text(value[name])
        found, nested = _dig(value, name)
        if not found:
            fields = ", ".join(list(value)[:20]) or "none"
            raise RecordError(f"the record has no field {name!r} (its fields: {fields})")
        return as_text(nested)

    def fields(self) -> dict[str, str]:
        if not isinstance(self.value, dict):
            return {}
        return {str(name): as_text(value) for name, value in self.value.items()}

    def stdin(self) -> bytes:
        return (self.line + "\n").encode()


def _dig(value: JSONValue, path: str) -> tuple[bool, JSONValue]:
    """``a.b.0``: nested objects (and list indexes)."""
    for step in path.split("."):
        if isinstance(value, dict) and step in value:
            value = value[step]
        elif isinstance(value, list) and step.isdigit() and int(step) < len(value):
            value = value[int(step)]
        else:
            return False, None
    return True, value


def _json_type(value: JSONValue) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if value is None or isinstance(value, bool):
        return jsonutil.dumps(value)
    return "number"


def _parse_json_line(line: str) -> JsonRecord:
    text = line.rstrip("\r\n")
    return JsonRecord(text, json.loads(text))


class FieldsFormat:
    """A format whose records have fields, one of which ``--key`` may name."""

    has_fields = True

    def __init__(self, path: Path, key: str | None) -> None:
        self.path = path
        self.key = key


class JsonlFormat(FieldsFormat):
    name = "jsonl"

    def source(self) -> Source:
        return LineRecordSource(
            self.path,
            None if self.key is None else _JsonKey(self.key),
            kind="jsonl",
            parse=_parse_json_line,
            skip_blank=True,
            total=count_lines(self.path),
        )

    def record(self, item: Any) -> Record:
        record: JsonRecord = item
        return record

    def check_fields(self, names: list[str], what: str) -> None:
        pass  # each record has its own fields: a missing one fails that record only


class _JsonKey:
    """``--key`` of a JSON line: its field's value (a string or a number)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, record: JsonRecord) -> JSONValue:
        value = record.value
        key = value.get(self.name) if isinstance(value, dict) else None
        if isinstance(key, str) or (isinstance(key, int | float) and not isinstance(key, bool)):
            return key
        raise SourceError(
            f"a record has no string or number field {self.name!r} to use as its --key "
            f"(record: {record.line[:120]}); give --key a field every record has"
        )


# -- CSV ----------------------------------------------------------------------------------


class CsvRecord:
    __slots__ = ("header", "row")

    def __init__(self, row: dict[str, str], header: list[str]) -> None:
        self.row = row
        self.header = header

    def whole(self) -> str:
        return _csv_text([[self.row[name] for name in self.header]]).rstrip("\n")

    def field(self, name: str) -> str:
        try:
            return self.row[name]
        except KeyError:
            raise RecordError(f"the row has no column {name!r}") from None

    def fields(self) -> dict[str, str]:
        return dict(self.row)

    def stdin(self) -> bytes:
        return _csv_text([self.header, [self.row[name] for name in self.header]]).encode()


def stdin_of(records: list[Record]) -> bytes:
    """``--stdin`` with ``--batch``: the records one after the other, each as ``--stdin``
    gives one; for CSV the header once, then the rows."""
    rows = [r for r in records if isinstance(r, CsvRecord)]
    if rows and len(rows) == len(records):
        header = rows[0].header
        return _csv_text([header, *([r.row[name] for name in header] for r in rows)]).encode()
    return b"".join(record.stdin() for record in records)


def _csv_text(rows: list[list[str]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


class CsvFormat(FieldsFormat):
    name = "csv"

    def __init__(self, path: Path, key: str | None) -> None:
        super().__init__(path, key)
        # the header is read without the key, so that a wrong --key is named as an option
        header = csv_source(path).fingerprint().get("header")
        self.header: list[str] = [str(name) for name in header] if isinstance(header, list) else []
        if key is not None:
            self.check_fields([key], "--key")

    def source(self) -> Source:
        return csv_source(self.path, key=self.key, total=count_csv_rows(self.path))

    def record(self, item: Any) -> Record:
        return CsvRecord(item, self.header)

    def check_fields(self, names: list[str], what: str) -> None:
        missing = [name for name in names if name not in self.header]
        if missing:
            shown = ", ".join(repr(name) for name in missing)
            raise ConfigError(
                f"{what} names {shown}, which {self.path.name} has no column for; its "
                f"columns: {', '.join(self.header)}. (To pass a literal brace, write {{ or }}.)"
            )

    def env_clashes(self) -> list[tuple[str, str]]:
        """Pairs of columns that ``--env`` would give the same variable name."""
        seen: dict[str, str] = {}
        clashes = []
        for name in self.header:
            other = seen.setdefault(env_name(name), name)
            if other != name:
                clashes.append((other, name))
        return clashes


# -- counting, for the progress bar -------------------------------------------------------


def count_lines(path: Path) -> int | None:
    """Lines that are not blank; None for a compressed or very large file."""
    if not _countable(path):
        return None
    count = 0
    with path.open("rb") as f:
        for line in f:
            if line.strip():
                count += 1
    return count


def count_csv_rows(path: Path) -> int | None:
    """Rows after the header (a quoted field may span lines); None when not cheap to know."""
    if not _countable(path):
        return None
    try:
        with path.open(newline="", encoding="utf-8", errors="replace") as f:
            rows = sum(1 for row in csv.reader(f) if row)
    except csv.Error:
        return None  # the source names the bad row when it gets there
    return max(rows - 1, 0)


def _countable(path: Path) -> bool:
    try:
        return path.suffix.lower() != ".gz" and path.stat().st_size <= _COUNT_LIMIT
    except OSError:
        return False
