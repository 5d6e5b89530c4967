"""A batch job run by the acceptance tests, killed and started again on purpose.

``python batchjob.py CONFIG.json``. Each handler call gets a list of up to ``batch`` numbers
and appends ``<n> <first n of the batch>`` per record to a log with one ``os.write`` on an
O_APPEND descriptor, so a SIGKILL loses no call that happened and the log says how every
call was cut. Records with n % 97 == 0 are rejected (``ctx.fail``); the others take effect
by the guarantee: ``at-least-once`` nothing more, ``at-most-once`` appends them to ``sent``
with fsync, ``exactly-once`` inserts them into table ``sent`` through ``ctx.transaction``.

A run meant to be killed holds, once its handled records reach ``MIDWAY_TEST_HOLD_AT``, for
as long as the file ``MIDWAY_TEST_HOLD_FILE`` exists (``support.killer.FileGate``).
"""

import json
import os
import sys
import threading
import time

import midway

with open(sys.argv[1], encoding="utf-8") as f:
    cfg = json.load(f)

log_fd = os.open(cfg["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
sent_fd = os.open(cfg["sent"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
guarantee = cfg["guarantee"]
HOLD_AT = int(os.environ.get("MIDWAY_TEST_HOLD_AT", "0"))
HOLD_FILE = os.environ.get("MIDWAY_TEST_HOLD_FILE", "")
MARK = "%s" if cfg["store"].startswith("postgres") else "?"  # the driver's placeholder
lock = threading.Lock()
handled = [0]


def hold(count: int) -> None:
    with lock:
        before, handled[0] = handled[0], handled[0] + count
    if HOLD_AT and before < HOLD_AT <= before + count:
        while os.path.exists(HOLD_FILE):
            time.sleep(0.005)


def handle(items, ctx):
    first = items[0]
    os.write(log_fd, "".join(f"{n} {first}\n" for n in items).encode())
    hold(len(items))
    if cfg["pause"]:
        time.sleep(cfg["pause"])
    for n in items:
        if n % 97 == 0:
            ctx.fail(n, f"record {n} rejected")
    good = [n for n in items if n % 97]
    if guarantee == "at-most-once":
        os.write(sent_fd, "".join(f"{n}\n" for n in good).encode())
        os.fsync(sent_fd)
    elif guarantee == "exactly-once":
        for n in good:
            ctx.transaction.execute(f"INSERT INTO sent (n) VALUES ({MARK})", (n,))
    ctx.state["handled"] = ctx.state.get("handled", 0) + len(items)


job = midway.Job(
    "batches",
    store=cfg["store"],
    every=cfg["every"],
    every_seconds=None,
    guarantee=guarantee,
    progress=False,
    lease_ttl=2.0,
    max_lag=0,
    max_failures=0.05,
    workers=cfg["workers"],
)
try:
    result = job.run(
        list(range(cfg["n"])), handle, batch=cfg["batch"], state={"handled": midway.Sum()}
    )
except midway.MidwayError as err:
    print(f"batchjob: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
    sys.exit(err.exit_code)
print(json.dumps({"status": result.status, "processed": result.processed}), flush=True)
