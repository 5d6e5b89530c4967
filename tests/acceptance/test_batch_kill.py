"""Batches under each guarantee, killed with SIGKILL at a seeded number of handled records
and run again until done, on every store; checked record by record against the handler's own
log: nothing lost, a batch never cut differently after a crash, at-most-once never runs a
record twice, exactly-once writes each record once, and rework per kill stays within
``every`` rounded up to whole batches."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import midway
from midway.stores import open_store
from support.crashjob import pick_seed, reap_runners
from support.killer import FileGate, kill_until_done

SCRIPT = Path(__file__).resolve().parents[1] / "support" / "batchjob.py"
N, BATCH, EVERY = 3000, 30, 100  # every is rounded up to 120: four batches
REJECTED = {n for n in range(N) if n % 97 == 0}


@pytest.fixture(autouse=True)
def _no_stray_runners() -> Iterator[None]:
    yield
    reap_runners()


def prepare(store_url: str, guarantee: str) -> None:
    """Exactly-once writes into table ``sent`` of the store's own database."""
    if guarantee != "exactly-once":
        return
    if store_url.startswith("sqlite"):
        conn = sqlite3.connect(store_url.removeprefix("sqlite:///"))
        conn.execute("CREATE TABLE sent (n INTEGER)")
        conn.commit()
        conn.close()
        return
    import psycopg

    with psycopg.connect(store_url, autocommit=True) as pg:
        pg.execute("CREATE TABLE sent (n integer)")


def written(store_url: str) -> Counter[int]:
    query = "SELECT n FROM sent"
    if store_url.startswith("sqlite"):
        conn = sqlite3.connect(store_url.removeprefix("sqlite:///"))
        try:
            return Counter(n for (n,) in conn.execute(query).fetchall())
        finally:
            conn.close()
    import psycopg

    with psycopg.connect(store_url) as pg:
        return Counter(int(n) for (n,) in pg.execute(query).fetchall())


def ledger(store_url: str, *statuses: str) -> set[Any]:
    store = open_store(store_url)
    try:
        return {r.key for r in store.list_items("batches", statuses)}
    finally:
        store.close()


def summary(store_url: str, why: str) -> dict[str, Any]:
    store = open_store(store_url)
    try:
        record = store.get_job("batches")
    finally:
        store.close()
    assert record is not None, why
    assert record.checkpoint is None, why  # completed: no resume checkpoint left
    assert record.summary is not None, why
    return record.summary


