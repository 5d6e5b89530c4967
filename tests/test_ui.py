"""The dashboard in a real browser (Debian's Chromium driven by Playwright), over a real
``midway ui`` process and real job processes: one that works slowly (watched, then reset),
one that leaves failed items (retried through the page, then run again), and an
at-most-once one that leaves an item in doubt (resolved through the page).

Without /usr/bin/chromium (``make test`` installs it when it runs as root with apt-get) or
the playwright package, these tests skip, except in CI (``CI`` set), where they fail.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from midway._model.ledger import ATTENTION, ItemRecord
from midway.stores import JobRecord, open_store
from support.crashjob import CrashJob, Spec, reap_runners
from support.itemjob import ItemJob, ItemSpec
from support.uiserver import serve

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
TIMEOUT_MS = 20_000


def _cannot_run(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"the browser tests must run in CI, but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        _cannot_run(
            f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium; "
            "`make test` does it when run as root)"
        )
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        _cannot_run("the playwright package is missing: pip install -e '.[dev]'")
    expect.set_options(timeout=TIMEOUT_MS)  # a busy machine: waits are generous, not sleeps
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser profile (no cookies) per test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture(autouse=True)
def _no_stray_runners() -> Iterator[None]:
    yield
    reap_runners()


def processed_in(text: str) -> int:
    """The processed count of a progress cell: ``1,234 / 10,000 (12%)`` -> 1234."""
    match = re.match(r"\s*([\d,]+)", text)
    assert match, text
    return int(match.group(1).replace(",", ""))


def job_exists(url: str, job: str) -> bool:
    store = open_store(url)
    try:
        return store.get_job(job) is not None
    finally:
        store.close()


def ledger(url: str, job: str) -> dict[Any, ItemRecord]:
    """The job's items that a person may act on, by key, as the store has them."""
    store = open_store(url)
    try:
        return {item.key: item for item in store.list_items(job, ATTENTION)}
    finally:
        store.close()


def record(url: str, job: str) -> JobRecord:
    store = open_store(url)
    try:
        found = store.get_job(job)
        assert found is not None, job
        return found
    finally:
        store.close()


def counters(url: str, job: str) -> dict[str, Any]:
    """The job's counters: the checkpoint's, or its last summary's once it completed."""
    found = record(url, job)
    if found.checkpoint is not None:
        return found.checkpoint.counters.as_dict()
    summary = found.summary or {}
    value: dict[str, Any] = dict(summary.get("counters") or {})
    return value


@pytest.fixture
def item_jobs() -> Iterator[list[ItemJob]]:
    """The ItemJobs a test makes; whatever they left running is killed afterwards."""
    made: list[ItemJob] = []
    yield made
    for job in made:
        job.stop_all()


