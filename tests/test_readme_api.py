"""The README's example of the Python API (its "Operate from Python" section) prints what its
comments say. tests/test_docs.py runs every marked block; this one also checks the output."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def operate_example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Operate from Python", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert found, "the README's Operate from Python section has no python block"
    return found.group(1)


def run(code: str, folder: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_readme_example_runs_and_prints_what_it_says(tmp_path: Path) -> None:
    out = run(operate_example(), tmp_path).splitlines()
    assert out[0] == "completed_with_failures 1,000 of 1,000 10 failed"
    assert out[1].startswith("42 ValueError: contact 42 has no e-mail 1 20")
    assert out[11:13] == ["2", "8"]
    assert out[13] == "import-contacts completed_with_failures 992 8 0"
    assert (tmp_path / "handoff.html").read_text(encoding="utf-8").startswith("<!doctype html>")
