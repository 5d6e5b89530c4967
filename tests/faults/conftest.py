"""Fixtures of the fault suite: a seed and no stray processes (the summary table is printed
by ``tests/conftest.py``, which the session's main process loads even under pytest-xdist)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import store_url_for
from faults.harness import reap
from support.crashjob import pick_seed


@pytest.fixture(autouse=True)
def _no_stray_runners() -> Iterator[None]:
    yield
    reap()


@pytest.fixture(params=["sqlite", "file"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The fault suite's stores: it copies and damages store files, which a PostgreSQL
    server's are not. (PostgreSQL's own faults, its restarts and dropped sessions, are in
    tests/acceptance/test_pg_outage.py; its guarantees under kills in test_fates.py.)"""
    return store_url_for(request.param, tmp_path)


@pytest.fixture
def seed() -> int:
    """A fresh seed per test (printed; ``MIDWAY_TEST_SEED`` replays one)."""
    value = pick_seed()
    print(f"faults: seed {value} (replay with MIDWAY_TEST_SEED={value})")
    return value
