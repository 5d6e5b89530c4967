"""The headline job: 10,000 contacts imported into a CRM over HTTP, 100 per call, with the
import SIGKILLed several times after seeded numbers of records the CRM has handled.

The CRM is examples/crm_server.py on 127.0.0.1 (in this process, so the test can count what
it handled and hold its answer while a kill lands); the import is examples/import_contacts.py
in a real process. At the end the CRM holds each valid contact once, the contacts it
rejected are the job's failed items with its reason, and nothing else is in the ledger."""

from __future__ import annotations

from pathlib import Path

import httpx

from support.crm import serve_crm

COUNT = 10_000
KILLS = 5


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
