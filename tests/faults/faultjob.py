"""The job the fault suite kills: ``python faultjob.py CONFIG.json [OVERRIDES-JSON]``.

Every handler call first appends ``<key> <attempt>`` to this run's log with one ``os.write``
on an ``O_APPEND`` descriptor, so a SIGKILL loses no call that happened. Then the item's
*fate*: ``plain`` does nothing more; ``send`` (at-most-once) appends the key to ``sent``
and fsyncs, an effect that cannot be undone; ``insert`` (exactly-once) inserts the key into
table ``sent`` through ``ctx.transaction``. Last, the item is folded into ``ctx.state``
(count, sum and, one item at a time, an order-sensitive digest), so a checkpoint's state
can be checked against its position. ``fill_at``: when that item is handled, the handler
first fills the disk at ``fill_path`` until it is full (a disk that fills up mid-run).
``hold_at``: when that item is handled (right after its call is logged), the handler waits
for as long as the file ``hold_file`` exists: a run the harness means to kill cannot finish
before the kill lands, however slow the harness is to send it.

On completion it prints one line of JSON; a ``MidwayError`` is printed on stderr and ends
the process with the error's exit code. Anything else escapes as a traceback (exit 1),
which the suite counts as an unclear error. ``MIDWAY_FAULTS`` arms the injection points.
``main()`` also runs in the test's own process (``FaultJob.run_here``).
"""

from __future__ import annotations

import errno
import json
import os
import sys
import time
from typing import Any

import midway

DIGEST_MOD = 2_305_843_009_213_693_951
cfg: dict[str, Any] = {}
fds: dict[str, int] = {}


def fill_disk(path: str) -> None:
    """Write zeros to ``path`` until the disk is full."""
    block = bytes(64 * 1024)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        while True:
            try:
                os.write(fd, block)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                if len(block) == 1:
                    return
                block = block[: len(block) // 2]
    finally:
        os.close(fd)


def handle(item: int, ctx: Any) -> None:
    os.write(fds["log"], f"{item} {ctx.attempt}\n".encode())
    if item == cfg.get("hold_at"):
        while os.path.exists(cfg["hold_file"]):
            time.sleep(0.005)
    if item == cfg["fill_at"]:
        fill_disk(cfg["fill_path"])
    if cfg["pause"]:
        time.sleep(cfg["pause"])
    fate = cfg["fate"]
    if fate == "send":
        os.write(fds["sent"], f"{item}\n".encode())
        os.fsync(fds["sent"])
    elif fate == "insert":
        ctx.transaction.execute("INSERT INTO sent (n) VALUES (?)", (item,))
    state = ctx.state
    if cfg["workers"] > 1:  # a contribution of this item alone, declared midway.Sum()
        state["count"] = 1
        state["sum"] = item
        return
    state["count"] = state.get("count", 0) + 1
    state["sum"] = state.get("sum", 0) + item
    state["digest"] = (state.get("digest", 0) * 1_000_003 + item) % DIGEST_MOD


def main(argv: list[str]) -> int:
    with open(argv[0], encoding="utf-8") as f:
        cfg.clear()
        cfg.update(json.load(f))
    if len(argv) > 1:
        cfg.update(json.loads(argv[1]))
    fds["log"] = os.open(cfg["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    fds["sent"] = os.open(cfg["sent"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        return run()
    finally:
        for fd in fds.values():
            os.close(fd)
        fds.clear()


def run() -> int:
    options: dict[str, Any] = {}
    state = None
    if cfg["workers"] > 1:
        state = {"count": midway.Sum(), "sum": midway.Sum()}
        options["workers"] = cfg["workers"]
        options["executor"] = cfg["executor"]
    job = midway.Job(
        cfg["name"],
        store=cfg["store"],
        every=cfg["every"],
        every_seconds=cfg["every_seconds"],
        guarantee=cfg["guarantee"],
        durable=cfg["durable"],
        lease_ttl=cfg["lease_ttl"],
        max_lag=cfg["max_lag"],
        progress=False,
        **options,
    )
    try:
        result = job.run(range(cfg["n"]), handle, state=state)
    except midway.MidwayError as err:
        if isinstance(err, SystemExit):
            raise
        print(f"faultjob: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
        return err.exit_code
    summary = {
        "status": result.status,
        "processed": result.processed,
        "succeeded": result.succeeded,
        "failed": result.failed,
        "skipped": result.skipped,
        "in_doubt": result.in_doubt,
        "state": result.state,
    }
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
