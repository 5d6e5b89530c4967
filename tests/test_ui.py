"""The dashboard in a real browser (Debian's Chromium driven by Playwright), over a real
``midway ui`` process and a real job process that works slowly.

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

from midway.stores import open_store
from support.crashjob import CrashJob, Spec, reap_runners
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
        page.goto(served.url)
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
