"""How long midway takes to start: ``import midway``, ``midway --help``, ``midway status``.

Each command is run as a fresh process many times; within a round every command runs once,
``python -c pass`` included, in an order that rotates from round to round, so that all see
the same machine. The table shows the median wall time of each and what it adds to
``python -c pass``, and the median processor time (user + system) of each, which a busy
machine inflates less than the wall time. midway's own import time is also read from
``python -X importtime`` (the cumulative figure of the ``midway`` package: what its import
costs past the interpreter's start), the median over as many runs. ``import midway`` binds
the exceptions and loads the other public names on first use, so a row also shows what
naming ``midway.Job`` adds: what a script that runs a job loads before its first item.

    .venv/bin/python benchmarks/startup.py              # 21 rounds, about half a minute
    .venv/bin/python benchmarks/startup.py --rounds 51  # steadier on a busy machine
    .venv/bin/python benchmarks/startup.py --markdown   # the table as markdown

``midway status`` reads a store made in a temporary folder before the clock starts: an empty
one (``MIDWAY_STORE``), and one with three finished jobs (a table); the working directory of
every command is that folder. The commands run with their compiled ``.pyc`` files written (a
warm-up run of each writes them), as after ``pip install``: ``PYTHONDONTWRITEBYTECODE`` is
dropped from their environment.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from measure import cpu_model

# The goals of the start-up issue, in ms, on the 2-core machine it was measured on.
IMPORT_GOAL_MS = 30.0
COMMAND_GOAL_MS = 120.0


@dataclass
class Command:
    """One command line, timed once per round."""

    label: str
    argv: list[str]
    goal_ms: float | None = None
    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)

    def median_ms(self) -> float:
        return statistics.median(self.seconds) * 1000

    def run_once(self, cwd: Path, env: dict[str, str]) -> None:
        cpu_before = children_cpu()
        started = time.perf_counter()
        done = subprocess.run(
            self.argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            check=False,
        )
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"{self.label} failed ({done.returncode}): {done.stderr.decode()}")
        self.seconds.append(elapsed)
        self.cpu_seconds.append(children_cpu() - cpu_before)


def children_cpu() -> float:
    """User + system seconds of the finished children: what a command cost the processor,
    which another program on the machine slows down less than it does the wall clock."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def midway_command() -> list[str]:
    """The ``midway`` script installed next to this interpreter, as a user runs it."""
    script = Path(sys.executable).with_name("midway")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "midway"]


def own_import_ms(env: dict[str, str], cwd: Path) -> float:
    """midway's import as ``-X importtime`` sees it: the cumulative µs of the package line."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import midway"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    for line in done.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[2].strip() == "midway":
            return int(parts[1]) / 1000
    raise SystemExit(f"no line for midway in -X importtime's output:\n{done.stderr}")


def make_store(folder: Path, env: dict[str, str], jobs: int) -> str:
    """A store with ``jobs`` finished jobs in it (none: as on the first day), made by the
    library before the clock starts; its URL."""
    url = f"sqlite:///{folder / f'state-{jobs}.db'}"
    code = (
        "import sys, midway, midway.stores as s\n"
        "s.open_store(sys.argv[1]).close()\n"
        "for i in range(int(sys.argv[2])):\n"
        "    job = midway.Job(f'job-{i}', store=sys.argv[1], quiet=True)\n"
        "    job.run(range(1000), lambda item, ctx: None)\n"
    )
    subprocess.run([sys.executable, "-c", code, url, str(jobs)], cwd=folder, env=env, check=True)
    return url


def measure(rounds: int) -> tuple[list[Command], list[float]]:
    folder = Path(tempfile.mkdtemp(prefix="midway-startup-"))
    try:
        env = dict(os.environ)
        env.pop("PYTHONPROFILEIMPORTTIME", None)
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # the warm-up writes the .pyc, as an install does
        env["MIDWAY_STORE"] = make_store(folder, env, 0)
        three = make_store(folder, env, 3)
        midway = midway_command()
        commands = [
            Command("python -c pass", [sys.executable, "-c", "pass"]),
            Command("python -c 'import midway'", [sys.executable, "-c", "import midway"]),
            Command(  # what a script that runs a job loads before its first item
                "python -c 'import midway; midway.Job'",
                [sys.executable, "-c", "import midway; midway.Job"],
            ),
            Command("midway --help", [*midway, "--help"], COMMAND_GOAL_MS),
            Command("midway status (empty store)", [*midway, "status"], COMMAND_GOAL_MS),
            Command(
                "midway status (3 jobs)", [*midway, "status", "--store", three], COMMAND_GOAL_MS
            ),
        ]
        for command in commands:  # one warm-up each: the disk cache, the .pyc files
            command.run_once(folder, env)
            command.seconds.clear()
        imports: list[float] = []
        for index in range(rounds):
            shift = index % len(commands)
            for command in commands[shift:] + commands[:shift]:
                command.run_once(folder, env)
            imports.append(own_import_ms(env, folder))
        return commands, imports
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def hardware_line() -> str:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{cpu_model()}, {usable} of {os.cpu_count()} CPUs usable, load {load:.2f}; "
        f"{platform.platform()}; Python {platform.python_version()}"
    )


def table(commands: list[Command], imports: list[float]) -> list[list[str]]:
    base = commands[0]
    rows = [["command", "wall median", "min", "max", "past python -c pass", "CPU median", "goal"]]
    for command in commands:
        past = command.median_ms() - base.median_ms()
        goal = "" if command.goal_ms is None else f"< {command.goal_ms:.0f} ms wall"
        rows.append(
            [
                command.label,
                f"{command.median_ms():.1f} ms",
                f"{min(command.seconds) * 1000:.1f} ms",
                f"{max(command.seconds) * 1000:.1f} ms",
                "" if command is base else f"{past:+.1f} ms",
                f"{statistics.median(command.cpu_seconds) * 1000:.1f} ms",
                goal,
            ]
        )
    rows.append(
        [
            "midway's own import (-X importtime)",
            f"{statistics.median(imports):.1f} ms",
            f"{min(imports):.1f} ms",
            f"{max(imports):.1f} ms",
            "",
            "",
            f"< {IMPORT_GOAL_MS:.0f} ms",
        ]
    )
    return rows


def render(rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(row) + " |" for row in rows]
        lines.insert(1, "|" + "|".join("---" for _ in rows[0]) + "|")
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=21, help="runs of each command (21)")
    parser.add_argument("--markdown", action="store_true", help="print the table as markdown")
    args = parser.parse_args()
    commands, imports = measure(args.rounds)
    print(hardware_line())
    print(f"median of {args.rounds} rounds, the commands alternating within each round")
    print(render(table(commands, imports), args.markdown))


if __name__ == "__main__":
    main()
