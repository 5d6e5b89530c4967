"""The dashboard over plain HTTP: pages and JSON on every store kind, who gets in (token,
loopback), which POSTs count (CSRF, Origin, Sec-Fetch-Site), and the ``midway ui`` command's
refusals. The browser tests are in test_ui.py."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

import midway
from midway._model.identity import JobId
from midway._model.owner import Owner, hostname, process_start_ticks
from midway.cli.app import cli
from midway.stores import RunRecord, open_store
from midway.web import formatting
from midway.web.app import create_app
from midway.web.security import Guard, is_loopback, parse_host
from support.uiserver import csrf_of, job_exists, serve

with warnings.catch_warnings():
    # Starlette 1.x would rather drive its test client with httpx2; httpx does the same here.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

BASE = "http://127.0.0.1:8737"
TOKEN = "correct-horse-battery-staple"


class Boom(Exception):
    pass


def populate(url: str) -> None:
    """A completed job with params, a failed one (at item 37 of 100), a stopped one."""
    midway.Job("done", store=url, params={"file": "a.csv"}, quiet=True).run(
        range(40), lambda item, ctx: ctx.state.__setitem__("last", item), state={}
    )

    def explode(item: int, ctx: midway.Context) -> None:
        if item == 37:
            raise Boom("the CRM said no")

    broken = midway.Job("broken", store=url, every=10, every_seconds=None, quiet=True)
    with pytest.raises(Boom):
        broken.run(range(100), explode, state={"batch": "b-7"})

    halted = midway.Job("halted", store=url, every=10, every_seconds=None, quiet=True)

    def interrupted() -> None:
        for item in halted.loop(range(100)):
            if item == 12:
                raise Boom("interrupted")

    with pytest.raises(Boom):
        interrupted()


def client(url: str, token: str | None = None) -> TestClient:
    return TestClient(create_app(url, Guard(token=token, port=8737)), base_url=BASE)


@pytest.fixture
def live_runner(store_url: str) -> Iterator[str]:
    """Job ``busy`` held by a live process that is not this one (a runner at work)."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    store = open_store(store_url)
    try:
        owner = Owner(hostname(), child.pid, process_start_ticks(child.pid))
        lease = store.acquire_lease(JobId("busy"), owner, 3600.0)
        run = RunRecord("r-busy", "busy", "running", hostname(), child.pid, time.time())
        store.begin_run(lease, run)
        yield "busy"
    finally:
        store.close()
        child.kill()
        child.wait()


# -- pages and JSON -----------------------------------------------------------------------


def test_jobs_page_and_api_show_what_status_json_prints(store_url: str) -> None:
    populate(store_url)
    with client(store_url) as http:
        rows = http.get("/api/jobs").json()
        page = http.get("/")
    cli_rows = json.loads(
        CliRunner().invoke(cli, ["status", "--json", "--store", store_url]).stdout
    )
    aging = {"checkpoint_age_seconds"}
    assert [{k: v for k, v in r.items() if k not in aging} for r in rows] == [
        {k: v for k, v in r.items() if k not in aging} for r in cli_rows
    ]
    by_job = {row["name"]: row for row in rows}
    assert by_job["broken"]["processed"] == 37
    assert by_job["broken"]["total"] == 100

    assert page.status_code == 200
    html = page.text
    assert 'data-poll="/api/jobs"' in html
    for name in ("done@", "broken", "halted", "completed", "failed", "stopped"):
        assert name in html, name
    assert "37 / 100 (37%)" in html
    assert '<progress data-field="bar" max="100" value="37">' in html
    assert '<progress data-field="bar" max="40" value="40">' in html, "a completed job is full"


