"""Declared reducers for ``ctx.state``: the same handler gives the same final state with
one worker, N workers (threads, processes, coroutines), a resume, a loop and a distributed
run; undeclared keys with workers, a changed declaration and uncombinable values are refused."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import midway

N = 400
ROWS = [{"id": i, "amount": 1 + (i * 7919) % 1000} for i in range(N)]


def declared() -> dict[str, Any]:
    return {
        "imported": midway.Sum(),
        "largest": midway.Max(),
        "smallest": midway.Min(),
        "last_id": midway.Last(),
        "errors": midway.Append(),
    }


def handle(row: dict[str, int], ctx: Any) -> None:
    """The issue's handler, and the other reducers: module level, for the process pool."""
    ctx.state["imported"] = ctx.state.get("imported", 0) + 1
    ctx.state["largest"] = max(ctx.state.get("largest") or row["amount"], row["amount"])
    ctx.state["smallest"] = min(ctx.state.get("smallest") or row["amount"], row["amount"])
    ctx.state["last_id"] = row["id"]
    if row["id"] % 37 == 0:
        ctx.state["errors"].append(row["id"])


async def handle_async(row: dict[str, int], ctx: Any) -> None:
    handle(row, ctx)


def clean() -> dict[str, Any]:
    amounts = [r["amount"] for r in ROWS]
    return {
        "imported": N,
        "largest": max(amounts),
        "smallest": min(amounts),
        "last_id": N - 1,
        "errors": [i for i in range(N) if i % 37 == 0],
    }


