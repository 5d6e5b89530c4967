"""``midway each`` and the commands it starts: after ``kill -9`` of ``midway each`` its commands
die with it, and the run that takes over kills whatever they started before it runs their
records again (at-most-once: it never runs them again). Also ``--timeout``, ``--rate`` and
``--on-drift``.

The command logs ``start <record> <pid>``; for record r3 (on the first run only) it leaves a
background process that logs ``bg <pid>`` and sleeps, which is when the test kills midway.
Run again, r3's command logs ``bgalive`` if that process is still there as it starts.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="Linux only")

MIDWAY = [sys.executable, "-m", "midway"]

COMMAND = r"""#!/bin/sh
echo "start $1 $$" >> "$LOG"
if [ "$1" = "r3" ]; then
  if [ -e "$MARK" ]; then
    pid=$(cat "$MARK")
    state=$(grep '^State:' "/proc/$pid/status" 2>/dev/null)
    case "$state" in
      "" | *Z*) ;;  # gone, or a zombie waiting to be collected
      *) echo "bgalive $1 $state" >> "$LOG" ;;
    esac
  else
    sh -c 'echo $$ > "$MARK.tmp"; mv "$MARK.tmp" "$MARK"; echo "bg $$" >> "$LOG"; exec sleep 300' &
    wait
  fi
