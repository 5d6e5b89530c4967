"""The dashboard's actions on a job over plain HTTP: retry failed items, resolve in-doubt
items, add a note (each behind its confirmation page, CSRF and Origin checks), the
throughput chart and the report downloads. The browser tests are in test_ui.py."""

from __future__ import annotations

import html
import re
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

import midway
import midway.run.commits
from midway._model.identity import JobId
from midway._model.ledger import ATTENTION, ItemRecord
from midway._model.owner import Owner, hostname, process_start_ticks
from midway.stores import RunRecord, open_store
from midway.web.app import MAX_CHART_POINTS, _thin, create_app, default_author
from midway.web.security import Guard

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

BASE = "http://127.0.0.1:8737"
SAME_ORIGIN = {"Origin": BASE, "Sec-Fetch-Site": "same-origin"}


class Refused(Exception):
    pass


def failing_job(url: str, name: str = "imp", refuse: tuple[int, ...] = (3, 7, 11)) -> str:
    """A completed job over 20 items whose handler refused ``refuse`` (tolerated)."""

    def handle(item: int, ctx: midway.Context) -> None:
        if item in refuse:
            raise Refused(f"item {item} is not welcome")

    job = midway.Job(name, store=url, every=5, every_seconds=None, max_failures=10, quiet=True)
    result = job.run(range(20), handle)
    assert result.failed == len(refuse)
    return name


def doubtful_job(url: str, name: str = "mail", at: int = 4) -> str:
    """An at-most-once job over 10 items whose handler raised on item ``at``: in doubt."""

    def handle(item: int, ctx: midway.Context) -> None:
        if item == at:
            raise Refused("the mail server hung up")

    job = midway.Job(name, store=url, guarantee="at-most-once", quiet=True)
    with pytest.raises(Refused):
        job.run(range(10), handle)
    return name


def client(url: str) -> TestClient:
    return TestClient(create_app(url, Guard(token=None, port=8737)), base_url=BASE)


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert match, html
    return match.group(1)


def items(url: str, job: str) -> dict[Any, ItemRecord]:
    store = open_store(url)
    try:
        return {item.key: item for item in store.list_items(job, ATTENTION)}
    finally:
        store.close()


def notes(url: str, job: str) -> list[tuple[str, str]]:
    store = open_store(url)
    try:
        return [(note.author, note.text) for note in store.list_notes(job)]
    finally:
        store.close()


def counters(url: str, job: str) -> dict[str, int]:
    store = open_store(url)
    try:
        record = store.get_job(job)
        assert record is not None
        if record.checkpoint is not None:
            return record.checkpoint.counters.as_dict()
        summary: dict[str, Any] = record.summary or {}
        return dict(summary["counters"])
    finally:
        store.close()


def confirm(http: TestClient, path: str, **form: str) -> Any:
    """Open the confirmation page at ``path`` and press its button, as the browser does."""
    page = http.get(path)
    assert page.status_code == 200, page.text
    fields = re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', page.text)
    hidden = {name: html.unescape(value) for name, value in fields}
    return http.post(
        path.partition("?")[0],
        data={**hidden, **form},
        headers=SAME_ORIGIN,
        follow_redirects=False,
    )


# -- retry ----------------------------------------------------------------------------------


def test_retry_one_failed_item_then_the_rest(store_url: str) -> None:
    job = failing_job(store_url)
    with client(store_url) as http:
        page = http.get(f"/jobs/{job}").text
        for key in (3, 7, 11):
            assert f'href="/jobs/{job}/retry?key={key}" data-action="retry"' in page
        assert f'href="/jobs/{job}/retry?all=1" data-action="retry"' in page
        assert 'data-action="resolve-done"' not in page, "no in-doubt items: not offered"

        asked = http.get(f"/jobs/{job}/retry?key=7")
        assert f"Retry item 7 of job {job}?" in asked.text
        assert "item 7 is not welcome" in asked.text, "the item is shown before it is retried"
        assert "(as <code>midway retry</code> does)" in asked.text
        assert items(store_url, job)[7].status == "failed", "asking changes nothing"

        done = confirm(http, f"/jobs/{job}/retry?key=7")
        assert done.status_code == 303
        assert done.headers["location"] == f"/jobs/{job}?done=retry&job={job}&n=1"
        after = http.get(done.headers["location"]).text
        assert f"1 failed item of job {job} put back: the job&#39;s next run handles it." in after
        assert {k: i.status for k, i in items(store_url, job).items()} == {
            3: "failed",
            7: "retry",
            11: "failed",
        }

        everything = http.get(f"/jobs/{job}/retry?all=1")
        assert f"Retry all 2 failed items of job {job}?" in everything.text
        done = confirm(http, f"/jobs/{job}/retry?all=1")
        assert done.headers["location"].endswith("&n=2")
        assert {i.status for i in items(store_url, job).values()} == {"retry"}
        assert "the job has no failed items" in http.get(f"/jobs/{job}/retry?all=1").text

    # The next run handles the three items put back, and only them.
    handled: list[int] = []
    midway.Job(job, store=store_url, quiet=True).run(
        range(20), lambda item, ctx: handled.append(item)
    )
    assert sorted(handled) == [3, 7, 11]
    assert items(store_url, job) == {}
    assert counters(store_url, job)["succeeded"] == 20


