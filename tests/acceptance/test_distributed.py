"""Distributed workers: three processes share a job's partitions through the store; one is
SIGKILLed mid-partition, another SIGSTOPped past its lease and then woken up. The partitions
are index ranges of a sequence, byte ranges of the world-cities CSV, or key ranges of a
table."""

from __future__ import annotations

import csv
import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from midway.stores import open_store
from midway.views import overview
from support.crashjob import pick_seed, reap_runners, store_is_busy
from support.killer import LineCounter

SCRIPT = Path(__file__).resolve().parents[1] / "support" / "distjob.py"
N, EVERY = 3000, 20


@pytest.fixture(autouse=True)
def _no_stray_workers() -> Iterator[None]:
    yield
    reap_runners()


def start(log: Path, store_url: str, source: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), str(log), store_url, str(N), *source],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def items_of(kind: str, folder: Path, world_cities: Path) -> tuple[list[str], list[int]]:
    """The worker's source arguments, and the items it must handle."""
    if kind == "range":
        return ["range"], list(range(N))
    if kind == "csv":
        with world_cities.open(encoding="utf-8", newline="") as f:
            ids = [int(row["geonameid"]) for row in csv.DictReader(f)]
        return ["csv", str(world_cities)], ids
    ids = [7 * i + 3 for i in range(N)]  # keys with gaps, as a real table's have
    db = folder / "data.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
        conn.executemany("INSERT INTO items VALUES (?, ?)", [(i, f"item {i}") for i in ids])
    conn.close()
    return ["sql", str(db)], ids


def partition_of(store_url: str, pid: int) -> str | None:
    """The partition whose lease ``pid`` holds, if any."""
    store = open_store(store_url)
    try:
        for record in store.list_jobs():
            owner = record.lease.owner if record.lease else None
            if owner is not None and owner.pid == pid:
                return record.job
        return None
    finally:
        store.close()


def pause_between_writes(proc: subprocess.Popen[bytes], store_url: str) -> None:
    """SIGSTOP ``proc`` at a moment it holds no store lock: stopped inside a SQLite write,
    it would hold up every other worker's writes, not only its lease."""
    for _ in range(200):
        proc.send_signal(signal.SIGSTOP)
        time.sleep(0.02)  # let the stop land
        if not store_is_busy(store_url, "spread"):
            return
        proc.send_signal(signal.SIGCONT)
        time.sleep(0.003)
    raise AssertionError(f"pid {proc.pid} held the store's lock every time it was stopped")


def pause_holding_a_partition(proc: subprocess.Popen[bytes], store_url: str) -> str | None:
    """Pause ``proc`` between writes at a moment it holds a partition's lease (not while it
    goes from one partition to the next); returns that partition."""
    for _ in range(200):
        pause_between_writes(proc, store_url)
        held = partition_of(store_url, proc.pid)
        if held is not None:
            return held
        proc.send_signal(signal.SIGCONT)
        time.sleep(0.01)
    return None


def status(store_url: str) -> list[dict[str, Any]]:
    store = open_store(store_url)
    try:
        return [row.to_json() for row in overview.status_rows(store)]
    finally:
        store.close()


def done(store_url: str, job: str) -> bool:
    store = open_store(store_url)
    try:
        record = store.get_job(job)
        return record is not None and record.status == "completed"
    finally:
        store.close()


def pids_in(log: Path) -> Counter[int]:
    return Counter(int(line.split()[1]) for line in log.read_text().splitlines())


@pytest.mark.parametrize(
    ("store_kind", "source_kind"),
    [("sqlite", "range"), ("postgresql", "range"), ("postgresql", "csv"), ("sqlite", "sql")],
)
def test_workers_share_partitions_and_survive_kill_and_pause(
    store_kind: str,
    source_kind: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    world_cities: Path,
) -> None:
    seed = pick_seed()
    source, items = items_of(source_kind, tmp_path, world_cities)
    store_url = (
        f"sqlite:///{tmp_path / 'state.db'}"
        if store_kind == "sqlite"
        else request.getfixturevalue("postgresql_url")
    )
    log = tmp_path / "calls.log"
    counter = LineCounter(log)
    workers = [start(log, store_url, source) for _ in range(3)]
    why = f"seed {seed}"
    # Let them all get going, then kill one and pause another mid-partition.
    deadline = time.monotonic() + 60
    while counter.count() < 300 or len(pids_in(log)) < 3:
        assert time.monotonic() < deadline, why
        time.sleep(0.01)
    # `midway status` meanwhile: the whole job, running, with its workers and their leases.
    rows = status(store_url)
    whole = next(r for r in rows if r["job"] == "spread")
    assert whole["status"] == "running", (whole, why)
    assert whole["partitions"]["planned"] == 6, (whole, why)
    assert len(whole["workers"]) >= 2, (whole, why)
    held_now = [r for r in rows if r["partition_of"] == "spread" and r["owner"]]
    assert held_now, (rows, why)
    assert all(0 <= r["lease_expires_in_seconds"] <= 1.05 for r in held_now), (held_now, why)
    killed, paused, steady = workers
    killed.kill()
    held = pause_holding_a_partition(paused, store_url)
    assert held is not None, why
    # Past the paused worker's 1 s lease, another worker takes its partition over (once it
    # has nothing else to do); then the paused one wakes up.
    deadline = time.monotonic() + 60
    while partition_of(store_url, steady.pid) != held and not done(store_url, held):
        assert time.monotonic() < deadline, why
        time.sleep(0.05)
    paused.send_signal(signal.SIGCONT)
    outputs = {}
    for name, proc in (("steady", steady), ("paused", paused)):
        out, err = proc.communicate(timeout=120)
        outputs[name] = (proc.returncode, out.decode(), err.decode())
    killed.communicate()
    for name, (code, out, err) in outputs.items():
        assert code == 0, (name, err[-2000:], why)
        result = json.loads(out.strip().splitlines()[-1])
        assert result["status"] == "completed", (name, why)
        assert result["processed"] == len(items), (name, why)
        # The merged state counts each item once: no late write of the paused one landed.
        assert result["state"] == {"count": len(items), "sum": sum(items)}, (name, why)
    paused_err = outputs["paused"][2]
    assert "lost its lease" in paused_err, (paused_err[-2000:], why)  # refused by the fence

    calls = Counter(int(line.split()[0]) for line in log.read_text().splitlines())
    assert set(calls) == set(items), why  # nothing lost, nothing from outside the input
    extra = sum(calls.values()) - len(items)
    print(f"{store_kind}/{source_kind}: {extra} calls redone ({why})")
    # Two partitions moved (the killed one's and the paused one's): each redoes at most one
    # interval (max_lag=0), and the paused one, woken, handles at most one more before its
    # next checkpoint meets the fence; 20 more for the items in hand.
    assert extra <= 2 * (EVERY + 20), (extra, why)
