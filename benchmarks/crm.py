"""The contact import of examples/import_contacts.py against a hand-written batched loop.

    .venv/bin/python benchmarks/crm.py                  # 10,000 contacts, 5 rounds
    .venv/bin/python benchmarks/crm.py --contacts 2000 --rounds 3 --throttle 0.05

Both send the same CSV file to the example CRM (examples/crm_server.py, a process of its own
on 127.0.0.1, started afresh with an empty database for every run, outside the clock) 100
contacts per call, through the same HTTP client (``CRMClient`` of the example), and keep
the contacts the CRM rejected:

- ``hand-written``: what one writes without midway: ``csv.DictReader``, batches of 100, and
  after each call a JSON checkpoint file (rows done, rejected contacts with their reasons)
  written to a temporary file, fsynced and renamed over the old one; a 429 sleeps its
  Retry-After and calls again. Resuming would skip the rows done. Also measured without
  the fsync (what a process crash survives, not a power cut: midway's ``durable=False``).
- ``midway``: ``import_contacts()`` of the example: ``job.run(sources.csv(...), send,
  batch=100)`` with a checkpoint per batch written before the next call (``max_lag=0``),
  ``ctx.fail`` per rejected contact, a fresh SQLite store. Its time includes opening the
  store and the job's start and end.

The target is the same speed within noise: the call to the CRM is the work, and what each
adds per batch is one durable write. Rounds alternate the order; the best and the median
round of each are reported, with the ratio midway / hand-written.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import Any

import midway
from measure import Measure, Session, fmt_rate, progress, run_rounds
from run import describe_machine, machine_info

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES))
import import_contacts  # noqa: E402  (an example script, found on the path above)

BATCH = 100


def hand_written(
    contacts: Path, url: str, checkpoint: Path, *, durable: bool = True
) -> dict[str, Any]:
    """A batched import with a JSON checkpoint file, as one writes it without midway."""
    state: dict[str, Any] = {"done": 0, "rejected": {}}
    if checkpoint.exists():
        state = json.loads(checkpoint.read_text(encoding="utf-8"))
    client = import_contacts.CRMClient(url)
    with contacts.open(newline="", encoding="utf-8") as f:
        rows = csv.DictReader(f)
        for _ in islice(rows, state["done"]):
            pass  # resume: skip what the checkpoint says is done
        while batch := list(islice(rows, BATCH)):
            while True:
                try:
                    results = client.upsert(batch)
                    break
                except midway.RetryAfter as exc:
                    time.sleep(exc.retry_after)
            for row, result in zip(batch, results, strict=True):
                if result["status"] != "ok":
                    state["rejected"][row["email"]] = result["error"]
            state["done"] += len(batch)
            save(checkpoint, state, durable)
    return state


def save(path: Path, state: dict[str, Any], durable: bool) -> None:
    temp = path.with_suffix(".tmp")
    with temp.open("w", encoding="utf-8") as f:
        json.dump(state, f)
        if durable:
            f.flush()
            os.fsync(f.fileno())
    os.replace(temp, path)


@contextmanager
def crm_server(folder: Path, throttle: float) -> Iterator[str]:
    """examples/crm_server.py on a free port with an empty database, until the block ends."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    argv = [sys.executable, str(EXAMPLES / "crm_server.py"), "--port", str(port)]
    argv += ["--db", str(folder / "crm.db"), "--throttle", str(throttle), "--seed", "1"]
    argv += ["--retry-after", "0.05"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the CRM did not start") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--throttle", type=float, default=0.0, help="share of calls: 429")
    options = parser.parse_args()
    root = Path(os.environ.get("TMPDIR", "/tmp")) / f"midway-crm-bench-{os.getpid()}"
    root.mkdir()
    session = Session(root)
    contacts = root / "contacts.csv"
    import_contacts.make_contacts(contacts, options.contacts)
    expected = options.contacts

    def timed_hand(durable: bool) -> Callable[[], float]:
        def timed() -> float:
            with session.folder() as folder, crm_server(folder, options.throttle) as url:
                start = time.perf_counter()
                state = hand_written(contacts, url, folder / "checkpoint.json", durable=durable)
                seconds = time.perf_counter() - start
            assert state["done"] == expected, state["done"]
            return seconds

        return timed

    def timed_midway() -> float:
        with session.folder() as folder, crm_server(folder, options.throttle) as url:
            start = time.perf_counter()
            result = import_contacts.import_contacts(
                contacts, url, f"sqlite:///{folder / 'state.db'}"
            )
            seconds = time.perf_counter() - start
        assert result.processed == expected, result.processed
        return seconds

    hand = Measure("hand", "hand-written loop, JSON checkpoint file", expected)
    loose = Measure("loose", "the same without fsync (not durable)", expected)
    mid = Measure("midway", "midway, batch=100 (examples/import_contacts.py)", expected)
    group = [(hand, timed_hand(True)), (loose, timed_hand(False)), (mid, timed_midway)]
    try:
        run_rounds(group, options.rounds, "crm import")
        info = machine_info(root)
    finally:
        contacts.unlink()
        root.rmdir()
    print(
        f"CRM import: {expected:,} contacts, {BATCH} per call, CRM on 127.0.0.1 "
        f"(429 on {options.throttle:.0%} of calls), {options.rounds} rounds"
    )
    print(f"{'':50} {'best':>14} {'median':>14}")
    for m in (hand, loose, mid):
        print(
            f"{m.label:50} {fmt_rate(m.rate('best')):>8} rec/s {fmt_rate(m.rate('median')):>8} "
            f"rec/s   ({m.time('best'):.2f} s best)"
        )
    best = mid.rate("best") / hand.rate("best")
    median = mid.rate("median") / hand.rate("median")
    print(f"{'midway / hand-written':50} {best:>14.2f} {median:>14.2f}")
    best = mid.rate("best") / loose.rate("best")
    median = mid.rate("median") / loose.rate("median")
    print(f"{'midway / hand-written without fsync':50} {best:>14.2f} {median:>14.2f}")
    print(f"machine: {describe_machine(info)}")
    progress("done")


if __name__ == "__main__":
    main()
