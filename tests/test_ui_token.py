"""``midway ui`` has a token by default, and reads the Host header strictly: a real server
(``midway ui`` in a subprocess, uvicorn) spoken to over HTTP with httpx. The browser's sign-in
through the printed link is in test_ui.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

import midway
from support.uiserver import Served, csrf_of, job_exists, serve


def make_jobs(url: str) -> None:
    """A completed job ``done`` and a stopped one, ``halted``, that a reset would forget."""
    midway.Job("done", store=url, quiet=True).run(range(5), lambda item, ctx: None)
    halted = midway.Job("halted", store=url, every=2, every_seconds=None, quiet=True)
    for item in halted.loop(range(10)):
        if item == 5:
            break


def same_origin(served: Served) -> dict[str, str]:
    return {"Origin": served.url.rstrip("/"), "Sec-Fetch-Site": "same-origin"}


def run_ui(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "midway", "ui", "--port", "0", *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


@pytest.fixture
def url(tmp_path: Path) -> str:
    store = f"sqlite:///{tmp_path / 'state.db'}"
    make_jobs(store)
    return store


def test_a_token_by_default_and_the_printed_link_signs_in(url: str) -> None:
    with serve(url) as served:
        token = served.token
        assert token is not None, served.banner
        assert len(token) >= 32
        assert f"open {served.url}?token={token} once to sign in" in served.banner
        pages = ["", "jobs/halted", "jobs/halted/reset", "api/jobs", "api/jobs/halted"]
        for path in [*pages, "static/dashboard.js", f"?token={'x' * len(token)}"]:
            response = httpx.get(served.url + path)
            assert response.status_code == 401, path
            assert "token" in response.text
            assert "halted" not in response.text
        for action in ("reset", "retry", "resolve", "note"):
            forged = httpx.post(
                f"{served.url}jobs/halted/{action}",
                data={"csrf": "0" * 64, "all": "1", "text": "x", "as": "done"},
                headers=same_origin(served),
            )
            assert forged.status_code == 401, action
        assert job_exists(url, "halted")

        with httpx.Client(base_url=served.url) as browser:
            signed = browser.get(f"/?token={token}")
            assert signed.status_code == 303
            assert signed.headers["location"] == "/", "the token leaves the address"
            assert token not in signed.headers["set-cookie"]
            jobs = browser.get("/")
            assert jobs.status_code == 200
            assert 'data-job="halted"' in jobs.text
            csrf = csrf_of(browser.get("/jobs/halted/reset").text)
            done = browser.post(
                "/jobs/halted/reset", data={"csrf": csrf}, headers=same_origin(served)
            )
            assert done.status_code == 303, done.text
        assert not job_exists(url, "halted")
        assert httpx.get(served.url + "api/jobs", headers=served.auth).status_code == 200
    with serve(url) as again:
        assert again.token not in (None, token), "a new token at each start"


def test_a_token_given_is_kept(url: str) -> None:
    with serve(url, env={"MIDWAY_UI_TOKEN": "from-the-environment-0123456789"}) as served:
        assert served.token == "from-the-environment-0123456789"
        assert httpx.get(served.url + "api/jobs").status_code == 401
        assert httpx.get(served.url + "api/jobs", headers=served.auth).status_code == 200


def test_no_token_only_when_asked_and_only_on_loopback(url: str) -> None:
    with serve(url, "--no-token") as served:
        assert served.token is None
        assert "?token=" not in served.banner
        assert "no token (--no-token): every user of this machine" in served.banner
        assert httpx.get(served.url + "api/jobs").status_code == 200
    for args, env, expected in [
        (["--no-token", "--host", "0.0.0.0"], {}, "without a token"),
        (["--no-token", "--token", "t0ken"], {}, "contradict"),
        (["--no-token"], {"MIDWAY_UI_TOKEN": "t0ken"}, "contradict"),
    ]:
        refused = run_ui("--store", url, *args, env=env)
        assert refused.returncode == 2, refused.stderr
        assert expected in refused.stderr
        assert "t0ken" not in refused.stderr
        assert refused.stdout == ""


BAD_HOSTS = [
    "127.0.0.1:{port}@evil.example",
    "localhost:{port}@evil.example",
    "[::1]:{port}@evil.example",
    "evil.example",
    "evil.example:{port}",
    "127.0.0.1.evil.example:{port}",
    "localhost.evil.example",
    "user@127.0.0.1:{port}",
    "127.0.0.1:{other}",
    "127.0.0.1:{port}:{port}",
    "127.0.0.1:",
    "127.0.0.1:http",
    "127.0.0.1:+{port}",
    "127.0.0.1:{port}/evil.example",
    "127.0.0.1:{port},evil.example",
    "127.0.0.1:{port} evil.example",
    "127.1:{port}",
    "2130706433:{port}",
    "0.0.0.0:{port}",
    "[::1]evil.example",
    "",
]
GOOD_HOSTS = ["127.0.0.1:{port}", "127.0.0.1", "localhost:{port}", "LOCALHOST", "[::1]:{port}"]


@pytest.mark.parametrize("token", [True, False], ids=["token", "no-token"])
def test_the_host_header_is_read_strictly(url: str, token: bool) -> None:
    """Only a loopback name with this dashboard's port, if any, and nothing after it."""
    with serve(url, *([] if token else ["--no-token"])) as served:
        port = int(served.url.rsplit(":", 1)[1].strip("/"))
        fill = {"port": str(port), "other": str(port + 1 if port < 65535 else port - 1)}
        for pattern in GOOD_HOSTS:
            host = pattern.format(**fill)
            answer = httpx.get(served.url + "api/jobs", headers={"Host": host, **served.auth})
            assert answer.status_code == 200, host
        for pattern in BAD_HOSTS:
            host = pattern.format(**fill)
            headers = {"Host": host, **served.auth}
            answer = httpx.get(served.url + "api/jobs", headers=headers)
            assert answer.status_code in (400, 403), (host, answer.status_code)
            assert "done" not in answer.text
            if token:  # the sign-in link sets no cookie for another host
                login = httpx.get(f"{served.url}?token={served.token}", headers={"Host": host})
                assert login.status_code in (400, 403), host
                assert "set-cookie" not in login.headers
        main = httpx.get(
            served.url + "api/jobs",
            headers={"Host": f"127.0.0.1:{port}@evil.example", **served.auth},
        )
        assert main.status_code == 403
        assert "Host" in main.json()["error"]
