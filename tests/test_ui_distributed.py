"""A distributed job seen and handled as one job: three worker processes share its six
partitions, one is SIGKILLed after a number of items (from a logged seed); the dashboard's
page of the job, opened while they work, follows it to its end in Chromium; then ``midway
show``, ``midway report``, the Python API and ``midway retry`` across every partition, and
the next worker handles exactly the items put back."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import midway
from support.crashjob import pick_seed, reap_runners
from support.killer import LineCounter
from support.uiserver import serve
from test_cli import invoke
from test_ui import browser, page  # noqa: F401  # the Chromium fixtures

if TYPE_CHECKING:
    from playwright.sync_api import Page

SCRIPT = Path(__file__).resolve().parent / "support" / "distjob.py"
N, FAIL_MOD = 600, 50
FAILING = [i for i in range(N) if i % FAIL_MOD == 0]


@pytest.fixture(autouse=True)
def _no_stray_workers() -> Iterator[None]:
    yield
    reap_runners()


def start(log: Path, store_url: str, **env: str) -> subprocess.Popen[bytes]:
    import os

    return subprocess.Popen(
        [sys.executable, str(SCRIPT), str(log), store_url, str(N), "range"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **env},
    )


def calls(log: Path) -> Counter[int]:
    return Counter(int(line.split()[0]) for line in log.read_text().splitlines())


@pytest.mark.parametrize("store_kind", ["sqlite", "file", "postgresql"])
def test_a_distributed_job_is_one_job_through_a_kill(
    store_kind: str,
    tmp_path: Path,
    page: Page,  # noqa: F811  # the fixture imported above
    request: pytest.FixtureRequest,
) -> None:
    from playwright.sync_api import expect

    seed = pick_seed()
    kill_at = random.Random(seed).randrange(60, 240)
    why = f"seed {seed} (MIDWAY_TEST_SEED={seed} replays it), kill at {kill_at} items"
    store_url = (
        request.getfixturevalue("postgresql_url")
        if store_kind == "postgresql"
        else (
            f"sqlite:///{tmp_path / 'state.db'}"
            if store_kind == "sqlite"
            else f"file://{tmp_path / 'store'}"
        )
    )
    log = tmp_path / "calls.log"
    counter = LineCounter(log)
    workers = [start(log, store_url, FAIL_MOD=str(FAIL_MOD)) for _ in range(3)]
    deadline = time.monotonic() + 60
    while counter.count() < kill_at:
        assert time.monotonic() < deadline, why
        time.sleep(0.005)
    workers[0].send_signal(signal.SIGKILL)

    with serve(store_url) as served:
        # The page of the whole job, opened while the two others work: live to its end.
        page.goto(served.sign_in("jobs/spread"))
        expect(page.locator("h1")).to_contain_text("spread")
        expect(page.locator("#partitions tbody tr")).to_have_count(6)
        for proc in workers[1:]:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, (err.decode()[-2000:], why)
            assert json.loads(out.decode().splitlines()[-1])["processed"] == N, why
        workers[0].communicate()
        expect(page.locator('[data-field="checkpoint"]').first).to_have_text("6/6 partitions done")
        expect(page.locator("h1 .status")).to_have_text("completed_with_failures")
        for row in page.locator("#partitions tbody tr").all():
            expect(row.locator(".status")).to_have_text("completed_with_failures")
        expect(page.locator("table.items tbody tr")).to_have_count(len(FAILING))
        # The jobs list: one row for the whole job.
        page.goto(served.url)
        expect(page.locator("#jobs tbody tr")).to_have_count(1)
        expect(page.locator('#jobs [data-field="checkpoint"]')).to_have_text("6/6 partitions done")

    assert set(calls(log)) == set(range(N)), why  # nothing lost through the kill

    shown = json.loads(invoke("show", "spread", "--json", "--store", store_url).stdout)
    assert shown["status"] == "completed_with_failures", why
    assert (shown["processed"], shown["failed"]) == (N, len(FAILING)), why
    assert shown["succeeded"] == N - len(FAILING), why
    # each partition of 100 items has two multiples of 50
    assert [p["status"] for p in shown["partitions"]] == ["completed_with_failures"] * 6, why
    assert [p["failed"] for p in shown["partitions"]] == [2] * 6, why
    assert sum(p["processed"] for p in shown["partitions"]) == N, why
    assert sorted(item["key"] for item in shown["items"]) == FAILING, why
    human = invoke("show", "spread", "--store", store_url).stdout
    assert "partitions" in human
    assert "~p0of6" in human
    assert "midway retry spread" in human

    report = invoke("report", "spread", "--store", store_url).stdout
    assert "# Handoff: job `spread`" in report
    assert "completed_with_failures" in report
    assert f"| failed | {len(FAILING)} |" in report
    assert "midway retry spread" in report
    as_json = json.loads(
        invoke("report", "spread", "--format", "json", "--store", store_url).stdout
    )
    assert as_json["processed"] == N
    assert len(as_json["parts"]) == 6
    assert "| `spread~p5of6` | completed_with_failures | 100 of 100 | 2 |" in report

    job = midway.Job("spread", store=store_url, partitions=6)
    status = job.status()
    assert status.partitions is not None
    assert len(status.partitions) == 6
    assert [p.index for p in status.partitions] == list(range(6))
    assert {r.job for r in status.runs} == {p.job for p in status.partitions}, why
    assert sorted(r.key for r in job.items("failed")) == FAILING
    with pytest.raises(midway.ConfigError, match="no failed item with key 1"):
        job.retry(keys=[0, 1])
    assert job.retry(keys=[0]) == 1
    retried = invoke("retry", "spread", "--store", store_url)
    assert retried.exit_code == 0
    assert f"{len(FAILING) - 1} item(s)" in retried.stdout
    job.note("multiples of 50 fixed upstream", author="ops")
    listed = midway.jobs(store_url)
    assert [j.job for j in listed] == ["spread"], why  # one entry, the partitions inside
    assert listed[0].partitions == status.partitions

    # The next worker hands each partition its own records: exactly those items again.
    before = calls(log)
    again = start(log, store_url)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, (err.decode()[-2000:], why)
    assert calls(log) - before == Counter(FAILING), why
    status = job.status()
    assert (status.status, status.succeeded, status.failed) == ("completed", N, 0), why
    assert [n.text for n in status.notes] == ["multiples of 50 fixed upstream"]
