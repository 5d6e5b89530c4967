"""The hook for benchmarks/resume.py (midway's own resume cost on a large CSV), when present.

resume.py is its own benchmark with its own options; run.py only runs it with ``--json``
(and ``--quick`` when both are quick and it offers that), and shows what it reports: a table
when it gives rows, else its figures one per line.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from children import last_json, tail
from measure import Grid, progress

SCRIPT = Path(__file__).resolve().parent / "resume.py"
TIMEOUT = 1800
TITLE = "6. midway's own resume cost (benchmarks/resume.py)"


def measure(quick: bool, tmp: Path) -> Grid | None:
    """resume.py's figures as a table; None when there is no resume.py."""
    if not SCRIPT.exists():
        return None
    progress("running benchmarks/resume.py --json")
    extra = ["--quick"] if quick and offers(SCRIPT, "--quick") else []
    try:
        report = run(extra, tmp)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        return Grid(TITLE, ("figure", "value"), [("resume.py failed", str(exc)[:300])])
    return as_grid(report)


def offers(script: Path, option: str) -> bool:
    return option in sh([sys.executable, str(script), "--help"], 60).stdout


def sh(cmd: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout)


def run(extra: list[str], tmp: Path) -> Any:
    """``--json`` printing to stdout, or ``--json FILE`` if that is what it takes."""
    cmd = [sys.executable, str(SCRIPT), *extra, "--json"]
    done = sh(cmd, TIMEOUT)
    if done.returncode == 0:
        try:
            return json.loads(done.stdout)
        except ValueError:
            found = last_json(done.stdout)
            if found is not None:
                return found
    out = tmp / "resume.json"
    done = sh([*cmd, str(out)], TIMEOUT)
    if done.returncode != 0 or not out.exists():
        raise ValueError(f"exit {done.returncode}: {tail(done.stderr or done.stdout)}")
    return json.loads(out.read_text(encoding="utf-8"))


def as_grid(report: Any) -> Grid:
    rows, notes = report, []
    if isinstance(report, dict):  # its list of cases; the figures about the input as a note
        rows = next((v for v in report.values() if is_table(v)), None)
        notes = [
            ", ".join(f"{k}: {cell(v)}" for k, v in report.items() if isinstance(v, int | str))
        ]
    if is_table(rows):
        headers: list[str] = []
        for r in rows:
            headers += [k for k in r if k not in headers]
        cells = [tuple(cell(r.get(h)) for h in headers) for r in rows]
        return Grid(TITLE, tuple(headers), cells, notes=notes, data={"report": report})
    flat = list(flatten(report))
    return Grid(TITLE, ("figure", "value"), flat[:40], ("value",), data={"report": report})


def is_table(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(r, dict) for r in value)


def flatten(value: Any, prefix: str = "") -> Any:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from flatten(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(value, list) and not all(isinstance(v, int | float | str) for v in value):
        for i, v in enumerate(value):
            yield from flatten(v, f"{prefix}[{i}]")
    else:
        yield (prefix or "value", cell(value))


def cell(value: Any) -> str:
    """A figure as the table shows it; a list of rounds' timings as its best (the least)."""
    if isinstance(value, list) and value and all(isinstance(v, int | float) for v in value):
        return f"{min(value):,.4g} (best of {len(value)})"
    if isinstance(value, float):
        return f"{value:,.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return "" if value is None else str(value)
