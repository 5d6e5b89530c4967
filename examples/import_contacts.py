"""Import the contacts of a CSV file into a CRM, 100 per call, resumable at any moment.

    python examples/crm_server.py --port 8765 --db crm.db &      # the CRM (or your own)
    python examples/import_contacts.py contacts.csv --crm http://127.0.0.1:8765 \\
        --make-contacts 10000

Each call sends 100 contacts to the CRM's batch endpoint; the CRM answers record by record.
A contact it rejects (an e-mail address it does not accept) is recorded as failed with the
CRM's reason, by ``ctx.fail``, and the other 99 count as imported. When the CRM says 429
(too many requests) the handler raises ``midway.RetryAfter`` with the CRM's ``Retry-After``,
and midway sends the batch again after that wait (``retry=``).

Kill it (Ctrl-C, kill -9, a reboot) and run it again: it carries on after the last batch
the CRM answered, so a crash sends at most the batch in hand again, whole. The CRM upserts
by e-mail address, so a batch sent twice leaves each contact in it once. Then:

    midway failed import-contacts          # the rejected contacts, each with the CRM's reason
    midway failed import-contacts --export rejected.csv

With ``--make-contacts N`` it first writes N made-up contacts to the CSV file, about one in
fifty with an address the CRM rejects.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import random
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import midway

BATCH = 100
COMPANIES = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Tyrell"]
NAMES = ["Ada", "Björn", "Chiara", "Dmitri", "Émile", "Fatima", "Grace", "Hiro", "Zoë"]


def make_contacts(path: Path, count: int, seed: int = 7) -> None:
    """``count`` contacts, about 2% of them with an address no CRM would take."""
    rng = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["email", "name", "company"])
        for n in range(count):
            email = f"contact{n:06d}@example.com"
            if rng.random() < 0.02:
                email = rng.choice([email.replace("@", " at "), email.replace(".com", "")])
            writer.writerow([email, rng.choice(NAMES), rng.choice(COMPANIES)])


class CRMClient:
    """One kept-alive connection to the CRM's batch endpoint."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.path = parts.path.rstrip("/") + "/contacts/batch"
        self.conn: http.client.HTTPConnection | None = None

    def upsert(self, contacts: list[dict[str, Any]]) -> list[dict[str, str]]:
        """The CRM's result for each contact, in order. A 429 raises ``midway.RetryAfter``
        with the wait the CRM asked for: midway's ``retry=`` sends the batch again then."""
        status, headers, answer = self._post(json.dumps({"contacts": contacts}).encode())
        if status == 429:
            raise midway.RetryAfter(float(headers.get("retry-after", "1")), "the CRM said 429")
        if status in (200, 207):
            results: list[dict[str, str]] = json.loads(answer)["results"]
            return results
        raise RuntimeError(f"the CRM answered {status}: {answer[:200]!r}")

    def _post(self, body: bytes) -> tuple[int, dict[str, str], str]:
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            self.conn.request("POST", self.path, body, {"Content-Type": "application/json"})
            response = self.conn.getresponse()
            answer = response.read().decode()
        except (OSError, http.client.HTTPException) as exc:
            self.conn.close()
            self.conn = None  # the next try opens a new connection
            raise ConnectionError(f"cannot reach the CRM: {exc}") from exc
        headers = {k.lower(): v for k, v in response.getheaders()}
        return response.status, headers, answer


def import_contacts(csv_path: Path, crm: str, store: str | None) -> midway.RunResult:
    client = CRMClient(crm)

    def send(rows: list[dict[str, str]], ctx: midway.Context) -> None:
        results = client.upsert(rows)
        for key, result in zip(ctx.keys, results, strict=True):
            if result["status"] != "ok":
                ctx.fail(key, result["error"])  # this contact only: the rest are in

    job = midway.Job(
        "import-contacts",
        store=store,
        every=BATCH,
        max_lag=0,  # each batch's checkpoint is written before the next call: a crash sends
        # again at most the batch in hand (a commit costs far less than the call)
        params={"file": str(csv_path.resolve()), "crm": crm},
        # a 429 (RetryAfter) or a dropped connection: send the batch again, up to 20 times
        retry=midway.Retry(attempts=20, on=(ConnectionError,), backoff=0.5),
        max_failures=0.05,  # a few bad addresses are expected; more means a wrong file
    )
    return job.run(midway.sources.csv(csv_path, key="email"), send, batch=BATCH)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("contacts", type=Path, help="CSV with email, name, company")
    parser.add_argument("--crm", default="http://127.0.0.1:8765", help="the CRM's address")
    parser.add_argument("--store", default=None, help="midway store URL")
    parser.add_argument("--make-contacts", type=int, default=0, metavar="N")
    args = parser.parse_args()
    if args.make_contacts:
        make_contacts(args.contacts, args.make_contacts)
    result = import_contacts(args.contacts, args.crm, args.store)
    print(
        f"imported {result.succeeded:,}, rejected by the CRM {result.failed:,}"
        + (" (see: midway failed import-contacts)" if result.failed else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
