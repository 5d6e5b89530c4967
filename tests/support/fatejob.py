"""A job run by the acceptance tests, killed and started again on purpose.

``python fatejob.py CONFIG.json [OVERRIDES-JSON]``. Each handler call appends
``<key> <attempt>`` to a log with one ``os.write`` on an O_APPEND descriptor, so a SIGKILL
loses no call that happened. What the handler does with an item is its *fate*:

- ``mixed`` (``guarantee`` at-least-once): n % 89 == 0 raises ValueError (skipped),
  n % 97 == 0 raises KeyError (failed for good), n % 83 == 0 raises TimeoutError on its first
  two attempts, then works; ``fixed`` makes every item work.
- ``send`` (at-most-once): "sends" the item by appending it to ``sent`` with fsync.
- ``insert`` (exactly-once): inserts the item into table ``sent`` through ctx.transaction.

A run meant to be killed holds at its ``MIDWAY_TEST_HOLD_AT``-th handler call for as long as
the file ``MIDWAY_TEST_HOLD_FILE`` exists (``support.killer.FileGate``).
"""

import itertools
import json
import os
import sys
import time

import midway

with open(sys.argv[1], encoding="utf-8") as f:
    cfg = json.load(f)
if len(sys.argv) > 2:
    cfg.update(json.loads(sys.argv[2]))

log_fd = os.open(cfg["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
sent_fd = os.open(cfg["sent"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
fate, pause = cfg["fate"], cfg["pause"]
HOLD_AT = int(os.environ.get("MIDWAY_TEST_HOLD_AT", "0"))
HOLD_FILE = os.environ.get("MIDWAY_TEST_HOLD_FILE", "")
calls = itertools.count(1)
MARK = "%s" if cfg["store"].startswith("postgres") else "?"  # the driver's placeholder


def handle(item, ctx):
    os.write(log_fd, f"{item} {ctx.attempt}\n".encode())
    if next(calls) == HOLD_AT:
        while os.path.exists(HOLD_FILE):
            time.sleep(0.005)
    if pause:
        time.sleep(pause)
    if fate == "mixed":
        if item % 89 == 0:
            raise ValueError(f"item {item} does not validate")
        if item % 97 == 0:
            raise KeyError(f"item {item} is broken for good")
        if item % 83 == 0 and ctx.attempt < 3:
            raise TimeoutError(f"item {item} timed out")
    elif fate == "send":
        os.write(sent_fd, f"{item}\n".encode())
        os.fsync(sent_fd)
    elif fate == "insert":
        ctx.transaction.execute(f"INSERT INTO sent (n) VALUES ({MARK})", (item,))
    ctx.state["handled"] = ctx.state.get("handled", 0) + 1


options = {}
if cfg.get("retry"):
    options["retry"] = midway.Retry(attempts=3, on=(TimeoutError,), backoff=0.001)
if cfg.get("skip_on"):
    options["skip_on"] = (ValueError,)
if cfg.get("workers"):
    options["workers"] = cfg["workers"]
if cfg.get("max_failures") is not None:
    options["max_failures"] = cfg["max_failures"]
job = midway.Job(
    cfg["name"],
    store=cfg["store"],
    every=cfg["every"],
    every_seconds=None,
    guarantee=cfg["guarantee"],
    progress=False,
    lease_ttl=2.0,
    **options,
)
try:
    result = job.run(list(range(cfg["n"])), handle, state={"handled": midway.Sum()})
except midway.MidwayError as err:
    print(f"fatejob: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
    sys.exit(err.exit_code)
print(
    json.dumps(
        {
            "status": result.status,
            "succeeded": result.succeeded,
            "failed": result.failed,
            "skipped": result.skipped,
            "in_doubt": result.in_doubt,
            "processed": result.processed,
            "state": result.state,
        }
    ),
    flush=True,
)
