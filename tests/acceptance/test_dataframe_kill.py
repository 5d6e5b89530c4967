"""A DataFrame job, and a Parquet file's (resumed at a row group and a row in it), SIGKILLed
after random numbers of handled rows (the seed is in every message) and run again until it
completes: every row is handled, none more often than a kill's rework allows, and the final
counters are the input's row count."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import pytest

from conftest import store_url_for
from support.crashjob import pick_seed
from support.killer import kill_until_done

ROWS = 3000
EVERY = 25
PAUSE = 0.001
MAX_LAG = 0.05
KILLS = 6

JOB = """\
import json, os, sys, time
import midway

store, log_path = sys.argv[1], sys.argv[2]
rows = int(sys.argv[3])
data = {"id": [f"row-{i}" for i in range(rows)], "n": list(range(rows))}
SOURCE
log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

def handle(row, ctx):
    os.write(log, (row["id"] + "\\n").encode())
    ctx.state["sum"] = ctx.state.get("sum", 0) + row["n"]
    time.sleep(PAUSE)

job = midway.Job("frame", store=store, every=EVERY, max_lag=MAX_LAG, progress=False)
result = job.run(source, handle)
print(json.dumps({"status": result.status, "succeeded": result.succeeded,
                  "failed": result.failed, "state": result.state}))
"""


FRAME = """\
import LIBRARY as lib
source = midway.sources.dataframe(lib.DataFrame(data), key="id")
"""
PARQUET = """\
import pyarrow as pa, pyarrow.parquet as pq
path = os.path.join(os.path.dirname(log_path), "rows.parquet")
if not os.path.exists(path):  # written once, by the first run: later runs resume on it
    pq.write_table(pa.table(data), path + ".tmp", row_group_size=250)
    os.rename(path + ".tmp", path)
source = midway.sources.parquet(path, key="id")
"""


@pytest.mark.parametrize(
    ("library", "store_kind"), [("pandas", "sqlite"), ("polars", "file"), ("parquet", "sqlite")]
)
def test_dataframe_job_survives_sigkill(tmp_path: Path, library: str, store_kind: str) -> None:
    script = tmp_path / "job.py"
    source = PARQUET if library == "parquet" else FRAME.replace("LIBRARY", library)
    text = JOB.replace("SOURCE\n", source).replace("PAUSE", repr(PAUSE))
    script.write_text(
        text.replace("EVERY", str(EVERY)).replace("MAX_LAG", repr(MAX_LAG)), encoding="utf-8"
    )
    log = tmp_path / "handled.log"
    url = store_url_for(store_kind, tmp_path)
    argv = [sys.executable, str(script), url, str(log), str(ROWS)]
    # At most KILLS * 400 lines are logged before the last kill, fewer than ROWS: every
    # kill lands in mid-run, whatever the machine's speed.
    report = kill_until_done(
        argv, seed=pick_seed(), cwd=tmp_path, kills=KILLS, log=log, after=(50, 400)
    )
    msg = report.describe()
    assert report.kills == KILLS, msg
    assert report.last.returncode == 0, msg
    final = json.loads(report.last.stdout.strip().splitlines()[-1])
    assert final["status"] == "completed", msg
    assert (final["succeeded"], final["failed"]) == (ROWS, 0), msg
    assert final["state"] == {"sum": ROWS * (ROWS - 1) // 2}, msg

    handled = Counter(log.read_text().split())
    assert set(handled) == {f"row-{i}" for i in range(ROWS)}, f"rows lost\n{msg}"
    # Each kill may cost one interval, plus max_lag's worth of rows handled while the
    # store was writing, plus the slice in hand (see test_crash_resume.rework_bound).
    per_lag = int(MAX_LAG / PAUSE)
    bound = EVERY + per_lag + per_lag // 2 + 2
    again = sum(handled.values()) - ROWS
    assert again <= KILLS * bound, f"{again} rows handled again (bound {KILLS * bound})\n{msg}"
