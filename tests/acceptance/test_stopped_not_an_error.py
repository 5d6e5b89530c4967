"""A stop is not an error: ``except Exception`` / ``except midway.MidwayError`` around a job
do not swallow a SIGTERM stop, and the script still exits 143."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import midway
from midway._model.result import RunResult

SCRIPT = """
import sys, time
import midway

def handle(item, ctx):
    print(item, flush=True)
    time.sleep(0.005)

job = midway.Job("wrapped", store=sys.argv[1], every=10, progress=False)
try:
    job.run(range(1_000_000), handle)
except {caught} as exc:
    print(f"swallowed {{type(exc).__name__}}", file=sys.stderr, flush=True)
    sys.exit(7)
"""


def test_stopped_is_not_an_exception() -> None:
    stopped = midway.Stopped(
        "stopped", signal_number=signal.SIGTERM, result=RunResult(job="j", status="stopped")
    )
    assert not isinstance(stopped, Exception)
    assert not isinstance(stopped, midway.MidwayError)
    assert isinstance(stopped, SystemExit)
    assert stopped.code == stopped.exit_code == 143


@pytest.mark.parametrize("caught", ["Exception", "midway.MidwayError"])
def test_sigterm_passes_through_except_clauses_and_exits_143(tmp_path: Path, caught: str) -> None:
    script = tmp_path / "wrapped.py"
    script.write_text(textwrap.dedent(SCRIPT.format(caught=caught)))
    store = f"sqlite:///{tmp_path / 'state.db'}"
    proc = subprocess.Popen(
        [sys.executable, str(script), store],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert proc.stdout is not None
        for handled, _line in enumerate(proc.stdout, 1):  # signal after 20 handled items
            if handled == 20:
                proc.send_signal(signal.SIGTERM)
                break
        proc.stdout.read()
        stderr = proc.stderr.read() if proc.stderr else ""
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "swallowed" not in stderr, stderr
    assert "Traceback" not in stderr, stderr
    assert code == 143, stderr