fi
echo "end $1" >> "$LOG"
"""


def alive(pid: int) -> bool:
    """Running (a zombie nobody collected yet is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def wait_until(predicate: object, what: str, timeout: float = 30.0) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


class Folder:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.log = path / "log"
        self.mark = path / "mark"
        (path / "recs.txt").write_text("".join(f"r{i}\n" for i in range(10)))
        cmd = path / "cmd.sh"
        cmd.write_text(COMMAND)
        cmd.chmod(0o755)
        self.env = {
            **{k: v for k, v in os.environ.items() if k != "MIDWAY_STORE"},
            "LOG": str(self.log),
            "MARK": str(self.mark),
            "MIDWAY_STORE": f"sqlite:///{path / 'state.db'}",
        }
        self.pids: list[int] = []

    def argv(self, *options: str) -> list[str]:
        return [*MIDWAY, "each", "e", "--input", "recs.txt", "--every", "1", *options, "--",
                "./cmd.sh", "{}"]  # fmt: skip

    def lines(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [line.split() for line in self.log.read_text().splitlines()]

    def started(self, record: str) -> list[int]:
        return [int(x[2]) for x in self.lines() if x[:2] == ["start", record]]

    def bg(self) -> list[int]:
        return [int(x[1]) for x in self.lines() if x[0] == "bg"]

    def run(self, *options: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*options), cwd=self.path, env=self.env, check=False,
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    def kill_at_r3(self, *options: str) -> None:
        """Start `midway each`, and SIGKILL it once r3's command has its background child."""
        proc = subprocess.Popen(
            self.argv(*options), cwd=self.path, env=self.env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_until(lambda: self.bg() or proc.poll() is not None, "r3's background child")
            assert proc.poll() is None, "midway each ended before r3"
            self.pids = self.started("r3") + self.bg()
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Folder]:
    f = Folder(tmp_path)
    yield f
    for pid in f.pids + f.bg():
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def test_a_command_dies_with_a_sigkilled_each(folder: Folder) -> None:
    folder.kill_at_r3()
    (command,) = folder.started("r3")
    # Linux's parent-death signal: the command does not run on, re-parented, beside a resume
    wait_until(lambda: not alive(command), "r3's command to die with midway each", timeout=10)


@pytest.mark.parametrize(
    ("guarantee", "jobs"), [("at-least-once", "1"), ("at-most-once", "1"), ("at-least-once", "3")]
)
def test_the_next_run_kills_what_the_dead_run_left_before_its_records_run(
    folder: Folder, guarantee: str, jobs: str
) -> None:
    folder.kill_at_r3("--guarantee", guarantee, "-j", jobs)
    (bg,) = folder.bg()
    assert alive(bg), "the command's own child outlives it: the next run must stop it"

    before = len(folder.lines())  # with -j 3 the dead run may have run records past r3
    again = folder.run("--guarantee", guarantee, "-j", jobs)
    assert not alive(bg), again.stderr
    assert f"left running (pids {bg})" in again.stderr, again.stderr
    words = [line[0] for line in folder.lines()]
    assert "bgalive" not in words, "r3 ran again while the dead run's process still ran"
    if guarantee == "at-most-once":
        assert again.returncode == 1, again.stderr  # r3 is in doubt, never run again
        assert len(folder.started("r3")) == 1, folder.lines()
        assert "1 in doubt" in again.stderr, again.stderr
    else:
        assert again.returncode == 0, again.stderr
        assert len(folder.started("r3")) == 2, folder.lines()
    assert all(folder.started(f"r{i}") for i in range(10)), folder.lines()
    # the next run starts no record twice; with -j 3 the dead run may have handled records
    # past r3 (r9 among them), which the next run redoes or not as its checkpoint says
    rerun = [line[1] for line in folder.lines()[before:] if line[0] == "start"]
    assert len(rerun) == len(set(rerun)), folder.lines()
    if jobs == "1":
        assert len(folder.started("r9")) == 1, folder.lines()


def test_timeout_kills_the_command_and_fails_its_record(folder: Folder) -> None:
    (folder.path / "recs.txt").write_text("fast\nslow\nfast2\n")
    script = folder.path / "cmd.sh"
    script.write_text(
        '#!/bin/sh\necho "start $1 $$" >> "$LOG"\n'
        'if [ "$1" = slow ]; then sleep 300 & echo "bg $!" >> "$LOG"; wait; fi\n'
    )
    done = folder.run("--timeout", "1", "--max-failures", "5")
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert "1 failed" in done.stderr, done.stderr
    assert folder.started("fast2"), "the job goes on after a timed-out record"
    (bg,) = folder.bg()
    folder.pids = [bg]
    assert not alive(bg), "the timed-out command's process group was killed"
    failed = subprocess.run(
        [*MIDWAY, "failed", "e", "--json"], cwd=folder.path, env=folder.env, check=True,
        capture_output=True, text=True,
    )  # fmt: skip
    (row,) = json.loads(failed.stdout)
    assert row["key"] == 2  # the second line
    assert row["error"].startswith("CommandFailed: timed out after 1 s"), row


def test_rate_spaces_the_commands_out(folder: Folder) -> None:
    (folder.path / "recs.txt").write_text("".join(f"r{i}\n" for i in range(8)))
    (folder.path / "cmd.sh").write_text('#!/bin/sh\necho "at $(date +%s.%N)" >> "$LOG"\n')
    done = folder.run("--rate", "10/s")
    assert done.returncode == 0, done.stderr
    times = [float(x[1]) for x in folder.lines()]
    assert len(times) == 8
    # 10 a second once the first few (a small burst the rate allows) have started
    assert times[-1] - times[0] >= 0.4, times
    bad = folder.run("--rate", "fast")
    assert bad.returncode == 2, bad.stderr
    assert "'50/s'" in bad.stderr, bad.stderr


def test_on_drift_is_a_flag_and_the_refusal_names_it(folder: Folder) -> None:
    (folder.path / "cmd.sh").write_text(
        '#!/bin/sh\necho "start $1 $$" >> "$LOG"\n'
        'if [ "$1" = r5 ] && [ ! -e "$MARK" ]; then touch "$MARK"; exit 7; fi\n'
    )
    first = folder.run()
    assert first.returncode == 1, first.stderr
    with (folder.path / "recs.txt").open("a") as f:
        f.write("r10\n")
    refused = folder.run()
    assert refused.returncode == 3, refused.stderr
    assert "--on-drift restart" in refused.stderr, refused.stderr
    assert "--on-drift continue" in refused.stderr, refused.stderr
    assert "on_drift=" not in refused.stderr, refused.stderr
    resumed = folder.run("--on-drift", "continue")
    assert resumed.returncode == 0, resumed.stderr
    assert "as --on-drift continue asks" in resumed.stderr, resumed.stderr
    assert [len(folder.started(f"r{i}")) for i in range(11)] == [1] * 5 + [2] + [1] * 5