def test_job_page_shows_counters_position_state_lease_and_runs(store_url: str) -> None:
    populate(store_url)
    with client(store_url) as http:
        page = http.get("/jobs/broken")
        detail = http.get("/api/jobs/broken").json()
        summary = http.get("/api/jobs/broken/summary").json()
        by_name = http.get("/jobs/done")
    assert page.status_code == 200
    html = page.text
    assert 'data-poll="/api/jobs/broken/summary"' in html
    assert 'data-field="succeeded">37<' in html
    assert 'data-field="position">37<' in html
    assert "&#34;batch&#34;: &#34;b-7&#34;" in html, "the state, escaped"
    assert "Boom: the CRM said no" in html, "the failed run's message"
    assert "fencing token" in html
    assert 'data-action="reset"' in html
    assert detail["job"] == "broken"
    assert {"items", "runs", "lease", "fingerprint"} <= set(detail)
    assert summary["processed"] == 37
    assert "items" not in summary
    assert by_name.status_code == 200, "a job is found by its name when only one uses it"
    assert "done@" in by_name.text


def test_unknown_job_and_missing_store(store_url: str) -> None:
    with client(store_url) as http:
        empty = http.get("/")
        assert empty.status_code == 200
        assert "There is no store at" in empty.text
        assert http.get("/api/jobs").json() == []
        assert not Path(store_url.split("://", 1)[1]).exists(), "reading created no store"
        populate(store_url)
        page = http.get("/jobs/nope")
        assert page.status_code == 404
        assert "no job &#39;nope&#39;" in page.text
        api = http.get("/api/jobs/nope")
        assert api.status_code == 404
        assert "no job 'nope'" in api.json()["error"]
        assert http.get("/jobs/broken/launch-missiles").status_code == 404