def test_retry_an_item_that_is_no_longer_failed(store_url: str) -> None:
    job = failing_job(store_url)
    with client(store_url) as http:
        stale = http.get(f"/jobs/{job}/retry?key=7")  # the page is opened ...
        assert confirm(http, f"/jobs/{job}/retry?key=7").status_code == 303  # ... elsewhere too
        token = csrf_of(stale.text)
        again = http.post(
            f"/jobs/{job}/retry", data={"csrf": token, "key": "7"}, headers=SAME_ORIGIN
        )
        assert again.status_code == 409
        assert "no failed item of this job has key 7 now" in again.text
        missing = http.get(f"/jobs/{job}/retry?key=99")
        assert "Not now: no failed item of this job has key 99" in missing.text
        assert 'id="confirm"' not in missing.text


def test_string_keys_travel_as_json(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'keys.db'}"

    def handle(item: dict[str, str], ctx: midway.Context) -> None:
        if item["id"] in ("7", "a&b <c>"):
            raise Refused("no")

    rows = [{"id": str(i)} for i in range(10)] + [{"id": "a&b <c>"}]
    midway.Job("strings", store=url, max_failures=5, quiet=True).run(
        midway.sources.iterable(rows, key="id"), handle
    )
    with client(url) as http:
        page = http.get("/jobs/strings").text
        odd = quote('"a&b <c>"', safe="")
        assert f'href="/jobs/strings/retry?key={odd}"' in page.replace("&amp;", "&")
        assert confirm(http, f"/jobs/strings/retry?key={odd}").status_code == 303
        seven = quote('"7"', safe="")
        assert confirm(http, f"/jobs/strings/retry?key={seven}").status_code == 303
    assert {k: i.status for k, i in items(url, "strings").items()} == {
        "7": "retry",
        "a&b <c>": "retry",
    }


# -- resolve --------------------------------------------------------------------------------


def test_resolve_in_doubt_items_as_done_or_for_another_run(store_url: str) -> None:
    sent = doubtful_job(store_url, "mail", at=4)
    charged = doubtful_job(store_url, "charge", at=6)
    with client(store_url) as http:
        page = http.get(f"/jobs/{sent}").text
        assert f'href="/jobs/{sent}/resolve-done?key=4" data-action="resolve-done"' in page
        assert f'href="/jobs/{sent}/resolve-retry?key=4" data-action="resolve-retry"' in page
        asked = http.get(f"/jobs/{sent}/resolve-done?key=4").text
        assert f"Count item 4 of job {sent} as done?" in asked
        assert "the mail server hung up" in asked

        done = confirm(http, f"/jobs/{sent}/resolve-done?key=4")
        assert done.headers["location"] == f"/jobs/{sent}?done=resolve-done&job={sent}&n=1"
        notice = f"1 in-doubt item of job {sent} counted as done."
        assert notice in http.get(done.headers["location"]).text

        again = confirm(http, f"/jobs/{charged}/resolve-retry?all=1")
        assert again.headers["location"].endswith("&n=1")
    assert items(store_url, sent) == {}
    assert counters(store_url, sent) == {"succeeded": 5, "failed": 0, "skipped": 0, "in_doubt": 0}
    assert items(store_url, charged)[6].status == "retry"
    assert counters(store_url, charged) == {
        "succeeded": 6,
        "failed": 1,
        "skipped": 0,
        "in_doubt": 0,
    }

    # What each decision means to the next run: item 4 never again, item 6 once more.
    for job, first in ((sent, 5), (charged, 6)):
        handled: list[int] = []
        midway.Job(job, store=store_url, guarantee="at-most-once", quiet=True).run(
            range(10),
            lambda item, ctx: handled.append(item),  # noqa: B023 (run at once)
        )
        assert handled == list(range(first, 10)), job


# -- notes ----------------------------------------------------------------------------------


