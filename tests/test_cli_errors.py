"""Every error of the ``midway`` command is one line saying what happened and what to do,
with a documented exit code, and never a traceback (a real process, through ``main``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import midway

MIDWAY = [sys.executable, "-m", "midway"]


def _fail_odd(item: int, ctx: midway.Context) -> None:
    if item % 2:
        raise ValueError(f"odd item {item}")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A folder whose default store holds job 'j', with failed items."""
    store = f"sqlite:///{tmp_path / '.midway' / 'state.db'}"
    midway.Job("j", store=store, max_failures=10, quiet=True).run(range(6), _fail_odd)
    (tmp_path / "lines.txt").write_text("a\nb\n")
    return tmp_path


CASES: list[tuple[str, list[str], int, str]] = [
    ("failed-export", ["failed", "j", "--export", "/missing/dir/f.jsonl"], 1, "/missing/dir"),
    ("report-output", ["report", "j", "-o", "/missing/x.html"], 1, "/missing/x.html"),
    ("report-json", ["report", "j", "--format", "json", "-o", "/missing/r.json"], 1, "/missing"),
    ("show-no-job", ["show", "nosuch"], 2, "no job 'nosuch'"),
    ("show-no-store", ["show", "j", "--store", "sqlite:////missing/x.db"], 2, "no store"),
    ("status-bad-url", ["status", "--store", "bogus://x"], 2, "not a store URL"),
    ("reset-no-job", ["reset", "nosuch", "--yes"], 2, "no job 'nosuch'"),
    ("retry-no-job", ["retry", "nosuch"], 2, "no job 'nosuch'"),
    ("resolve-no-job", ["resolve", "nosuch", "--done", "--all"], 2, "no job 'nosuch'"),
    ("note-no-job", ["note", "nosuch", "hello"], 2, "no job 'nosuch'"),
    ("demo-bad-dir", ["demo", "--dir", "/dev/null/x", "--count", "20"], 1, "/dev/null/x"),
    (
        "each-bad-store",
        ["each", "e", "--input", "lines.txt", "--store", "sqlite:////dev/null/x.db", "--", "true"],
        3,
        "/dev/null",
    ),
    ("each-bad-program", ["each", "e", "--input", "lines.txt", "--", "/missing/prog"], 2, "prog"),
]

USAGE: list[tuple[str, list[str]]] = [
    ("reset-without-yes", ["reset", "j"]),
    ("worker-no-script", ["worker", "/missing/job.py"]),
    ("each-no-input", ["each", "e", "--input", "/missing/lines.txt", "--", "echo", "{}"]),
    ("report-format", ["report", "j", "--format", "pdf"]),
    ("unknown-command", ["frobnicate"]),
]


def _midway(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MIDWAY_STORE", "MIDWAY_DEBUG")}
    return subprocess.run(
        [*MIDWAY, *args], cwd=cwd, env=env, check=False, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("args", "code", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_an_error_is_one_line_and_its_exit_code(
    project: Path, args: list[str], code: int, words: str
) -> None:
    done = _midway(args, project)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert "Traceback" not in done.stderr, done.stderr
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("midway: error: "), done.stderr
    assert words in lines[0], done.stderr
    assert done.returncode == code, done.stderr


@pytest.mark.parametrize("args", [c[1] for c in USAGE], ids=[c[0] for c in USAGE])
def test_bad_usage_exits_2_without_a_traceback(project: Path, args: list[str]) -> None:
    done = _midway(args, project)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stderr.splitlines()[-1].startswith("Error: "), done.stderr
    assert done.returncode == 2, done.stderr


def test_a_user_script_under_worker_keeps_its_own_traceback(project: Path) -> None:
    (project / "boom.py").write_text("raise KeyError('the script failed')\n")
    done = _midway(["worker", "boom.py"], project)
    assert done.returncode == 1, done.stderr
    assert "Traceback" in done.stderr, done.stderr
    assert "the script failed" in done.stderr, done.stderr
