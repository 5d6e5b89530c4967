"""The README's examples of the Python API run as written.

Each ```python block of README.md that follows the line ``<!-- runs as a test -->`` runs in
a fresh interpreter, in an empty folder; so does :data:`EXAMPLE`, the section proposed for
the README (the same text), so that it is checked before it lands there."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
MARKER = "<!-- runs as a test -->"

EXAMPLE = """\
import midway

def handle(item, ctx):
    if item % 100 == 42:
        raise ValueError(f"contact {item} has no e-mail")

job = midway.Job("import-contacts", store="sqlite:///state.db", max_failures=20)
job.run(range(1000), handle)

status = job.status()
print(status.status, f"{status.processed:,} of {status.total:,}", status.failed, "failed")
# completed_with_failures 1,000 of 1,000 10 failed

for record in job.items("failed"):
    print(record.key, record.error, record.attempts, record.at.isoformat())
# 42 ValueError: contact 42 has no e-mail 1 2026-...

job.note("contacts without an e-mail: the CRM team fixes them by Friday", author="ana")
print(job.retry(keys=[42, 142]))     # 2: put back, the next run handles only them
job.run(range(1000), lambda item, ctx: None)
print(job.retry(error="ValueError")) # 8: the other failures, by exception type

for entry in midway.jobs("sqlite:///state.db"):   # every job in the store
    print(entry.job, entry.status, entry.succeeded, entry.failed, entry.remaining)

open("handoff.html", "w").write(job.report(format="html"))
"""


def readme_blocks() -> list[str]:
    if not README.exists():
        return []
    text = README.read_text(encoding="utf-8")
    pattern = re.escape(MARKER) + r"\s*```python\n(.*?)```"
    return re.findall(pattern, text, flags=re.DOTALL)


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


def test_the_proposed_example_runs_and_prints_what_it_says(tmp_path: Path) -> None:
    out = run(EXAMPLE, tmp_path).splitlines()
    assert out[0] == "completed_with_failures 1,000 of 1,000 10 failed"
    assert out[1].startswith("42 ValueError: contact 42 has no e-mail 1 20")
    assert out[11:13] == ["2", "8"]
    assert out[13] == "import-contacts completed_with_failures 992 8 0"
    assert (tmp_path / "handoff.html").read_text(encoding="utf-8").startswith("<!doctype html>")


@pytest.mark.parametrize("block", readme_blocks() or [None])
def test_the_readme_examples_run(block: str | None, tmp_path: Path) -> None:
    if block is None:
        pytest.skip(f"README.md has no block marked {MARKER} yet")
    run(block, tmp_path)
