"""A PostgreSQL server for tests: ``MIDWAY_TEST_POSTGRES_URL`` when set, else a throwaway
server from the ``pgserver`` package (a PostgreSQL build on PyPI, started in a temp folder)."""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def postgres_url() -> Iterator[str]:
    """The URL of a server to test against; a server started here is deleted afterwards.

    Its data folder is a fresh one under the system temp folder, not under pytest's: run as
    root, pgserver starts PostgreSQL as another user, who must be able to reach the folder,
    and pytest keeps its own base folder private (mode 0700, reset by every session)."""
    given = os.environ.get("MIDWAY_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    folder = Path(tempfile.mkdtemp(prefix="midway-test-pg-"))
    with warnings.catch_warnings():  # pgserver's lock file: "XDG_RUNTIME_DIR is not set"
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
        import pgserver

        server = pgserver.get_server(folder, cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