def store(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state.db'}"


def same(state: dict[str, Any]) -> dict[str, Any]:
    """Append keeps the items' values in the order they finished: compare as sets."""
    return {**state, "errors": sorted(state["errors"])}


@pytest.mark.parametrize(
    ("workers", "executor"),
    [(1, "thread"), (8, "thread"), (3, "process"), (8, "async")],
    ids=["one", "8-threads", "3-processes", "8-coroutines"],
)
def test_the_same_state_whatever_the_workers(tmp_path: Path, workers: int, executor: str) -> None:
    """Before: with workers the contributions were added, so the maximum became a sum."""
    job = midway.Job(
        f"red-{workers}-{executor}",
        store=store(tmp_path),
        workers=workers,
        executor=executor,  # type: ignore[arg-type]
        every=17,
        progress=False,
        quiet=True,
    )
    fn = handle_async if executor == "async" else handle
    result = job.run(ROWS, fn, state=declared())
    assert result.status == "completed"
    assert same(result.state) == clean()
    if workers == 1:
        assert result.state["errors"] == clean()["errors"]  # in the input's order


def test_the_same_state_from_a_loop_and_a_distributed_run(tmp_path: Path) -> None:
    loop = midway.Job("red-loop", store=store(tmp_path), progress=False, quiet=True).loop(
        ROWS, state=declared()
    )
    for row in loop:
        handle(row, loop.ctx)
    assert loop.result is not None
    assert loop.result.state == clean()
    job = midway.Job("red-dist", store=store(tmp_path), partitions=5, progress=False, quiet=True)
    result = job.run(ROWS, handle, state=declared(), distributed=True)
    assert result.state == clean()  # Last: from the last partition, not the last to finish


def test_last_is_by_place_in_the_input_not_by_finishing_time(tmp_path: Path) -> None:
    def slow_near_the_end(item: int, ctx: Any) -> None:
        if item == 60:
            time.sleep(0.3)  # finishes after every other item
        ctx.state["last"] = item

    job = midway.Job("red-last", store=store(tmp_path), workers=8, progress=False, quiet=True)
    result = job.run(range(64), slow_near_the_end, state={"last": midway.Last()})
    assert result.state == {"last": 63}


class Boom(Exception):
    pass


def test_a_resume_with_workers_counts_each_item_once(tmp_path: Path) -> None:
    """A run stopped with items finished above the watermark, resumed with other workers."""
    fail = {"on": 250}

    def flaky(row: dict[str, int], ctx: Any) -> None:
        if row["id"] == fail["on"]:
            raise Boom(row["id"])
        if row["id"] % 50 == 0:
            time.sleep(0.05)  # holds the watermark back while later items finish
        handle(row, ctx)

    url = store(tmp_path)
    job = midway.Job("red-resume", store=url, workers=8, every=10, progress=False, quiet=True)
    with pytest.raises(Boom):
        job.run(ROWS, flaky, state=declared())
    info = job.info()
    assert info is not None
    assert info.checkpoint is not None
    assert info.checkpoint.extra["reducers"] == {
        "errors": "append",
        "imported": "sum",
        "largest": "max",
        "last_id": "last",
        "smallest": "min",
    }
    fail["on"] = -1
    again = midway.Job("red-resume", store=url, workers=3, every=10, progress=False, quiet=True)
    result = again.run(ROWS, flaky, state=declared())
    assert same(result.state) == clean()


def test_a_key_without_a_reducer_stops_the_job_at_the_first_item(tmp_path: Path) -> None:
    """Before: the contributions were added up and the job completed with a wrong state."""
    calls: list[int] = []

    def keep_max(item: int, ctx: Any) -> None:
        calls.append(item)
        ctx.state["max"] = max(ctx.state.get("max", 0), item)

    job = midway.Job("red-undeclared", store=store(tmp_path), workers=4, progress=False)
    with pytest.raises(midway.ConfigError) as caught:
        job.run(range(200), keep_max, state={"n": midway.Sum()})
    message = str(caught.value)
    assert "ctx.state['max']" in message
    assert "midway.Sum" in message
    assert "midway.Last" in message
    assert "merge=" in message
    assert len(calls) < 200  # stopped, not run to the end
    info = job.info()
    assert info is not None
    assert info.checkpoint is not None
    assert "max" not in info.checkpoint.state


def test_a_resume_with_another_declaration_is_refused(tmp_path: Path) -> None:
    url = store(tmp_path)

    def count(item: int, ctx: Any) -> None:
        if item == 30:
            raise Boom
        ctx.state["n"] = ctx.state.get("n", 0) + 1

    job = midway.Job("red-changed", store=url, workers=4, every=5, progress=False, quiet=True)
    with pytest.raises(Boom):
        job.run(range(60), count, state={"n": midway.Sum()})
    with pytest.raises(midway.RefusedError, match=r"midway.Sum\(\).*midway.Max\(\)"):
        job.run(range(60), count, state={"n": midway.Max()})
    with pytest.raises(midway.RefusedError, match="reducers"):
        midway.Job("red-changed", store=url, progress=False, quiet=True).run(range(60), count)


def test_a_value_a_reducer_cannot_combine_is_refused(tmp_path: Path) -> None:
    def text(item: int, ctx: Any) -> None:
        ctx.state["n"] = "many"

    par = midway.Job("red-text", store=store(tmp_path), workers=4, progress=False, quiet=True)
    with pytest.raises(
        midway.ConfigError, match=r"ctx.state\['n'\].*midway.Sum\(\) combines a number"
    ):
        par.run(range(20), text, state={"n": midway.Sum()})
    info = par.info()
    assert info is not None
    assert info.checkpoint is not None
    assert info.checkpoint.counters.processed == 0
    assert info.checkpoint.state == {"n": 0}
    one = midway.Job("red-text-1", store=store(tmp_path), every=5, progress=False, quiet=True)
    with pytest.raises(midway.ConfigError, match="combines a number"):
        one.run(range(20), text, state={"n": midway.Sum()})
    with pytest.raises(midway.ConfigError, match=r"midway.Sum\(\)"):
        one.run(range(20), text, state={"n": midway.Sum})  # the class, not an instance


SCRIPT = """
import json, os, sys, time
import midway

rows = [{"id": i, "amount": 1 + (i * 7919) % 1000} for i in range(int(sys.argv[3]))]
log = os.open(sys.argv[2], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

def handle(row, ctx):
    time.sleep(0.002)
    ctx.state["imported"] = ctx.state.get("imported", 0) + 1
    ctx.state["largest"] = max(ctx.state.get("largest") or row["amount"], row["amount"])
    ctx.state["smallest"] = min(ctx.state.get("smallest") or row["amount"], row["amount"])
    ctx.state["last_id"] = row["id"]
    if row["id"] % 37 == 0:
        ctx.state["errors"].append(row["id"])
    os.write(log, b"%d\\n" % row["id"])

state = {"imported": midway.Sum(), "largest": midway.Max(), "smallest": midway.Min(),
         "last_id": midway.Last(), "errors": midway.Append()}
job = midway.Job("killed", store=sys.argv[1], workers=8, every=25, progress=False, quiet=True)
result = job.run(rows, handle, state=state)
print(json.dumps({"status": result.status, "state": result.state}))
"""


def handled(log: Path) -> list[int]:
    if not log.exists():
        return []
    return [int(line) for line in log.read_text().split()]


def test_sigkill_at_random_item_counts_with_8_workers_gives_the_clean_state(
    tmp_path: Path,
) -> None:
    n = 1200
    seed = random.randrange(1 << 30)
    print(f"kill seed: {seed}")
    rng = random.Random(seed)
    script = tmp_path / "killed.py"
    script.write_text(textwrap.dedent(SCRIPT))
    log = tmp_path / "handled.log"
    url = store(tmp_path)
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    kills, final = 0, None
    for _ in range(60):
        before = len(handled(log))
        target = before + rng.randint(20, 200)
        child = subprocess.Popen(
            [sys.executable, str(script), url, str(log), str(n)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        while child.poll() is None and len(handled(log)) < target:
            time.sleep(0.002)
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
            child.wait()
            kills += 1
            continue
        out, err = child.communicate()
        assert child.returncode == 0, err.decode()
        final = json.loads(out.decode().strip().splitlines()[-1])
        break
    assert final is not None, f"seed {seed}: never finished"
    assert kills >= 3, f"seed {seed}: only {kills} kills landed"
    print(f"{kills} kills, {len(handled(log)) - n} items handled again")
    assert final["status"] == "completed"
    assert set(handled(log)) == set(range(n)), f"seed {seed}"  # every item handled
    rows = [{"id": i, "amount": 1 + (i * 7919) % 1000} for i in range(n)]
    job = midway.Job("clean", store=url, progress=False, quiet=True)
    want = job.run(rows, handle, state=declared()).state
    # Items redone after a kill counted once: imported is exactly n, errors has no repeat.
    assert same(final["state"]) == same(want), f"seed {seed}, {kills} kills"