def test_add_a_note_through_its_confirmation(store_url: str) -> None:
    job = failing_job(store_url)
    text = "Paused for the CRM upgrade.\nResume after 18:00 <b>sharp</b>."
    with client(store_url) as http:
        page = http.get(f"/jobs/{job}").text
        assert f'action="/jobs/{job}/note"' in page
        assert f'placeholder="{default_author()}"' in page
        asked = http.get(f"/jobs/{job}/note", params={"text": text, "author": "Ann\x07\n"})
        assert f"Add this note to job {job}?" in asked.text
        assert "Resume after 18:00 &lt;b&gt;sharp&lt;/b&gt;." in asked.text
        assert "Ann via dashboard" in asked.text
        assert notes(store_url, job) == [], "asking writes nothing"

        done = confirm(http, f"/jobs/{job}/note?text={quote(text)}&author=Ann%07%0A")
        assert done.headers["location"] == f"/jobs/{job}?done=note&job={job}"
        confirm(http, f"/jobs/{job}/note?text=second+note")
        longest = "長" * 1000  # the longest note, in a script that takes 9 bytes a character
        assert confirm(http, f"/jobs/{job}/note?text={quote(longest)}").status_code == 303
        shown = http.get(f"/jobs/{job}").text
        assert "&lt;b&gt;sharp&lt;/b&gt;" in shown
        assert "<b>sharp" not in shown
        assert f"Note added to job {job}." in http.get(done.headers["location"]).text
    assert notes(store_url, job) == [
        ("Ann via dashboard", text),
        (default_author(), "second note"),
        (default_author(), "長" * 1000),
    ]
    assert default_author().endswith(" via dashboard")


def test_unclear_requests_do_nothing(store_url: str) -> None:
    job = failing_job(store_url)
    with client(store_url) as http:
        token = csrf_of(http.get(f"/jobs/{job}/retry?all=1").text)
        cases = {
            "retry without a key or all": (f"/jobs/{job}/retry", {}),
            "retry with a key and all": (f"/jobs/{job}/retry", {"key": "7", "all": "1"}),
            "an empty note": (f"/jobs/{job}/note", {"text": "  \n "}),
            "a long note": (f"/jobs/{job}/note", {"text": "x" * 1001}),
        }
        for why, (path, form) in cases.items():
            response = http.post(path, data={"csrf": token, **form}, headers=SAME_ORIGIN)
            assert response.status_code == 400, why
            assert "Nothing was done" in response.text, why
            assert http.get(path, params=form).status_code == 400, why
    assert {i.status for i in items(store_url, job).values()} == {"failed"}
    assert notes(store_url, job) == []


# -- who may --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "form"),
    [
        ("retry", {"key": "7"}),
        ("retry", {"all": "1"}),
        ("resolve-done", {"all": "1"}),
        ("resolve-retry", {"key": "4"}),
        ("note", {"text": "forged"}),
    ],
)
def test_cross_site_posts_to_the_new_actions_are_refused(
    tmp_path: Any, action: str, form: dict[str, str]
) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    job = failing_job(url, "imp") if action == "retry" else doubtful_job(url, "imp")
    before = (items(url, job), counters(url, job))
    with client(url) as http:
        token = csrf_of(http.get(f"/jobs/{job}/note?text=x").text)
        attempts = {
            "no CSRF token": ({}, SAME_ORIGIN),
            "another session's token": ({"csrf": "0" * 64}, SAME_ORIGIN),
            "Origin of another site": ({"csrf": token}, {"Origin": "http://evil.example"}),
            "an opaque Origin": ({"csrf": token}, {"Origin": "null"}),
            "Sec-Fetch-Site: cross-site": ({"csrf": token}, {"Sec-Fetch-Site": "cross-site"}),
        }
        for why, (extra, headers) in attempts.items():
            response = http.post(f"/jobs/{job}/{action}", data={**form, **extra}, headers=headers)
            assert response.status_code == 403, why
            assert "Nothing was done" in response.text, why
        as_json = http.post(f"/jobs/{job}/{action}", json={**form, "csrf": token})
        assert as_json.status_code == 403, "only a form is accepted"
    with client(url) as stranger:  # the token copied into another session is worth nothing
        assert (
            stranger.post(f"/jobs/{job}/{action}", data={**form, "csrf": token}).status_code == 403
        )
    assert (items(url, job), counters(url, job)) == before
    assert notes(url, job) == []


@pytest.fixture
def held(store_url: str) -> Iterator[str]:
    """Job ``imp`` (with failed items) held by a live process that is not this one."""
    job = failing_job(store_url)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    store = open_store(store_url)
    try:
        owner = Owner(hostname(), child.pid, process_start_ticks(child.pid))
        lease = store.acquire_lease(JobId(job), owner, 3600.0)
        store.begin_run(
            lease, RunRecord("r-held", job, "running", hostname(), child.pid, time.time())
        )
        yield job
    finally:
        store.close()
        child.kill()
        child.wait()


