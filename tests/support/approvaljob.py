"""A midway job, in a real subprocess, that asks a person about every fifth item.

Each item's handler prepares it in a ``ctx.step``, asks ``ctx.approval`` about items
divisible by five, and then applies (or, rejected, drops) it. What it does goes to an
effects log, one line per act (``prepare 5``, ``ask 5``, ``apply 5``, ``reject 5``), and a
line per handler call to a progress log the killer counts. Under at-least-once the apply is
a ``ctx.step`` (a repeat of the item does not repeat it); under at-most-once it is a plain
write (the guarantee itself keeps it to one).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SCRIPT = """\
import json
import os
import sys

import midway

cfg = json.loads(sys.argv[1])
progress = os.open(cfg["progress"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
effects = os.open(cfg["effects"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)


def act(what, item):
    os.write(effects, f"{what} {item}\\n".encode())
    return item


def handle(item, ctx):
    os.write(progress, f"{os.getpid()} {item}\\n".encode())
    ctx.step("prepare", act, "prepare", item)
    if item % 5:
        return
    act("ask", item)
    ok = ctx.approval(f"may item {item} go ahead?", data={"item": item})
    what = "apply" if ok else "reject"
    if cfg["guarantee"] == "at-least-once":
        ctx.step("apply", act, what, item)
    else:
        act(what, item)


job = midway.Job("approvals", store=cfg["store"], every=7, every_seconds=None,
                 guarantee=cfg["guarantee"], progress=False, quiet=True)
result = job.run(midway.sources.sequence(list(range(cfg["n"]))), handle)
print(json.dumps({"status": result.status, "waiting": result.waiting,
                  "in_doubt": result.in_doubt}), flush=True)
sys.exit(4 if result.status == "waiting" else 0)
"""


def write_script(folder: Path) -> Path:
    script = folder / "approval_job.py"
    script.write_text(SCRIPT, encoding="utf-8")
    return script


def argv(script: Path, folder: Path, store: str, guarantee: str, n: int) -> list[str]:
    config = {
        "store": store,
        "guarantee": guarantee,
        "n": n,
        "progress": str(folder / "progress.log"),
        "effects": str(folder / "effects.log"),
    }
    return [sys.executable, str(script), json.dumps(config)]


def effects(folder: Path) -> list[tuple[str, int]]:
    path = folder / "effects.log"
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [(what, int(item)) for what, item in (line.split() for line in lines)]
