"""``midway ui`` in a real subprocess on a free port, for the dashboard's tests."""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO

from midway.stores import open_store

ADDRESS = re.compile(r"serving (http://\S+/)")
SIGN_IN = re.compile(r"open (http://\S+/)\?token=(\S+) once to sign in")


@dataclass
class Served:
    url: str  # http://127.0.0.1:<port>/
    proc: subprocess.Popen[bytes]
    banner: str  # what the command printed on start
    token: str | None  # the token in the sign-in link it printed (None with --no-token)

    def sign_in(self, path: str = "") -> str:
        """The address of ``path`` with the token, which signs a browser in on the way."""
        return f"{self.url}{path}?token={self.token}" if self.token else self.url + path

    @property
    def auth(self) -> dict[str, str]:
        """The header that admits a script's request."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}


def read_banner(proc: subprocess.Popen[bytes], errors: IO[bytes], timeout: float = 30.0) -> str:
    """What ``midway ui`` prints before it serves: its address, maybe a sign-in link.

    The command prints it in one write, so once the address shows, all of it is here.
    """
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if select.select([fd], [], [], 0.1)[0]:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            seen += chunk
            if ADDRESS.search(seen.decode(errors="replace")):
                return seen.decode()
        elif proc.poll() is not None:
            break
    proc.kill()
    proc.wait()
    errors.seek(0)
    err = errors.read()
    raise AssertionError(f"midway ui did not start: {seen.decode()}{err.decode()}")


@contextmanager
def serve(
    store_url: str, *args: str, env: dict[str, str] | None = None, host: str = "127.0.0.1"
) -> Iterator[Served]:
    """Run ``midway ui --port 0`` until the block ends; yields the address it printed."""
    command = [sys.executable, "-m", "midway", "ui", "--host", host, "--port", "0"]
    # stderr to a file, not a pipe: a chatty server never blocks on it
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(
            [*command, "--store", store_url, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=errors,
            bufsize=0,
            env={**os.environ, **(env or {})},
        )
        try:
            banner = read_banner(proc, errors)
            match = ADDRESS.search(banner)
            assert match is not None
            # A wildcard bind prints the machine's name; reach it through loopback.
            url = re.sub(r"//[^/]+:", "//127.0.0.1:", match.group(1))
            sign_in = SIGN_IN.search(banner)
            yield Served(url, proc, banner, sign_in.group(2) if sign_in else None)
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


def job_exists(url: str, job: str) -> bool:
    """Whether the store at ``url`` knows ``job`` (an action reached it, or not)."""
    store = open_store(url)
    try:
        return store.get_job(job) is not None
    finally:
        store.close()


def csrf_of(html: str) -> str:
    """The form token a dashboard page carries."""
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert match, html
    return match.group(1)
