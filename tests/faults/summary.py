"""The fault suite's summary: one JSON line per scenario run, printed as a Markdown table.

Tests call :func:`record` with a :class:`~faults.harness.Tally`. The records are kept for
the session (``conftest.py`` prints the table at its end), and appended to the file named
by ``MIDWAY_FAULTS_SUMMARY`` when it is set, for ``make faults``, which then runs
``python tests/faults/summary.py FILE`` to print the table last.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

RECORDS: list[dict[str, Any]] = []
COLUMNS = ("scenario", "jobs", "kills", "items", "lost", "duplicated", "in doubt", "redone")


def record(row: Any) -> None:
    """Keep one scenario's outcome (a ``Tally``, or a dict with its fields)."""
    data = row if isinstance(row, dict) else row.as_record()
    RECORDS.append(data)
    path = os.environ.get("MIDWAY_FAULTS_SUMMARY")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(data) + "\n")


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
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    print("\n## Fault suite summary\n")
    print(table(records))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
