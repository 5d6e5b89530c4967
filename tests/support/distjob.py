"""A distributed job for the acceptance tests: ``python distjob.py LOG STORE N [KIND DATA]``.

KIND is ``range`` (the items 0..N-1, the default), ``csv`` (the rows of the CSV file DATA,
each item its ``geonameid``) or ``sql`` (the rows of table ``items`` in the SQLite database
DATA, each item its ``id``). Each handler call appends ``<item> <pid>`` to LOG with one
O_APPEND write, so a SIGKILL loses no call that happened; the result is printed as JSON when
every partition is done.
"""

import json
import os
import sys
import time

import midway

log = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
n = int(sys.argv[3]) if len(sys.argv) > 3 else 3000
kind = sys.argv[4] if len(sys.argv) > 4 else "range"
if kind == "range":
    source, field, pause = range(n), None, 0.003
elif kind == "csv":
    source, field, pause = midway.sources.csv(sys.argv[5], key="geonameid"), "geonameid", 0.0002
else:
    url = f"sqlite:///{sys.argv[5]}"
    source, field, pause = midway.sources.sql(url, "items", key="id", batch=200), "id", 0.003


fail_mod = int(os.environ.get("FAIL_MOD", "0"))


def handle(item, ctx):
    value = int(item if field is None else item[field])
    os.write(log, f"{value} {os.getpid()}\n".encode())
    time.sleep(pause)
    if fail_mod and value % fail_mod == 0:
        raise ValueError(f"item {value} is a multiple of {fail_mod}")
    ctx.state["count"] = ctx.state.get("count", 0) + 1
    ctx.state["sum"] = ctx.state.get("sum", 0) + value


# max_lag=0: a moved partition redoes at most one interval, however slow the store is to commit
# on a loaded machine (with the default lag, fast CSV items could add 0.05 s worth, ~250 items)
job = midway.Job(
    "spread",
    store=sys.argv[2],
    partitions=6,
    every=20,
    max_lag=0,
    lease_ttl=1.0,
    progress=False,
    max_failures=n if fail_mod else None,
)
try:
    result = job.run(source, handle, distributed=True)
except midway.MidwayError as err:
    print(f"distjob: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
    sys.exit(err.exit_code)
print(json.dumps({"status": result.status, "processed": result.processed, "state": result.state}))
