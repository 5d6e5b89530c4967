"""``midway demo``: a 10,000-contact import that kills itself midway, resumes and verifies.

The parent process narrates; each import runs in a child process (``python -m midway.cli.demo``)
so that the crash is a real ``SIGKILL``, not an exception.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console

import midway
from midway._model.owner import Owner
from midway._model.redaction import redact_url
from midway._model.result import RunStatus
from midway.stores import open_store

JOB = "demo-import-contacts"

FIRST = [
    "Ada",
    "Bjørn",
    "Chiara",
    "Dmitri",
    "Elif",
    "Femi",
    "Grace",
    "Hiro",
    "Inès",
    "Jonas",
    "Kavya",
    "Luis",
    "Mei",
    "Noah",
    "Olga",
    "Priya",
    "Quentin",
    "Rosa",
    "Sven",
    "Tomás",
]
LAST = [
    "Okafor",
    "Lindqvist",
    "Rossi",
    "Ivanov",
    "Yılmaz",
    "Adeyemi",
    "Hopper",
    "Tanaka",
    "Moreau",
    "Becker",
    "Iyer",
    "García",
    "Chen",
    "Smith",
    "Nowak",
    "Patel",
    "Dubois",
    "Silva",
    "Berg",
    "Muñoz",
]
COMPANIES = [
    "Acme, Inc.",
    "Globex",
    "Initech",
    "Umbrella",
    "Hooli",
    "Vandelay Industries",
    "Stark & Sons",
    "Wayne Enterprises",
]


def contact(i: int) -> dict[str, str]:
    first, last = FIRST[i % len(FIRST)], LAST[(i * 7) % len(LAST)]
    return {
        "id": str(i),
        "first_name": first,
        "last_name": last,
        "email": f"{first.lower()}.{last.lower()}.{i}@example.com",
        "company": COMPANIES[(i * 3) % len(COMPANIES)],
    }


def write_contacts(path: Path, count: int) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(contact(1)))
        writer.writeheader()
        for i in range(1, count + 1):
            writer.writerow(contact(i))


def open_crm(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS contacts (id INTEGER PRIMARY KEY, first_name TEXT, "
        "last_name TEXT, email TEXT, company TEXT, writes INTEGER NOT NULL DEFAULT 1)"
    )
    return conn


# -- the child: one import run ----------------------------------------------------------


def import_contacts(args: argparse.Namespace) -> None:
    crm = open_crm(Path(args.crm))
    crash_at = args.crash_at

    def handle(row: dict[str, str], ctx: midway.Context) -> None:
        if int(row["id"]) == crash_at:
            os.kill(os.getpid(), signal.SIGKILL)  # a real crash: no cleanup, no goodbye
        crm.execute(
            "INSERT INTO contacts (id, first_name, last_name, email, company) "
            "VALUES (:id, :first_name, :last_name, :email, :company) "
            "ON CONFLICT (id) DO UPDATE SET first_name = excluded.first_name, "
            "last_name = excluded.last_name, email = excluded.email, "
            "company = excluded.company, writes = writes + 1",
            row,
        )
        ctx.state["imported"] = ctx.state.get("imported", 0) + 1
        time.sleep(args.delay)  # a stand-in for the CRM's API latency

    # max_lag=0: each checkpoint is on disk before the next contact, so the rework the demo
    # checks is at most one interval however loaded the machine is
    job = midway.Job(JOB, store=args.store, every=args.every, max_lag=0)
    job.run(midway.sources.csv(args.csv, key="id", total=args.count), handle)


# -- the parent: the story --------------------------------------------------------------


def run_demo(*, store_url: str, workdir: str | None, count: int, every: int, crash_at: int) -> bool:
    console = Console(stderr=False, highlight=False)
    folder = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="midway-demo-"))
    folder.mkdir(parents=True, exist_ok=True)
    contacts, crm_path = folder / "contacts.csv", folder / "crm.db"
    crm_path.unlink(missing_ok=True)
    try:
        return _story(console, store_url, contacts, crm_path, count, every, crash_at)
    finally:
        if workdir is None:
            shutil.rmtree(folder, ignore_errors=True)


def _child(
    store_url: str, contacts: Path, crm: Path, count: int, every: int, crash_at: int | None
) -> int:
    cmd = [
        sys.executable,
        "-m",
        "midway.cli.demo",
        "--store",
        store_url,
        "--csv",
        str(contacts),
        "--crm",
        str(crm),
        "--count",
        str(count),
        "--every",
        str(every),
        "--crash-at",
        str(crash_at or 0),
    ]
    return subprocess.run(cmd, check=False).returncode


def _story(
    console: Console,
    store_url: str,
    contacts: Path,
    crm_path: Path,
    count: int,
    every: int,
    crash_at: int,
) -> bool:
    store = open_store(store_url)
    key = midway.Job(JOB, store=store_url).key
    try:
        store.reset(key, Owner.current())  # a leftover demo from an interrupted run
    finally:
        store.close()
    write_contacts(contacts, count)
    console.print(
        f"[bold]midway demo[/]: import {count:,} contacts from {contacts.name} into a "
        f"SQLite CRM ({crm_path.name}), checkpointing every {every} contacts to "
        f"{redact_url(store_url)}."
    )
    console.print(
        f"\n[bold]1. First run.[/] It will kill itself with SIGKILL at contact "
        f"{crash_at:,}: no exception, no cleanup, like kill -9 or the OOM killer."
    )
    code = _child(store_url, contacts, crm_path, count, every, crash_at)
    if code != -signal.SIGKILL:
        console.print(f"[red]The first run was expected to die of SIGKILL but exited {code}.")
        return False
    console.print(f"   The import process died (exit status {code}: killed by SIGKILL).")

    store = open_store(store_url)
    try:
        checkpoint = store.load_checkpoint(key)
    finally:
        store.close()
    crm = open_crm(crm_path)
    in_crm = crm.execute("SELECT count(*) FROM contacts").fetchone()[0]
    if checkpoint is None:
        console.print("[red]No checkpoint was left behind.")
        return False
    done = checkpoint.counters.processed
    console.print(
        f"\n[bold]2. What the crash left.[/] Checkpoint #{checkpoint.version}: "
        f"{done:,} contacts done, resume at "
        f"{midway.sources.csv(contacts).describe_position(checkpoint.position)}; "
        f"state {json.dumps(checkpoint.state)}.\n   The CRM holds {in_crm:,} contacts: the "
        f"{in_crm - done:,} imported after the last checkpoint will be written again, "
        "which the CRM's upsert makes harmless (at-least-once)."
    )

    console.print("\n[bold]3. Run the same command again.[/] It resumes at the checkpoint:")
    code = _child(store_url, contacts, crm_path, count, every, None)
    if code != 0:
        console.print(f"[red]The second run failed with exit status {code}.")
        return False
    return _verify(console, store_url, key, crm, count, every)


def _verify(
    console: Console, store_url: str, key: str, crm: sqlite3.Connection, count: int, every: int
) -> bool:
    rows = {
        r[0]: r
        for r in crm.execute(
            "SELECT id, first_name, last_name, email, company, writes FROM contacts"
        )
    }
    wrong = [
        i
        for i in range(1, count + 1)
        if i not in rows or list(rows[i][1:5]) != list(contact(i).values())[1:]
    ]
    extra = len(rows) - count
    rework = sum(r[5] for r in rows.values()) - len(rows)
    store = open_store(store_url)
    try:
        left = store.load_checkpoint(key)
        record = store.get_job(key)
    finally:
        store.close()
    summary: dict[str, Any] = (record.summary or {}) if record else {}
    checks = [
        (
            not wrong and extra == 0,
            f"the CRM holds each of the {count:,} contacts exactly once, with the right data"
            + (f" ({len(wrong)} wrong or missing)" if wrong else ""),
        ),
        (
            rework <= every,
            f"{rework:,} contacts were written twice (the work after the last checkpoint); "
            f"the bound is one interval, {every}",
        ),
        (left is None, "the resume checkpoint was removed: a new run would start fresh"),
        (
            summary.get("status") == RunStatus.COMPLETED,
            f"the job's summary stays in the store: `midway show {key}`",
        ),
        (
            (summary.get("state") or {}).get("imported", 0) == count,
            f"state saved with each checkpoint counts {count:,} imports, no double counting",
        ),
    ]
    console.print("\n[bold]4. Verify.[/]")
    for ok, text in checks:
        console.print(f"   {'[green]✓' if ok else '[red]✗'}[/] {text}")
    ok = all(ok for ok, _ in checks)
    console.print("\n[bold green]Demo passed.[/]" if ok else "\n[bold red]Demo FAILED.[/]")
    return ok


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m midway.cli.demo", description="One import run of `midway demo`."
    )
    parser.add_argument("--store", required=True)
    parser.add_argument("--csv", required=True)
    parser.add_argument("--crm", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--crash-at", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0002)
    import_contacts(parser.parse_args(argv))


if __name__ == "__main__":
    main()