def test_watch_a_running_job_then_reset_it_after_its_crash(
    store_url: str, page: Page, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    # A job that checkpoints every item and sleeps 25 ms on each: two minutes for 5,000
    # items, far longer than the test needs.
    job = CrashJob(tmp_path / "job", Spec(store=store_url, n=5000, every=1, pause=0.025))
    runner = job.start()
    runner.wait_for_keys(5)
    with serve(store_url) as served:
        page.goto(served.sign_in())
        row = page.locator(f'tr[data-job="{job.key}"]')
        expect(row.locator('[data-field="status"]')).to_have_text("running")
        expect(row.locator('[data-field="owner"]')).to_have_text(re.compile(rf":{runner.pid}$"))
        progress = row.locator('[data-field="progress"]')
        expect(progress).to_contain_text("/ 5,000")
        first = processed_in(progress.inner_text())
        # The page polls /api/jobs: the number moves without a reload.
        expect(progress).not_to_have_text(progress.inner_text())
        second = processed_in(progress.inner_text())
        assert second > first, (first, second)
        expect(page.locator("#live")).to_contain_text("live")
        expect(row.locator('[data-field="rate"]')).to_contain_text("/s")
        assert row.locator('[data-field="eta"]').inner_text().strip(), "a running job has an ETA"
        bar = row.locator("progress")
        assert int(bar.get_attribute("max") or 0) == 5000
        page.screenshot(path=str(tmp_path / "jobs-running.png"), full_page=True)

        row.locator("a").click()
        expect(page.locator("h1")).to_contain_text(job.key)
        expect(page.locator('#job [data-field="status"]').first).to_have_text("running")
        succeeded = page.locator('[data-field="succeeded"]')
        seen = succeeded.inner_text()
        expect(succeeded).not_to_have_text(seen)  # the job page polls too
        expect(page.locator(".lease")).to_contain_text(str(runner.pid))
        expect(page.locator(".actions")).to_contain_text("is working on this job now")
        assert page.locator('a[data-action="reset"]').count() == 0

        # The runner dies without a word; the page notices and offers the reset.
        runner.kill("by the test")
        runner.wait()
        expect(page.locator('#job [data-field="status"]').first).to_have_text("crashed")
        reset = page.locator('a[data-action="reset"]')
        expect(reset).to_be_visible()
        expect(page.locator('[data-field="position"]')).not_to_have_text("null")
        expect(page.locator(".runs tbody tr").first.locator(".status")).to_have_text("crashed")
        page.screenshot(path=str(tmp_path / "job-crashed.png"), full_page=True)

        reset.click()
        expect(page.locator("h1")).to_have_text(f"Forget job {job.key}?")
        page.locator("a.cancel").click()  # changing one's mind changes nothing
        expect(page.locator("h1")).to_contain_text(job.key)
        assert job_exists(store_url, job.key)

        page.locator('a[data-action="reset"]').click()
        page.screenshot(path=str(tmp_path / "reset-confirm.png"), full_page=True)
        page.locator("#confirm").click()
        expect(page.locator(".notice")).to_have_text(
            f"Job {job.key} reset: its next run starts from the first item."
        )
        assert page.url == f"{served.url}?done=reset&job={job.key}"
        expect(page.locator(f'tr[data-job="{job.key}"]')).to_have_count(0)
        assert not job_exists(store_url, job.key)
        page.screenshot(path=str(tmp_path / "jobs-after-reset.png"), full_page=True)
    for name in ("jobs-running", "job-crashed", "reset-confirm", "jobs-after-reset"):
        assert (tmp_path / f"{name}.png").stat().st_size > 1000, name


def test_sign_in_with_the_token_link(tmp_path: Path, page: Page) -> None:
    from playwright.sync_api import expect

    url = f"sqlite:///{tmp_path / 'state.db'}"
    job = CrashJob(tmp_path / "job", Spec(store=url, n=30, every=5, pause=0.0))
    assert job.run().returncode == 0
    with serve(url, "--token", "s3cret-for-the-test") as served:
        response = page.goto(served.url)
        assert response is not None
        assert response.status == 401
        assert "needs its token" in page.content()
        page.goto(served.url + "?token=s3cret-for-the-test")
        assert page.url == served.url, "the token does not stay in the address bar"
        row = page.locator(f'tr[data-job="{job.key}"]')
        expect(row.locator('[data-field="status"]')).to_have_text("completed")
        expect(page.locator("#live")).to_contain_text("live")  # polling passes with the cookie
        cookies: list[Any] = page.context.cookies()
        assert all("s3cret" not in c["value"] for c in cookies)


def test_the_link_printed_at_start_signs_in(tmp_path: Path, page: Page) -> None:
    """No --token given: `midway ui` makes one and prints the link; opening it is enough."""
    from playwright.sync_api import expect

    url = f"sqlite:///{tmp_path / 'state.db'}"
    job = CrashJob(tmp_path / "job", Spec(store=url, n=30, every=5, pause=0.0))
    assert job.run().returncode == 0
    with serve(url) as served:
        match = re.search(r"open (http://\S+) once to sign in", served.banner)
        assert match, served.banner
        link = match.group(1)
        response = page.goto(served.url)
        assert response is not None
        assert response.status == 401, "without the link, no way in"
        page.goto(link)
        assert page.url == served.url, "the token does not stay in the address bar"
        row = page.locator(f'tr[data-job="{job.key}"]')
        expect(row.locator('[data-field="status"]')).to_have_text("completed")
        expect(page.locator("#live")).to_contain_text("live")
        assert served.token is not None
        assert all(served.token not in c["value"] for c in page.context.cookies())


def test_retry_a_failed_item_and_add_a_note_through_the_page(
    tmp_path: Path, page: Page, item_jobs: list[ItemJob]
) -> None:
    from playwright.sync_api import expect

    url = f"sqlite:///{tmp_path / 'state.db'}"
    # Items 7 and 31 are refused (and tolerated). The run waits before item 1 until the
    # page is open, and before item 50 until the page has seen it move.
    spec = ItemSpec(store=url, n=60, refuse=[7, 31], pause=0.03, max_failures=5, hold=[1, 50])
    job = ItemJob(tmp_path / "job", spec)
    item_jobs.append(job)
    job.hold(1)
    job.hold(50)
    first = job.start()
    with serve(url) as served:
        job.wait_for(0, 0)
        page.goto(served.sign_in(f"jobs/{job.key}"))
        status = page.locator('#job [data-field="status"]').first
        succeeded = page.locator('[data-field="succeeded"]')
        expect(status).to_have_text("running")
        expect(page.locator(".actions")).to_contain_text("is working on this job now")
        expect(page.locator("#chart")).to_contain_text("Not enough checkpoints yet")
        page.evaluate("window.stillTheSamePage = true")
        seen = succeeded.inner_text()
        job.release(1)
        expect(succeeded).not_to_have_text(seen)  # progress moves while the page is open
        expect(page.locator('[data-field="failed"]')).to_have_text("1")  # item 7
        # The chart follows the checkpoint history, without a reload.
        expect(page.locator("#chart svg polyline")).to_have_count(1)
        assert page.evaluate("window.stillTheSamePage") is True
        expect(status).to_have_text("running")
        page.screenshot(path=str(tmp_path / "failing-job-running.png"), full_page=True)

        # Someone starts a note while it runs; the run ends meanwhile. The page says so
        # instead of reloading (which would throw the note away).
        text = "Items 7 and 31 fail: the CRM refuses their addresses. Fixing 7 first."
        page.locator("#note-text").fill(text)
        page.locator("#note-author").fill("Ann")
        job.release(50)
        assert first.wait(60) == 0, first.stderr.read().decode() if first.stderr else ""
        expect(status).to_have_text("completed_with_failures")
        expect(page.locator("#stale")).to_be_visible()
        assert page.evaluate("window.stillTheSamePage") is True
        expect(page.locator("#note-text")).to_have_value(text)
        page.locator('button[data-action="note"]').click()
        expect(page.locator("h1")).to_have_text(f"Add this note to job {job.key}?")
        expect(page.locator(".note-preview")).to_contain_text("Ann via dashboard")
        page.screenshot(path=str(tmp_path / "note-confirm.png"), full_page=True)
        page.locator("#confirm").click()
        expect(page.locator(".notice")).to_have_text(f"Note added to job {job.key}.")
        note = page.locator("ul.notes li")
        expect(note).to_have_count(1)
        expect(note).to_contain_text("Ann via dashboard")
        expect(note).to_contain_text(text)

        # The job page, fresh after the note, offers the retries of the two failed items.
        expect(status).to_have_text("completed_with_failures")
        row = page.locator('.items tr[data-key="7"]')
        expect(row).to_contain_text("ValueError: item 7 was refused on purpose")
        expect(page.locator("#chart svg")).to_be_visible()
        row.locator('a[data-action="retry"]').click()
        expect(page.locator("h1")).to_have_text(f"Retry item 7 of job {job.key}?")
        expect(page.locator(".confirm .items tbody tr")).to_have_count(1)
        page.screenshot(path=str(tmp_path / "retry-confirm.png"), full_page=True)
        page.locator("#confirm").click()
        expect(page.locator(".notice")).to_have_text(
            f"1 failed item of job {job.key} put back: the job's next run handles it."
        )
        items = ledger(url, job.key)
        assert items[7].status == "retry", items
        assert items[31].status == "failed", "only the item asked for"
        expect(row.locator(".status")).to_have_text("retry")

        # The handoff report downloads from the job page, as a file.
        href = page.locator('a[data-report="html"]').get_attribute("href")
        assert href == f"/jobs/{job.key}/report.html"
        download = page.request.get(served.url.rstrip("/") + href)
        assert download.headers["content-type"].startswith("text/html")
        assert download.headers["content-disposition"].startswith("attachment;")
        assert "Fixing 7 first." in download.text()

        # The fixed job runs again: it handles item 7, and only item 7. (Off the job page
        # meanwhile: its own reload when the status changes would race a reload of ours.)
        page.goto("about:blank")
        again = job.run(refuse=[31])
        assert again.returncode == 0, again.stderr
        assert job.handled(1) == [7]
        assert set(ledger(url, job.key)) == {31}, "item 7 is done: no record left"
        assert counters(url, job.key) == {"succeeded": 59, "failed": 1, "skipped": 0, "in_doubt": 0}
        page.goto(f"{served.url}jobs/{job.key}")
        expect(page.locator('[data-field="succeeded"]')).to_have_text("59")
        expect(page.locator('.items tr[data-key="7"]')).to_have_count(0)
        expect(page.locator('.items tr[data-key="31"] a[data-action="retry"]')).to_be_visible()
        expect(page.locator(".runs tbody tr")).to_have_count(2)
        page.screenshot(path=str(tmp_path / "after-retry-run.png"), full_page=True)
    for name in ("failing-job-running", "note-confirm", "retry-confirm", "after-retry-run"):
        assert (tmp_path / f"{name}.png").stat().st_size > 1000, name


def test_resolve_an_in_doubt_item_through_the_page(
    tmp_path: Path, page: Page, item_jobs: list[ItemJob]
) -> None:
    from playwright.sync_api import expect

    url = f"file://{tmp_path / 'store'}"
    # At-most-once: item 12's handler raised, so whether it took effect is unknown.
    job = ItemJob(
        tmp_path / "job", ItemSpec(store=url, n=20, refuse=[12], guarantee="at-most-once")
    )
    item_jobs.append(job)
    stopped = job.run()
    assert stopped.returncode == 1, stopped.stderr
    assert "item 12 was refused on purpose" in stopped.stderr
    assert ledger(url, job.key)[12].status == "in_doubt"
    with serve(url) as served:
        page.goto(served.sign_in(f"jobs/{job.key}"))
        expect(page.locator('[data-field="in_doubt"]')).to_have_text("1")
        row = page.locator('.items tr[data-key="12"]')
        expect(row.locator(".status")).to_have_text("in_doubt")
        expect(row.locator('a[data-action="resolve-retry"]')).to_be_visible()
        page.screenshot(path=str(tmp_path / "in-doubt.png"), full_page=True)

        row.locator('a[data-action="resolve-done"]').click()
        expect(page.locator("h1")).to_have_text(f"Count item 12 of job {job.key} as done?")
        page.locator("a.cancel").click()  # changing one's mind changes nothing
        assert ledger(url, job.key)[12].status == "in_doubt"

        row.locator('a[data-action="resolve-done"]').click()
        page.screenshot(path=str(tmp_path / "resolve-confirm.png"), full_page=True)
        page.locator("#confirm").click()
        expect(page.locator(".notice")).to_have_text(
            f"1 in-doubt item of job {job.key} counted as done."
        )
        assert 12 not in ledger(url, job.key)
        assert counters(url, job.key) == {"succeeded": 13, "failed": 0, "skipped": 0, "in_doubt": 0}
        expect(page.locator('[data-field="in_doubt"]')).to_have_text("0")
        expect(page.locator('[data-field="succeeded"]')).to_have_text("13")
        expect(page.locator('.items tr[data-key="12"]')).to_have_count(0)

        # The next run goes on after item 12 and never runs its handler again.
        finished = job.run()
        assert finished.returncode == 0, finished.stderr
        assert job.handled(1) == list(range(13, 20))
        # The page reloads itself when the status changes.
        expect(page.locator('#job [data-field="status"]').first).to_have_text("completed")
        expect(page.locator('[data-field="succeeded"]')).to_have_text("20")
    for name in ("in-doubt", "resolve-confirm"):
        assert (tmp_path / f"{name}.png").stat().st_size > 1000, name
