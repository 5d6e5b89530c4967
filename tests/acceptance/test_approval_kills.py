"""Items waiting for a person survive SIGKILL, on SQLite and PostgreSQL: killed while the
job asks, and while the decided items are handed back, no decided item is lost or handled
twice past its approval, no waiting item is lost, and the steps before a question are not
run again."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

import midway
from midway.stores import open_store
from support.approvaljob import argv, effects, write_script
from support.crashjob import pick_seed
from support.killer import kill_until_done

N = 200
ASKED = [i for i in range(N) if i % 5 == 0]


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        url: str = request.getfixturevalue("postgresql_url")
        return url
    return f"sqlite:///{tmp_path / 'state.db'}"


def completed(store: str) -> bool:
    """The job completed (a kill that lands after that ends the handing back)."""
    opened = open_store(store)
    try:
        record = opened.get_job("approvals")
    finally:
        opened.close()
    return record is not None and record.status.startswith("completed")


def ledger(store: str) -> dict[int, str]:
    opened = open_store(store)
    try:
        records = opened.list_items("approvals", ("waiting", "decided", "in_doubt", "started"))
    finally:
        opened.close()
    return {int(str(r.key)): r.status for r in records}


@pytest.mark.parametrize("guarantee", ["at-least-once", "at-most-once"])
def test_kills_while_asking_and_while_handing_back(
    store: str, guarantee: str, tmp_path: Path
) -> None:
    seed = pick_seed()
    script = write_script(tmp_path)
    command = argv(script, tmp_path, store, guarantee, N)
    progress = tmp_path / "progress.log"

    asking = kill_until_done(command, seed=seed, cwd=tmp_path, kills=4, log=progress, after=(5, 60))
    assert asking.last.returncode == 4, asking.describe()
    assert json.loads(asking.last.stdout)["status"] == "waiting", asking.describe()
    before = ledger(store)
    in_doubt = {k for k, s in before.items() if s == "in_doubt"}
    waiting = {k for k, s in before.items() if s == "waiting"}
    # every question asked is waiting, or (at-most-once: killed in its handler) in doubt
    assert waiting | in_doubt >= set(ASKED), asking.describe()
    assert not waiting - set(ASKED), asking.describe()
    if guarantee == "at-least-once":
        assert not in_doubt
    assert len(in_doubt) <= asking.kills, asking.describe()
    prepared = Counter(item for what, item in effects(tmp_path) if what == "prepare")
    # at-most-once: an item marked, then killed before its handler began, is in doubt
    assert set(prepared) | in_doubt == set(range(N)), asking.describe()
    repeats = sum(count - 1 for count in prepared.values())
    assert repeats <= asking.kills, asking.describe()  # at most the step in flight per kill

    rejected = {k for k in waiting if k % 10 == 5}
    job = midway.Job("approvals", store=store, guarantee=guarantee, quiet=True)  # type: ignore[arg-type]
    assert job.approve(sorted(waiting - rejected), note="ok") == len(waiting - rejected)
    assert job.approve(sorted(rejected), approved=False) == len(rejected)
    mark = len(effects(tmp_path))

    handing = kill_until_done(
        command,
        seed=seed + 1,
        cwd=tmp_path,
        kills=3,
        log=progress,
        after=(1, 10),
        finished=lambda: completed(store),
    )
    assert handing.last.returncode == 0 or handing.last.killed, handing.describe()
    assert completed(store), handing.describe()
    after = ledger(store)
    assert not {k for k, s in after.items() if s in ("waiting", "decided")}, handing.describe()
    later = effects(tmp_path)[mark:]
    # the steps before the question are not run again, nor are other items handled again
    assert not [e for e in later if e[0] == "prepare"], handing.describe()
    assert {item for _, item in later} <= waiting, handing.describe()
    acted = Counter(later)
    doubted = {k for k, s in after.items() if s == "in_doubt"} - in_doubt
    for item in waiting:
        what = "reject" if item in rejected else "apply"
        wrong = "apply" if item in rejected else "reject"
        assert acted[(wrong, item)] == 0, handing.describe()
        if guarantee == "at-most-once":  # never twice; killed in its handler: in doubt
            assert acted[(what, item)] == 1 or item in doubted, (item, handing.describe())
            assert acted[(what, item)] <= 1, (item, handing.describe())
        else:  # every one applied; a repeat only for the step a kill cut short
            assert acted[(what, item)] >= 1, (item, handing.describe())
    repeats = sum(count - 1 for (what, _), count in acted.items() if what != "ask")
    assert repeats <= handing.kills, handing.describe()
    assert len(doubted) <= handing.kills, handing.describe()