def test_ledger_items_are_listed_and_escaped(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    url = f"sqlite:///{path}"
    populate(url)
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(
            "INSERT INTO midway_items (job, key, status, error, attempts, updated_at) "
            "VALUES ('broken', ?, 'failed', ?, 3, ?)",
            (json.dumps("c-17"), "ValueError: <script>alert(1)</script>", time.time()),
        )
    conn.close()
    with client(url) as http:
        html = http.get("/jobs/broken").text
    assert '<code>"c-17"</code>' in html
    assert "ValueError: &lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert" not in html


class RowAttributes(HTMLParser):
    """The attributes of each ``<tr>`` of a page, as a browser reads them."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self.rows.append(dict(attrs))


def test_an_item_key_cannot_add_attributes_to_its_row(tmp_path: Path) -> None:
    """Keys come from the input (a CSV column): one made of quotes and an event handler
    stays the value of the row's ``data-key``, which holds the key as JSON."""
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    hostile = '" onmouseover=alert(1) data-action="reset'

    def fail(item: dict[str, str], ctx: midway.Context) -> None:
        raise Boom("no")

    rows = [{"id": hostile}, {"id": "plain"}]
    job = midway.Job("keys", store=url, quiet=True, max_failures=10)
    job.run(midway.sources.sequence(rows, key="id"), fail)
    with client(url) as http:
        html = http.get("/jobs/keys").text
    parser = RowAttributes()
    parser.feed(html)
    keyed = [row for row in parser.rows if "data-key" in row]
    assert sorted(str(row["data-key"]) for row in keyed) == sorted(
        [json.dumps(hostile), json.dumps("plain")]
    )
    assert all(set(row) == {"data-key"} for row in keyed), keyed


def test_pages_forbid_inline_scripts_and_framing(store_url: str) -> None:
    populate(store_url)
    with client(store_url) as http:
        response = http.get("/")
        static = http.get("/static/dashboard.js")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["x-frame-options"] == "DENY"
    assert static.status_code == 200
    assert "fetch(" in static.text


# -- who gets in --------------------------------------------------------------------------


def test_a_token_is_needed_on_every_request(store_url: str) -> None:
    populate(store_url)
    with client(store_url, token=TOKEN) as http:
        for path in ("/", "/jobs/broken", "/api/jobs", "/static/dashboard.js"):
            response = http.get(path)
            assert response.status_code == 401, path
            assert "needs its token" in response.text
        assert http.get("/api/jobs", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert http.get("/?token=wrong").status_code == 401
        assert http.get("/api/jobs", headers={"Authorization": f"Bearer {TOKEN}"}).json()

        login = http.get(f"/jobs/broken?token={TOKEN}", follow_redirects=False)
        assert login.status_code == 303
        assert login.headers["location"] == "/jobs/broken", "the token leaves the address"
        cookie = login.headers["set-cookie"]
        assert "HttpOnly" in cookie
        assert "samesite=strict" in cookie.lower()
        assert TOKEN not in cookie, "the cookie holds a digest, not the token"
        elsewhere = http.get(f"{BASE}//evil.example/?token={TOKEN}", follow_redirects=False)
        assert elsewhere.headers["location"] == "/evil.example/", "no redirect off the site"
        # The client keeps the cookie: from now on, no token needed.
        assert http.get("/api/jobs").status_code == 200
        assert http.get("/jobs/broken").status_code == 200


def test_without_a_token_only_loopback_host_names_are_answered(store_url: str) -> None:
    """A site that points its own name at 127.0.0.1 (DNS rebinding) gets nothing."""
    populate(store_url)
    with client(store_url) as http:
        assert http.get("/api/jobs").status_code == 200
        for host in ("localhost:8737", "[::1]:8737", "127.0.0.1"):
            assert http.get("/api/jobs", headers={"Host": host}).status_code == 200, host
        rebound = http.get("/api/jobs", headers={"Host": "evil.example:8737"})
        assert rebound.status_code == 403
        assert "answers only to" in rebound.json()["error"]
        for host in ("127.0.0.1:8737@evil.example", "localhost:8737@evil.example", "127.0.0.1:80"):
            assert http.get("/api/jobs", headers={"Host": host}).status_code == 403, host


def test_host_helpers() -> None:
    assert is_loopback("127.0.0.1")
    assert is_loopback("127.8.9.1")
    assert is_loopback("::1")
    assert is_loopback("[::1]")
    assert is_loopback("localhost")
    assert not is_loopback("0.0.0.0")
    assert not is_loopback("::")
    assert not is_loopback("192.168.1.5")
    assert not is_loopback("example.com")
    assert parse_host("[::1]:8737") == ("::1", 8737)
    assert parse_host("localhost:80") == ("localhost", 80)
    assert parse_host("127.0.0.1") == ("127.0.0.1", None)
    assert parse_host("127.0.0.1:8737@evil.example") is None
    assert parse_host("127.0.0.1:") is None


# -- which POSTs count --------------------------------------------------------------------


def test_cross_site_posts_are_refused(store_url: str) -> None:
    populate(store_url)
    with client(store_url) as http:
        confirm = http.get("/jobs/halted/reset")
        assert confirm.status_code == 200
        assert "Forget job halted?" in confirm.text
        token = csrf_of(confirm.text)
        attempts = {
            "no CSRF token": ({}, {}),
            "another session's token": ({"csrf": "0" * 64}, {}),
            "Origin of another site": ({"csrf": token}, {"Origin": "http://evil.example"}),
            "an opaque Origin": ({"csrf": token}, {"Origin": "null"}),
            "Sec-Fetch-Site: cross-site": ({"csrf": token}, {"Sec-Fetch-Site": "cross-site"}),
            "Sec-Fetch-Site: same-site": ({"csrf": token}, {"Sec-Fetch-Site": "same-site"}),
        }
        for why, (form, headers) in attempts.items():
            response = http.post("/jobs/halted/reset", data=form, headers=headers)
            assert response.status_code == 403, why
            assert "Nothing was done" in response.text, why
            assert job_exists(store_url, "halted"), why
        as_json = http.post("/jobs/halted/reset", json={"csrf": token})
        assert as_json.status_code == 403, "only a form is accepted"
        assert http.get("/jobs/halted/reset").status_code == 200, "GET only asks"
        assert job_exists(store_url, "halted")

    # A client without the session cookie: the token it copied is worth nothing.
    with client(store_url) as stranger:
        response = stranger.post("/jobs/halted/reset", data={"csrf": token})
        assert response.status_code == 403
    assert job_exists(store_url, "halted")


def test_reset_through_the_confirmation(store_url: str) -> None:
    populate(store_url)
    with client(store_url) as http:
        token = csrf_of(http.get("/jobs/halted/reset").text)
        done = http.post(
            "/jobs/halted/reset",
            data={"csrf": token},
            headers={"Origin": BASE, "Sec-Fetch-Site": "same-origin"},
            follow_redirects=False,
        )
        assert done.status_code == 303
        assert done.headers["location"] == "/?done=reset&job=halted"
        assert not job_exists(store_url, "halted")
        assert job_exists(store_url, "broken")
        page = http.get(done.headers["location"])
        assert "Job halted reset: its next run starts from the first item." in page.text
        assert 'data-job="halted"' not in page.text
        forged = http.get("/?done=reset&job=Your+data+was+sent+to+evil.example")
        assert "notice" not in forged.text, "only a job key makes a notice"
        assert http.get("/jobs/halted").status_code == 404


def test_reset_is_refused_while_a_runner_holds_the_job(store_url: str, live_runner: str) -> None:
    populate(store_url)
    with client(store_url) as http:
        job_page = http.get(f"/jobs/{live_runner}").text
        assert 'data-action="reset"' not in job_page
        assert "is working on this job now" in job_page
        confirm = http.get(f"/jobs/{live_runner}/reset")
        assert "Not now" in confirm.text
        assert 'id="confirm"' not in confirm.text
        # A form posted anyway (say, from a page left open before the run began): refused.
        token = csrf_of(http.get("/jobs/halted/reset").text)
        response = http.post(f"/jobs/{live_runner}/reset", data={"csrf": token})
        assert response.status_code == 409
        assert "not now: a runner" in response.text
    assert job_exists(store_url, live_runner)


# -- the command ----------------------------------------------------------------------------


def run_ui(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "midway", "ui", *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        env=env,
        check=False,
    )


def test_no_token_no_exposure(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    for host in ("0.0.0.0", "::", "192.0.2.10"):
        result = run_ui("--host", host, "--port", "0", "--store", url, "--no-token")
        assert result.returncode == 2, (host, result.stderr)
        assert f"refusing to serve the dashboard on {host} without a token" in result.stderr
        assert "Drop --no-token" in result.stderr
        assert result.stdout == ""


def test_a_wildcard_bind_with_a_token_from_the_environment(store_url: str) -> None:
    populate(store_url)
    env = {"MIDWAY_UI_TOKEN": TOKEN}
    with serve(store_url, env=env, host="0.0.0.0") as served:
        assert f"?token={TOKEN} once to sign in" in served.banner
        assert httpx.get(served.url + "api/jobs").status_code == 401
        authorised = httpx.get(
            served.url + "api/jobs", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert authorised.status_code == 200
        assert {row["name"] for row in authorised.json()} == {"done", "broken", "halted"}


def test_missing_extra_says_how_to_install_it(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['uvicorn'] = None\n"
        "from midway.cli.app import main\n"
        "sys.argv = ['midway', 'ui', '--port', '0']\n"
        "main()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "pip install 'midway[ui]'" in result.stderr
    assert "uvicorn" in result.stderr


def test_a_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = run_ui("--port", str(port), "--store", f"sqlite:///{tmp_path / 's.db'}")
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "--port 0" in result.stderr


def test_help_has_examples() -> None:
    result = CliRunner().invoke(cli, ["ui", "--help"])
    assert result.exit_code == 0
    assert "Example:" in result.stdout
    assert "--token" in result.stdout
    assert "midway[ui]" in result.stdout


def test_formatting_matches_the_cli_words() -> None:
    assert formatting.duration(None) == ""
    assert formatting.duration(45) == "45 s"
    assert formatting.duration(600) == "10 min"
    assert formatting.duration(3 * 3600) == "3.0 h"
    assert formatting.duration(3 * 86400) == "3.0 days"
    assert formatting.rate(None) == ""
    assert formatting.rate(2.345) == "2.3/s"
    assert formatting.rate(12345.6) == "12,346/s"
    assert formatting.progress_text(1234, 10000) == ("1,234 / 10,000 (12%)")
    assert formatting.progress_text(5, None) == "5"
    assert formatting.as_json({"b": 1, "a": [1]}) == '{\n  "a": [\n    1\n  ],\n  "b": 1\n}'
    assert formatting.as_json("x" * 100, limit=10).endswith("…")
