"""Exactly-once: the handler's writes through ``ctx.transaction`` after the last periodic
checkpoint commit when the job completes. A run whose item count is not a multiple of
``every`` (or that never reaches ``every``) used to end ``completed`` with those writes
rolled back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import midway

ITEMS = 250


def store_for(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if kind == "postgresql":
        url: str = request.getfixturevalue("postgresql_url")
        return url
    return f"sqlite:///{tmp_path / 'state.db'}"


def written(ctx: midway.Context) -> int:
    row = ctx.transaction.execute("SELECT COUNT(*) FROM sent").fetchone()
    return int(row[0])


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
@pytest.mark.parametrize(("every", "batch"), [(100, None), (1000, None), (100, 7), (None, 7)])
def test_the_writes_after_the_last_checkpoint_commit_with_the_completion(
    kind: str, every: int | None, batch: int | None, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = store_for(kind, tmp_path, request)
    job = midway.Job(
        "deliver", store=url, guarantee="exactly-once", every=every, every_seconds=3600, quiet=True
    )

    def setup(item: Any, ctx: midway.Context) -> None:
        ctx.transaction.execute("CREATE TABLE IF NOT EXISTS sent (n INTEGER PRIMARY KEY)")

    midway.Job("setup", store=url, guarantee="exactly-once", quiet=True).run([0], setup)

    def insert(item: Any, ctx: midway.Context) -> None:
        for n in item if batch else [item]:
            ctx.transaction.execute("INSERT INTO sent (n) VALUES (%s)".replace("%s", mark), (n,))

    mark = "%s" if kind == "postgresql" else "?"
    options = {"batch": batch} if batch else {}
    result = job.run(range(ITEMS), insert, **options)
    assert (result.status, result.succeeded) == ("completed", ITEMS)

    counted: list[int] = []
    check = midway.Job("count", store=url, guarantee="exactly-once", quiet=True)
    check.run([0], lambda item, ctx: counted.append(written(ctx)))
    assert counted == [ITEMS]
