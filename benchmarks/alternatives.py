"""Throughput of the alternatives (batchledger, DBOS Transact), each in its own process.

The driver times only the loop over the items (after imports, and after DBOS's launch or
batchledger's open), as run.py times only ``job.run`` on a store created beforehand.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from children import Tool
from measure import Measure, Session

# What each tool does per item, for the table (filled in with what the driver reports).
HOW = {
    "batchledger": "batchledger {version}: Ledger.run, 2 commits per item "
    "(running, done); journal {journal_mode}, synchronous=FULL; cannot batch",
    "dbos": "DBOS Transact {version}: a workflow, one @DBOS.step per item; SQLite system "
    "database with DBOS's defaults (journal {journal_mode}, synchronous={synchronous})",
    "dbos-wal": "DBOS Transact {version}, the same with the database switched to WAL first "
    "(as midway; journal {journal_mode}, synchronous={synchronous})",
}
FALLBACK = {
    "batchledger": "batchledger: Ledger.run, per item",
    "dbos": "DBOS Transact: a workflow, one @DBOS.step per item",
    "dbos-wal": "DBOS Transact, database switched to WAL first",
}


@dataclass
class Alternative:
    """One alternative's measure and what its driver said about itself."""

    variant: str  # a key of HOW
    tool: Tool
    measure: Measure
    facts: dict[str, Any] = field(default_factory=dict)

    def thunk(self, session: Session) -> float:
        with session.folder() as folder:
            db = folder / "alt.db"
            if self.variant == "dbos-wal":
                set_wal(db)
            report = self.tool.run("throughput", db, self.measure.items)
        self.facts = report
        return float(report["seconds"])

    def finish(self) -> None:
        """Put the version and settings the driver reported into the row's label."""
        try:
            self.measure.label = HOW[self.variant].format(**self.facts)
        except KeyError:
            self.measure.label = FALLBACK[self.variant]


def set_wal(db: Path) -> None:
    """Create the database in WAL mode, which SQLite keeps for every later connection."""
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
    finally:
        conn.close()


def alternatives(tools: dict[str, Tool], items: int) -> list[Alternative]:
    out = []
    for variant in HOW:
        tool = tools[variant.split("-")[0]]
        measure = Measure(f"alternatives.{variant}", FALLBACK[variant], items)
        out.append(Alternative(variant, tool, measure))
    return out
