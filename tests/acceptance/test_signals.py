"""Promise 9, graceful stop: SIGINT / SIGTERM to a real job process, on every store.

- one signal: the item in hand finishes, a checkpoint covering exactly the logged items is
  written, the process exits 130 / 143 with a line saying where it stopped and how to resume,
  and the resumed run handles every other item once: no rework at all;
- a second SIGINT while a slow item is in hand exits at once, leaving the last periodic
  checkpoint valid and resumable;
- ``job.loop()``: a body that raises (or breaks) after K items leaves a checkpoint at exactly
  K when it left ``state`` alone (else the last checkpoint stands), and the next run resumes
  there.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.crashjob import CrashJob, Spec, clean_state, initial_state, reap_runners

N = 2000


@pytest.fixture(autouse=True)
def _no_stray_runners() -> Iterator[None]:
    """A failed test must not leave its job processes running."""
    yield
    reap_runners()


def keys(start: int, stop: int) -> list[str]:
    return [str(i) for i in range(start, stop)]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_stops_after_the_item_in_hand_and_resume_redoes_nothing(
    store_url: str, tmp_path: Path, sig: signal.Signals
) -> None:
    job = CrashJob(tmp_path / "job", Spec(store=store_url, n=N, every=50, pause=0.001))
    # It waits at its 150th item until the signal has been seen: it cannot finish first.
    gate = tmp_path / "hold"
    gate.touch()
    runner = job.start(hold_at=150, hold_file=str(gate))
    runner.wait_for_keys(120)
    runner.send(sig)
    runner.wait_for_stderr(f"{sig.name}: stopping after the current item")
    gate.unlink()
    stopped = runner.wait(timeout=20)

    assert stopped.returncode == 128 + sig, stopped.stderr
    assert f"{sig.name}: stopping after the current item" in stopped.stderr, stopped.stderr
    assert "Traceback" not in stopped.stderr, stopped.stderr

    cp = job.read_checkpoint()
    assert cp is not None, stopped.stderr
    done = cp.counters.processed
    assert done > 0
    # The item in hand was finished and counted: the log holds exactly the saved items.
    assert stopped.keys == keys(0, done), f"logged {len(stopped.keys)}, saved {done}"
    assert cp.position == done
    assert cp.state == clean_state(range(done))
    record = job.job_record()
    assert record is not None
    assert record.status == "stopped"

    resumed = job.run(pause=0)
    assert resumed.returncode == 0, resumed.stderr
    assert "RESUMING job 'crashjob'" in resumed.stderr, resumed.stderr
    assert f"continuing at index {done:,}" in resumed.stderr, resumed.stderr
    assert resumed.keys == keys(done, N), "a graceful stop must cost no rework"
    result = resumed.result
    assert result is not None
    assert result["resumed_from"]["processed"] == done
    assert result["resumed_from"]["version"] == cp.version
    assert result["counters"]["processed"] == N
    assert result["state"] == clean_state(range(N))
    assert job.read_checkpoint() is None


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_stop_says_where_it_stopped_and_how_to_resume(tmp_path: Path, sig: signal.Signals) -> None:
    """The engine's words, not the store's: one store is enough."""
    store = f"sqlite:///{tmp_path / 'state.db'}"
    job = CrashJob(tmp_path / "job", Spec(store=store, n=N, every=50, pause=0.001))
    runner = job.start()
    runner.wait_for_keys(60)
    runner.send(sig)
    stopped = runner.wait(timeout=20)
    assert stopped.returncode == 128 + sig, stopped.stderr
    cp = job.read_checkpoint()
    assert cp is not None
    lines = [line for line in stopped.stderr.splitlines() if f"stopped by {sig.name}" in line]
    assert lines, stopped.stderr
    assert "Resume with:" in lines[-1], stopped.stderr
    assert str(job.script) in lines[-1], "the resume command should name the script"
    assert f"index {cp.counters.processed:,}" in lines[-1], lines[-1]


def test_second_sigint_exits_at_once_and_the_last_checkpoint_stands(
    store_url: str, tmp_path: Path
) -> None:
    every, slow = 10, 30
    spec = Spec(store=store_url, n=300, every=every, pause=0.002, slow_key=str(slow), slow_for=60)
    job = CrashJob(tmp_path / "job", spec)
    runner = job.start()
    runner.wait_for_keys(slow + 1)  # the slow item is in hand
    runner.send(signal.SIGINT)
    runner.wait_for_stderr("SIGINT: stopping after the current item")
    # Checkpoints are committed by the run's keeper thread: the one for the items before the
    # slow one may still be on its way to a loaded disk. Let it land, so that what the
    # second SIGINT must leave standing is known.
    deadline = time.monotonic() + 20
    while (cp := job.read_checkpoint()) is None or cp.counters.processed < slow:
        assert time.monotonic() < deadline, f"no checkpoint at {slow} before the slow item: {cp}"
        time.sleep(0.02)
    sent = time.monotonic()
    runner.send(signal.SIGINT)
    stopped = runner.wait(timeout=20)
    took = time.monotonic() - sent

    assert stopped.returncode == 130, stopped.stderr
    # The slow item takes 60 s: ending well before that is "at once", even on a busy machine.
    assert took < 15, f"the second SIGINT took {took:.2f} s to end the process"
    assert "second SIGINT: exiting at once" in stopped.stderr, stopped.stderr
    assert stopped.keys == keys(0, slow + 1)

    cp = job.read_checkpoint()
    assert cp is not None
    assert cp.counters.processed == slow, "the last checkpoint is the one before the slow item"
    assert cp.position == slow
    assert cp.state == clean_state(range(slow))
    record = job.job_record()
    assert record is not None
    assert record.effective_status == "crashed", record.status

    resumed = job.run(slow_key=None, pause=0)
    assert resumed.returncode == 0, resumed.stderr
    assert f"continuing at index {slow:,}" in resumed.stderr, resumed.stderr
    assert resumed.keys == keys(slow, 300), "only the abandoned item is handled again"
    result = resumed.result
    assert result is not None
    assert result["counters"]["processed"] == 300
    assert result["state"] == clean_state(range(300))


@pytest.mark.parametrize("how", ["raise", "break"])
@pytest.mark.parametrize("uses_state", [False, True], ids=["stateless", "stateful"])
def test_loop_left_after_k_items(
    store_url: str, tmp_path: Path, how: str, uses_state: bool
) -> None:
    """A ``job.loop()`` body that raises (or breaks) on item K, before touching anything.

    Stateless, the checkpoint keeps exactly the K finished items. With ``ctx.state``
    changed since the last checkpoint, midway cannot tell the item in hand's changes from
    the finished items', so the last checkpoint stands (README: "state and position always
    agree") and the items after it are handled again: at most one interval.
    """
    n, k, every = 500, 137, 50
    spec = Spec(
        store=store_url,
        n=n,
        every=every,
        mode="loop",
        leave_after=k,
        leave_how=how,
        pause=0,
        fold_state=uses_state,
    )
    job = CrashJob(tmp_path / "job", spec)
    left = job.run()
    cp = job.read_checkpoint()
    if uses_state:
        # The last committed checkpoint stands: with group commit and items this fast it
        # may be an interval or two before the last one that fell due.
        saved = cp.counters.processed if cp is not None else 0
        assert saved % every == 0, saved
        assert k - 3 * every < saved <= (k // every) * every, saved
    else:
        saved = k
    if how == "raise":
        assert left.returncode == 1, left.stderr
        assert "RuntimeError: the loop body failed on purpose" in left.stderr, left.stderr
    else:
        assert left.returncode == 0, left.stderr
        result = left.result
        assert result is not None
        assert result["status"] == "stopped"
        assert result["counters"]["processed"] == saved
    said = f"left at index {saved:,}" if not uses_state else f"resumes at index {saved:,}"
    assert said in left.stderr, left.stderr
    assert left.keys == keys(0, k)

    assert cp is not None
    assert cp.counters.processed == saved
    assert cp.position == saved
    assert cp.state == (clean_state(range(saved)) if uses_state else initial_state())

    resumed = job.run(leave_after=None)
    assert resumed.returncode == 0, resumed.stderr
    assert f"continuing at index {saved:,}" in resumed.stderr, resumed.stderr
    assert resumed.keys == keys(saved, n)
    result = resumed.result
    assert result is not None
    assert result["resumed_from"]["processed"] == saved
    assert result["status"] == "completed"
    assert result["counters"]["processed"] == n
    assert result["state"] == (clean_state(range(n)) if uses_state else initial_state())
