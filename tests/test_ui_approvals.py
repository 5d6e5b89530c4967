"""The invoice example's round trip on the dashboard, in Chromium: the invoices above the
limit wait; one is approved and one rejected from its row, the rest with the button for
all, each behind its confirmation page; the next run books the approved ones only."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from support.uiserver import serve
from test_ui import browser, page  # noqa: F401 (the Chromium fixtures)

if TYPE_CHECKING:
    from playwright.sync_api import Page

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "validate_invoices.py"
JOB = "validate-invoices"
ABOVE_LIMIT = [f"INV-{n:04d}" for n in range(37, 501, 37)]


def run_example(folder: Path, store: str, *more: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLE), "invoices.csv", "--store", store, *more],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_approve_and_reject_invoices_on_the_dashboard(
    tmp_path: Path,
    page: Page,  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    store = f"sqlite:///{tmp_path / 'state.db'}"
    first = run_example(tmp_path, store, "--make-invoices", "500")
    assert first.returncode == 4, first.stderr
    with serve(store) as served:
        page.goto(served.sign_in(f"jobs/{JOB}"))
        expect(page.locator('[data-field="waiting"]')).to_have_text(str(len(ABOVE_LIMIT)))
        row = page.locator(".items tr", has_text="INV-0037")
        expect(row.locator(".status")).to_have_text("waiting")
        expect(row.locator(".error")).to_contain_text("book INV-0037 for 14,847.50 USD")

        row.locator('a[data-action="approve"]').click()
        expect(page.locator("h1")).to_have_text(f'Approve item "INV-0037" of job {JOB}?')
        page.screenshot(path=str(tmp_path / "approve-confirm.png"), full_page=True)
        page.locator("#confirm").click()
        expect(page.locator(".notice")).to_have_text(
            f"1 item of job {JOB} approved: the job's next run hands it back."
        )

        other = page.locator(".items tr", has_text="INV-0074")
        other.locator('a[data-action="reject"]').click()
        expect(page.locator("h1")).to_have_text(f'Reject item "INV-0074" of job {JOB}?')
        page.locator("#confirm").click()
        expect(page.locator(".notice")).to_contain_text("1 item of job validate-invoices rejected")

        page.locator('ul.actions a[data-action="approve"]').click()
        rest = len(ABOVE_LIMIT) - 2
        expect(page.locator("h1")).to_have_text(f"Approve all {rest} waiting items of job {JOB}?")
        page.locator("#confirm").click()
        expect(page.locator(".notice")).to_contain_text(f"{rest} items of job {JOB} approved")
        expect(page.locator(".notes")).to_contain_text("via dashboard")
        page.screenshot(path=str(tmp_path / "decided.png"), full_page=True)

    second = run_example(tmp_path, store)
    assert second.returncode == 0, second.stderr
    booked = [
        json.loads(line)["id"] for line in (tmp_path / "booked.jsonl").read_text().splitlines()
    ]
    assert sorted(set(booked) & set(ABOVE_LIMIT)) == [k for k in ABOVE_LIMIT if k != "INV-0074"]
    assert len(booked) == len(set(booked))
    for name in ("approve-confirm", "decided"):
        assert (tmp_path / f"{name}.png").stat().st_size > 1000, name
