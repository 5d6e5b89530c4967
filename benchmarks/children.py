"""Running a measured tool in a subprocess and reading the one JSON object it prints.

Each tool has a driver with the same command line (``MODE --db PATH --items N [--at P]``):
midway_child.py with midway's Python, alt_<tool>.py with the alternatives' environment.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from altenv import AltEnv
from measure import Unavailable

HERE = Path(__file__).resolve().parent
TIMEOUT = 1800  # seconds; a DBOS crash run over 9,000 durable steps takes about a minute


@dataclass(frozen=True)
class Tool:
    """A tool the benchmark drives in a subprocess: midway itself, or an alternative."""

    name: str  # "midway", "batchledger", "dbos"
    python: Path | None
    missing: str | None = None  # why it cannot run here

    @classmethod
    def midway(cls) -> Tool:
        return cls("midway", Path(sys.executable))

    @classmethod
    def alternative(cls, name: str, env: AltEnv) -> Tool:
        return cls(name, env.python, env.reason(name))

    @property
    def script(self) -> Path:
        return HERE / ("midway_child.py" if self.name == "midway" else f"alt_{self.name}.py")

    def command(self, mode: str, db: Path, items: int) -> list[str]:
        if self.python is None:
            raise Unavailable("not installed", self.missing or "no Python to run it with")
        return [str(self.python), str(self.script), mode, "--db", str(db), "--items", str(items)]

    def run(self, mode: str, db: Path, items: int, *extra: str, killed: bool = False) -> Any:
        """Run the driver; its JSON report, or :class:`Unavailable` saying what went wrong.

        ``killed``: the driver is meant to SIGKILL itself (a crash run); nothing to read.
        """
        if self.missing is not None:
            raise Unavailable("not installed", self.missing)
        cmd = [*self.command(mode, db, items), *extra]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, check=False)
        except subprocess.TimeoutExpired as exc:
            raise Unavailable("timed out", f"{self.name} {mode}: no answer in {TIMEOUT} s") from exc
        except OSError as exc:
            raise Unavailable("failed", f"{self.name} {mode}: {exc}") from exc
        if killed:
            if done.returncode != -signal.SIGKILL:
                raise Unavailable(
                    "failed",
                    f"{self.name} {mode}: expected to die of SIGKILL, exited {done.returncode}: "
                    f"{tail(done.stderr or done.stdout)}",
                )
            return {}
        report = last_json(done.stdout)
        if report is None or done.returncode != 0:
            raise Unavailable(
                "failed",
                f"{self.name} {mode} exited {done.returncode}: {tail(done.stderr or done.stdout)}",
            )
        error = report.get("error")
        if error:
            short = "not installed" if str(error).startswith("not installed") else "failed"
            raise Unavailable(short, f"{self.name}: {error}")
        return report


def last_json(text: str) -> dict[str, Any] | None:
    for raw in reversed(text.splitlines()):
        line = raw.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return None


def tail(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "no output"
