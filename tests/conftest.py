"""Shared fixtures: a store of each kind, a clean working directory, the shared data set."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from faults import summary
from support.pg import pg_server, postgresql_url  # noqa: F401 (fixtures)

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
STORE_KINDS = ("sqlite", "file", "postgresql")


def store_url_for(kind: str, folder: Path) -> str:
    """A store URL of ``kind`` inside ``folder`` (absolute, so subprocesses agree on it)."""
    if kind == "sqlite":
        return f"sqlite:///{folder / 'state.db'}"
    if kind == "file":
        return f"file://{folder / 'store'}"
    raise ValueError(kind)


@pytest.fixture(params=STORE_KINDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Runs the test once per store kind: every store keeps the same promises."""
    if request.param == "postgresql":  # a fresh database on the session's server
        url: str = request.getfixturevalue("postgresql_url")
        return url
    return store_url_for(request.param, tmp_path)


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test runs in its own folder, with no store inherited from the environment."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MIDWAY_STORE", raising=False)


@pytest.fixture(scope="session")
def world_cities() -> Path:
    """34,032 real rows with quoted commas and non-Latin names (CC-BY-4.0)."""
    path = SHARED_DATA / "world-cities.csv"
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"the shared data set is missing in CI: {path}")
        pytest.skip(f"the shared data set is not beside this checkout ({path})")
    return path


def pytest_configure(config: pytest.Config) -> None:
    """The session's fault summary file, named before any test process starts."""
    if hasattr(config, "workerinput"):  # a pytest-xdist worker: it inherits the name
        return
    fd, name = tempfile.mkstemp(prefix="midway-faults-", suffix=".jsonl")
    os.close(fd)
    os.environ[summary.SESSION_ENV] = name


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The table of what the fault scenarios did (``make faults`` prints its own)."""
    name = os.environ.get(summary.SESSION_ENV)
    if hasattr(terminalreporter.config, "workerinput") or not name:
        return
    path = Path(name)
    records = summary.read(path)
    path.unlink(missing_ok=True)
    if records and not os.environ.get("MIDWAY_FAULTS_SUMMARY"):
        terminalreporter.write_sep("=", "fault suite summary")
        terminalreporter.write_line(summary.table(records))