@pytest.mark.parametrize("workers", [1, 8], ids=["one", "eight"])
@pytest.mark.parametrize("guarantee", ["at-least-once", "at-most-once", "exactly-once"])
def test_batches_survive_kills(
    store_url: str, tmp_path: Path, guarantee: str, workers: int
) -> None:
    if guarantee == "exactly-once" and (store_url.startswith("file") or workers > 1):
        with pytest.raises(midway.ConfigError):  # refused before anything is handled
            midway.Job("batches", store=store_url, guarantee="exactly-once", workers=workers).run(
                range(N), lambda items, ctx: pytest.fail("handled"), batch=BATCH
            )
        return
    prepare(store_url, guarantee)
    seed = pick_seed()
    log, sent = tmp_path / "calls.log", tmp_path / "sent.log"
    cfg = {
        "store": store_url,
        "log": str(log),
        "sent": str(sent),
        "n": N,
        "batch": BATCH,
        "every": EVERY,
        "workers": workers,
        "guarantee": guarantee,
        "pause": 0.001 if workers > 1 else 0.0,
    }
    path = tmp_path / "batchjob.json"
    path.write_text(json.dumps(cfg), encoding="utf-8")

    def finished() -> bool:
        store = open_store(store_url)
        try:
            record = store.get_job("batches")
        finally:
            store.close()
        return record is not None and record.checkpoint is None and record.summary is not None

    report = kill_until_done(
        [sys.executable, str(SCRIPT), str(path)],
        seed=seed,
        cwd=tmp_path,
        kills=4,
        log=log,
        finished=finished,
        gate=FileGate(tmp_path),
        # At most 600 records (plus the gate's hold) per run, and at-most-once leaves at
        # most a batch per worker in doubt per kill: the first two kills land well before
        # the 3,000 records run out (1,500 let a second run end before its kill came).
        after=(50, 600),
    )
    why = report.describe()
    assert report.kills >= 2, why
    result = summary(store_url, why)
    counters = result["counters"]
    calls = [tuple(map(int, line.split())) for line in log.read_text().splitlines()]
    per_record = Counter(n for n, _ in calls)
    cuts: defaultdict[int, set[int]] = defaultdict(set)
    for n, first in calls:
        cuts[n].add(first)
    assert all(len(firsts) == 1 for firsts in cuts.values()), why  # never cut differently
    in_doubt = ledger(store_url, "in_doubt")
    assert sum(counters.values()) == N, (counters, why)  # every record has an outcome
    assert not ledger(store_url, "started", "retrying", "done"), why
    if guarantee == "at-most-once":
        assert max(per_record.values()) == 1, why  # never ran twice
        went = Counter(int(x) for x in sent.read_text().split())
        assert max(went.values()) == 1, why
        assert set(per_record) | in_doubt == set(range(N)), why  # nothing lost
        assert len(in_doubt) <= report.kills * BATCH * workers, (len(in_doubt), why)  # in hand
        assert counters["in_doubt"] == len(in_doubt), why
        assert ledger(store_url, "failed") == REJECTED - in_doubt, why
        return
    assert set(per_record) == set(range(N)), why  # nothing lost
    assert not in_doubt, why
    assert ledger(store_url, "failed") == REJECTED, why
    assert counters["failed"] == len(REJECTED), why
    rounded = -(-EVERY // BATCH) * BATCH
    extra = sum(per_record.values()) - N
    # With workers: plus the window above the watermark (2 batches per worker).
    window = 0 if workers == 1 else 2 * workers * BATCH
    assert extra <= report.kills * (rounded + window), (extra, why)
    if guarantee == "exactly-once":
        rows = written(store_url)
        assert set(rows) == set(range(N)) - REJECTED, why
        assert set(rows.values()) == {1}, why  # each record written once


@pytest.mark.parametrize("workers", [1, 8], ids=["one", "eight"])
def test_sigint_finishes_the_batches_in_hand_and_resume_redoes_nothing(
    tmp_path: Path, workers: int
) -> None:
    store_url = f"sqlite:///{tmp_path}/state.db"
    log = tmp_path / "calls.log"
    cfg = {
        "store": store_url,
        "log": str(log),
        "sent": str(tmp_path / "sent.log"),
        "n": N,
        "batch": BATCH,
        "every": EVERY,
        "workers": workers,
        "guarantee": "at-least-once",
        "pause": 0.001,
    }
    path = tmp_path / "batchjob.json"
    path.write_text(json.dumps(cfg), encoding="utf-8")
    gate = tmp_path / "hold"
    gate.touch()
    env = {**os.environ, "MIDWAY_TEST_HOLD_AT": "1000", "MIDWAY_TEST_HOLD_FILE": str(gate)}
    argv = [sys.executable, str(SCRIPT), str(path)]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not log.exists() or len(log.read_text().splitlines()) < 1000:
            assert proc.poll() is None
            assert time.monotonic() < deadline
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.2)
        gate.unlink()
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err.decode()
    handled = [int(line.split()[0]) for line in log.read_text().splitlines()]
    store = open_store(store_url)
    try:
        checkpoint = store.load_checkpoint("batches")
    finally:
        store.close()
    assert checkpoint is not None
    done = checkpoint.counters.processed
    assert done % BATCH == 0
    assert sorted(handled) == list(range(done))  # the batches in hand finished, and count
    resumed = subprocess.run(argv, capture_output=True, timeout=60, check=False)
    assert resumed.returncode == 0, resumed.stderr.decode()
    again = [int(line.split()[0]) for line in log.read_text().splitlines()][len(handled) :]
    assert sorted(again) == list(range(done, N))  # no rework
