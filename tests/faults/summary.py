"""The fault suite's summary: one JSON line per scenario run, printed as a Markdown table.

Tests call :func:`record` with a :class:`~faults.harness.Tally`. Each record is appended
to the session's file (``SESSION_ENV``, set by ``tests/conftest.py`` before the test
processes start, so that the records of every pytest-xdist worker meet there and the
session prints one table at its end), and to the file named by ``MIDWAY_FAULTS_SUMMARY``
when it is set, for ``make faults``, which then runs ``python tests/faults/summary.py FILE``
to print the table of all its pytest runs last.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

SESSION_ENV = "MIDWAY_FAULTS_SESSION_FILE"
COLUMNS = ("scenario", "jobs", "kills", "items", "lost", "duplicated", "in doubt", "redone")


def record(row: Any) -> None:
    """Keep one scenario's outcome (a ``Tally``, or a dict with its fields)."""
    data = row if isinstance(row, dict) else row.as_record()
    line = json.dumps(data) + "\n"
    for var in (SESSION_ENV, "MIDWAY_FAULTS_SUMMARY"):
        path = os.environ.get(var)
        if path:
            # One short append per record: lines from concurrent workers do not interleave.
            with open(path, "a", encoding="utf-8") as out:
                out.write(line)


def read(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def table(records: Iterable[dict[str, Any]]) -> str:
    """Rows of the same scenario added up; worst rework per kill beside its bound."""
    rows: dict[str, dict[str, Any]] = {}
    for rec in records:
        row = rows.setdefault(
            rec["scenario"],
            {
                "jobs": 0,
                "kills": 0,
                "items": 0,
                "lost": 0,
                "duplicated": 0,
                "in doubt": 0,
                "redone": 0,
                "max_rework": 0,
                "bound": rec.get("bound", 0),
                "broken": 0,
            },
        )
        row["jobs"] += 1
        for name, field in (
            ("kills", "kills"),
            ("items", "items"),
            ("lost", "lost"),
            ("duplicated", "duplicated"),
            ("in doubt", "in_doubt"),
            ("redone", "redone"),
        ):
            row[name] += int(rec.get(field, 0))
        row["max_rework"] = max(row["max_rework"], int(rec.get("max_rework", 0)))
        row["broken"] += 0 if rec.get("ok", True) else 1
    head = [*COLUMNS, "worst rework / bound", "result"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * 8 + ["---"]) + "|"]
    for name, row in rows.items():
        cells = [name] + [f"{row[c]:,}" for c in COLUMNS[1:]]
        cells.append(f"{row['max_rework']} / {row['bound']}" if row["bound"] else "")
        cells.append("BROKEN" if row["broken"] else "ok")
        lines.append("| " + " | ".join(cells) + " |")
    total_kills = sum(r["kills"] for r in rows.values())
    broken = sum(1 for r in rows.values() if r["broken"])
    lines.append("")
    lines.append(f"{len(rows)} scenarios, {total_kills:,} kills, {broken} with a broken promise.")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python tests/faults/summary.py SUMMARY.jsonl", file=sys.stderr)
        return 2
    path = Path(argv[0])
    if not path.exists():
        print(f"no fault summary at {path}: did any fault test run?", file=sys.stderr)
        return 1
    records = read(path)
    print("\n## Fault suite summary\n")
    print(table(records))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
