"""A distributed job for the acceptance tests: ``python distjob.py LOG STORE [N]``.

Each handler call appends ``<item> <pid>`` to LOG with one O_APPEND write, so a SIGKILL
loses no call that happened; the result is printed as JSON when every partition is done.
"""

import json
import os
import sys
import time

import midway

log = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
n = int(sys.argv[3]) if len(sys.argv) > 3 else 3000


def handle(item, ctx):
    os.write(log, f"{item} {os.getpid()}\n".encode())
    time.sleep(0.003)
    ctx.state["count"] = ctx.state.get("count", 0) + 1
    ctx.state["sum"] = ctx.state.get("sum", 0) + item


job = midway.Job("spread", store=sys.argv[2], partitions=6, every=20, lease_ttl=1.0, progress=False)
try:
    result = job.run(range(n), handle, distributed=True)
except midway.MidwayError as err:
    print(f"distjob: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
    sys.exit(err.exit_code)
print(json.dumps({"status": result.status, "processed": result.processed, "state": result.state}))
