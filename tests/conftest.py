"""Shared fixtures: a store of each kind, a clean working directory, the shared data set."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
