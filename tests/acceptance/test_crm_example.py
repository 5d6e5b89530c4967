"""The headline job: 10,000 contacts imported into a CRM over HTTP, 100 per call, with the
import SIGKILLed several times after seeded numbers of records the CRM has handled.

The CRM is examples/crm_server.py on 127.0.0.1 (in this process, so the test can count what
it handled and hold its answer while a kill lands); the import is examples/import_contacts.py
in a real process. At the end the CRM holds each valid contact once, the contacts it
rejected are the job's failed items with its reason, and nothing else is in the ledger."""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from midway.stores import open_store
from support.crashjob import pick_seed, reap_runners
from support.crm import EXAMPLES, Served, example, serve_crm
from support.killer import kill_until_done
from support.ledgers import completed

COUNT = 10_000
KILLS = 5


@pytest.fixture
def crm(tmp_path: Path) -> Iterator[Served]:
    # a 429 on one call in ten, with a short Retry-After so that the test stays quick
    with serve_crm(tmp_path / "crm.db", seed=pick_seed(), throttle=0.1, retry_after="0.05") as s:
        yield s
    reap_runners()


def test_the_crm_answers_record_by_record(tmp_path: Path) -> None:
    with serve_crm(tmp_path / "crm.db", seed=3, throttle=0.0) as crm, httpx.Client() as http:
        url = crm.url + "/contacts/batch"
        good = {"email": "Ann@Example.com", "name": "Ann", "company": "Acme"}
        bad = {"email": "bob at example.com", "name": "Bob", "company": "Acme"}
        answer = http.post(url, json={"contacts": [good, bad]})
        assert answer.status_code == 207
        assert answer.json()["results"] == [
            {"email": "Ann@Example.com", "status": "ok"},
            {
                "email": "bob at example.com",
                "status": "error",
                "error": "INVALID_EMAIL: 'bob at example.com' is not a valid e-mail address",
            },
        ]
        again = http.post(url, json={"contacts": [{**good, "email": "ann@example.com"}]})
        assert again.status_code == 200
        contacts = http.get(crm.url + "/contacts").json()["contacts"]
        assert contacts == [
            {"email": "ann@example.com", "name": "Ann", "company": "Acme", "writes": 2}
        ], "upserted by e-mail address, case aside"
        too_many = http.post(url, json={"contacts": [good] * 101})
        assert too_many.status_code == 413
        assert http.post(url, content=b"not json").status_code == 400
        assert http.post(url, json={"contacts": "x"}).status_code == 400
        assert http.get(crm.url + "/stats").json() == {"calls": 2, "records": 3, "throttled": 0}


def test_the_crm_throttles_a_seeded_share_of_calls(tmp_path: Path) -> None:
    def throttled(seed: int) -> list[int]:
        with (
            serve_crm(tmp_path / f"crm{seed}.db", seed=seed, throttle=0.3) as crm,
            httpx.Client() as client,
        ):
            codes = []
            for _ in range(30):
                answer = client.post(crm.url + "/contacts/batch", json={"contacts": []})
                codes.append(answer.status_code)
                if answer.status_code == 429:
                    assert answer.headers["retry-after"] == "1"
            return codes

    first = throttled(5)
    assert set(first) == {200, 429}
    assert throttled(5) == first, "the same seed throttles the same calls"


def test_import_survives_kills_and_leaves_each_contact_once(crm: Served, tmp_path: Path) -> None:
    contacts = tmp_path / "contacts.csv"
    example("import_contacts").make_contacts(contacts, COUNT)
    with contacts.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    store_url = f"sqlite:///{tmp_path / 'state.db'}"
    argv = [
        sys.executable,
        str(EXAMPLES / "import_contacts.py"),
        str(contacts),
        "--crm",
        crm.url,
        "--store",
        store_url,
    ]

    finished = completed(store_url, "import-contacts")

    # at most KILLS * 1,500 records before the last kill, fewer than COUNT: each lands mid-run
    report = kill_until_done(
        argv,
        seed=pick_seed(),
        cwd=tmp_path,
        kills=KILLS,
        progress=crm.handled,
        after=(150, 1500),
        finished=finished,
        gate=crm,
        timeout=120,
    )
    why = report.describe()
    assert report.kills == KILLS, why
    assert report.last.returncode == 0, why
    assert finished(), why

    held = {c["email"]: c for c in crm.crm.contacts()}
    valid = [r for r in rows if "@" in r["email"] and r["email"].endswith(".com")]
    invalid = {r["email"] for r in rows} - {r["email"] for r in valid}
    assert 100 < len(invalid) < 400, "about one contact in fifty has a bad address"
    assert set(held) == {r["email"] for r in valid}, why  # each valid contact, none other
    for row in valid:
        assert (held[row["email"]]["name"], held[row["email"]]["company"]) == (
            row["name"],
            row["company"],
        )
    assert crm.crm.stats()["throttled"] > 0, "some calls were answered 429, and sent again"
    again = sum(c["writes"] - 1 for c in held.values())
    assert again <= KILLS * 100, f"{again} contacts sent again (bound: the batch in hand)\n{why}"

    store = open_store(store_url)
    try:
        job = next(r for r in store.list_jobs() if r.name == "import-contacts")
        ledger = list(store.list_items(job.job, ("failed", "skipped", "in_doubt")))
    finally:
        store.close()
    assert {r.key for r in ledger} == invalid, why
    for record in ledger:
        assert record.status == "failed"
        assert record.error == (f"INVALID_EMAIL: {record.key!r} is not a valid e-mail address"), (
            record
        )
    assert f"imported {len(valid):,}, rejected by the CRM {len(invalid):,}" in report.last.stdout