def test_ledger_actions_wait_for_the_runner_but_notes_do_not(store_url: str, held: str) -> None:
    with client(store_url) as http:
        page = http.get(f"/jobs/{held}").text
        assert f'href="/jobs/{held}/retry?key=7"' not in page, "no retry while a runner works"
        assert "Retry failed items…</span>" in page, "greyed out, saying why"
        assert "is working on this job now" in http.get(f"/jobs/{held}/retry?key=7").text
        token = csrf_of(http.get(f"/jobs/{held}/note?text=x").text)
        response = http.post(
            f"/jobs/{held}/retry", data={"csrf": token, "key": "7"}, headers=SAME_ORIGIN
        )
        assert response.status_code == 409
        assert "not now: a runner" in response.text
        assert confirm(http, f"/jobs/{held}/note?text=watching+it").status_code == 303
    assert items(store_url, held)[7].status == "failed"
    assert [text for _, text in notes(store_url, held)] == ["watching it"]


# -- the chart and the report ---------------------------------------------------------------


def test_throughput_chart_from_the_history(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    midway.Job("short", store=store_url, every=5, quiet=True).run(range(20), lambda i, c: None)
    monkeypatch.setattr(midway.run.commits, "HISTORY_SECONDS", 0.0)  # a point per checkpoint

    def slow(item: int, ctx: midway.Context) -> None:
        time.sleep(0.002)

    midway.Job("long", store=store_url, every=5, quiet=True).run(range(40), slow)
    with client(store_url) as http:
        short = http.get("/jobs/short").text  # too short to be sampled: its run's start and end
        assert "Not enough checkpoints yet to draw it" not in short
        assert http.get("/api/jobs/short/chart").json()["svg"].count("<polyline") == 1
        long = http.get("/jobs/long").text
        assert '<div class="chart-box" id="chart" data-src="/api/jobs/long/chart"' in long
        svg = http.get("/api/jobs/long/chart").json()["svg"]
        assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg"')
        assert svg in long, "the page draws the same chart, inline"
        assert "<polyline" in svg
        assert http.get("/api/jobs/nope/chart").status_code == 404


def test_a_long_history_is_thinned() -> None:
    points = [{"at": float(i), "processed": i * 10, "rate": float(i % 7)} for i in range(1000)]
    thinned = _thin(points, MAX_CHART_POINTS)
    assert len(thinned) <= MAX_CHART_POINTS
    assert thinned[-1]["at"] == 999.0
    assert thinned[0]["rate"] == pytest.approx(sum(i % 7 for i in range(4)) / 4)
    assert _thin(points[:5], MAX_CHART_POINTS) == points[:5]


def test_report_downloads(store_url: str) -> None:
    job = failing_job(store_url)
    midway.Job("keyed", store=store_url, params={"f": 1}, quiet=True).run(
        range(3), lambda i, c: None
    )
    with client(store_url) as http:
        page = http.get(f"/jobs/{job}").text
        assert f'href="/jobs/{job}/report.html" download' in page
        html = http.get(f"/jobs/{job}/report.html")
        md = http.get(f"/jobs/{job}/report.md")
        keyed = http.get("/jobs/keyed/report.md")
        assert http.get(f"/jobs/{job}/report.pdf").status_code == 404
        assert http.get("/jobs/nope/report.md").status_code == 404
    assert html.status_code == 200
    assert html.headers["content-type"] == "text/html; charset=utf-8"
    assert html.headers["content-disposition"] == f'attachment; filename="midway-report-{job}.html"'
    assert "<h1>Handoff: job <code>imp</code></h1>" in html.text
    assert "Refused" in html.text, "the common errors are in it"
    assert md.headers["content-type"] == "text/markdown; charset=utf-8"
    assert md.headers["content-disposition"] == f'attachment; filename="midway-report-{job}.md"'
    assert md.text.startswith(f"# Handoff: job `{job}`")
    disposition = keyed.headers["content-disposition"]
    assert re.fullmatch(r'attachment; filename="midway-report-keyed_[0-9a-f]{8}\.md"', disposition)


def test_commands_in_the_consequences_show_as_code() -> None:
    from midway.web.formatting import code_spans

    assert code_spans("as `midway retry <job>` does") == (
        "as <code>midway retry &lt;job&gt;</code> does"
    )
    assert code_spans("<b>no</b> `x`") == "&lt;b&gt;no&lt;/b&gt; <code>x</code>"
