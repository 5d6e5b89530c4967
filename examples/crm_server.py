"""A small CRM to import contacts into: the kind of batch endpoint bulk APIs have.

    python examples/crm_server.py --port 8765 --db crm.db

``POST /contacts/batch`` takes ``{"contacts": [{"email": ..., "name": ..., "company":
...}, ...]}``, at most 100 records per call, and upserts each contact by its e-mail address
(case aside). It answers record by record, as HubSpot's or SendGrid's batch endpoints do:

- 200 ``{"results": [{"email": ..., "status": "ok"}, ...]}`` when every record was taken;
- 207 (Multi-Status) when some were rejected: those results say ``"status": "error"`` and
  ``"error": "INVALID_EMAIL: ..."``, the others were taken;
- 413 for more than 100 records, 400 for a body that is not such a list (nothing taken);
- 429 with ``Retry-After`` now and then (``--throttle``, a fraction of calls, seeded by
  ``--seed``): nothing taken, call again after that many seconds.

``GET /contacts`` lists what it holds, ``GET /stats`` counts calls, records and throttled
calls. Everything it holds is in a SQLite file (``--db``), committed per call, so it
survives the server's restarts and a test can read it. Needs Starlette and uvicorn
(``pip install 'midway[ui]'``).
"""

from __future__ import annotations

import argparse
import random
import re
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

MAX_RECORDS = 100
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}")

SCHEMA = """
CREATE TABLE IF NOT EXISTS contacts (
    email TEXT PRIMARY KEY, name TEXT, company TEXT, writes INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS stats (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class CRM:
    """The CRM's data and its rules, apart from HTTP. ``on_record`` (for tests) is called
    with the number of records handled so far, after each call's commit."""

    def __init__(
        self, db: Path, *, seed: int = 0, throttle: float = 0.0, retry_after: str = "1"
    ) -> None:
        self.conn = sqlite3.connect(db, check_same_thread=False, isolation_level=None)
        self.conn.executescript(SCHEMA)
        self.conn.execute("PRAGMA journal_mode = WAL")  # survives the server's crash; a
        self.conn.execute("PRAGMA synchronous = NORMAL")  # power cut may lose the last calls
        self.lock = threading.Lock()
        self.rng = random.Random(seed)
        self.throttle = throttle
        self.retry_after = retry_after
        self.on_record: Callable[[int], None] | None = None

    def throttled(self) -> bool:
        with self.lock:
            hit = self.rng.random() < self.throttle
            if hit:
                self._count("throttled", 1)
            return hit

    def upsert(self, records: list[Any]) -> list[dict[str, str]]:
        """Take each valid record (one transaction), reject the others; one result each."""
        results = []
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            for record in records:
                email = str(record.get("email", "")) if isinstance(record, dict) else ""
                if not EMAIL.fullmatch(email):
                    why = f"INVALID_EMAIL: {email!r} is not a valid e-mail address"
                    results.append({"email": email, "status": "error", "error": why})
                    continue
                self.conn.execute(
                    "INSERT INTO contacts VALUES (?, ?, ?, 1) ON CONFLICT (email) DO UPDATE"
                    " SET name = excluded.name, company = excluded.company,"
                    " writes = writes + 1",
                    (email.lower(), record.get("name"), record.get("company")),
                )
                results.append({"email": email, "status": "ok"})
            self._count("calls", 1)
            handled = self._count("records", len(records))
            self.conn.execute("COMMIT")
        if self.on_record is not None:
            self.on_record(handled)
        return results

    def _count(self, name: str, by: int) -> int:
        self.conn.execute(
            "INSERT INTO stats VALUES (?, ?) ON CONFLICT (name) DO UPDATE"
            " SET value = value + excluded.value",
            (name, by),
        )
        row = self.conn.execute("SELECT value FROM stats WHERE name = ?", (name,)).fetchone()
        return int(row[0])

    def contacts(self) -> list[dict[str, Any]]:
        with self.lock:
            rows = self.conn.execute(
                "SELECT email, name, company, writes FROM contacts ORDER BY email"
            ).fetchall()
        return [dict(zip(("email", "name", "company", "writes"), row, strict=True)) for row in rows]

    def stats(self) -> dict[str, int]:
        with self.lock:
            rows = self.conn.execute("SELECT name, value FROM stats").fetchall()
        return {"calls": 0, "records": 0, "throttled": 0, **dict(rows)}


def make_app(crm: CRM) -> Starlette:
    async def batch(request: Request) -> JSONResponse:
        try:
            body = await request.json()
            records = body["contacts"]
            if not isinstance(records, list):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": 'send {"contacts": [...]}'}, status_code=400)
        if len(records) > MAX_RECORDS:
            why = f"at most {MAX_RECORDS} records per call, not {len(records)}"
            return JSONResponse({"error": why}, status_code=413)
        if crm.throttled():
            headers = {"Retry-After": crm.retry_after}
            return JSONResponse({"error": "too many requests"}, status_code=429, headers=headers)
        results = await _in_thread(crm.upsert, records)
        rejected = any(r["status"] == "error" for r in results)
        return JSONResponse({"results": results}, status_code=207 if rejected else 200)

    async def contacts(request: Request) -> JSONResponse:
        return JSONResponse({"contacts": crm.contacts()})

    async def stats(request: Request) -> JSONResponse:
        return JSONResponse(crm.stats())

    return Starlette(
        routes=[
            Route("/contacts/batch", batch, methods=["POST"]),
            Route("/contacts", contacts),
            Route("/stats", stats),
        ]
    )


async def _in_thread(fn: Callable[[list[Any]], Any], arg: list[Any]) -> Any:
    """The SQLite work off the event loop (a test may hold it in ``on_record``)."""
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(fn, arg)


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--db", type=Path, default=Path("crm.db"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--throttle", type=float, default=0.05, help="fraction of calls: 429")
    parser.add_argument("--retry-after", default="1", help="seconds, in the 429's Retry-After")
    args = parser.parse_args()
    crm = CRM(args.db, seed=args.seed, throttle=args.throttle, retry_after=args.retry_after)
    print(f"CRM at http://{args.host}:{args.port}/contacts/batch, data in {args.db}", flush=True)
    uvicorn.run(make_app(crm), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
