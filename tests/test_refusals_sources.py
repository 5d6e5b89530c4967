"""Inputs that cannot keep the promises are refused before the first item: a set (its order
changes with the hash seed of each process), and a ``key=`` that names no field."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

import midway
from midway import ConfigError, SourceError, sources
from support.crashjob import pick_seed
from support.killer import kill_until_done

SET_JOB = """\
import os, sys
import midway

log = os.open(sys.argv[2], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

def handle(item, ctx):
    os.write(log, (item + "\\n").encode())

emails = {f"u{i}@x.org" for i in range(1000)}
result = midway.Job("mail", store=sys.argv[1], every=50, progress=False).run(emails, handle)
print(result.status, result.succeeded)
"""


def test_a_set_is_refused_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's case: a set of 1,000 addresses, SIGKILLed after 500 and run again in a new
    process (another hash seed). midway used to say "completed: 1,000" having handled some
    800 distinct items; now the first run refuses, and nothing is handled or stored."""
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)  # each process its own seed
    script = tmp_path / "job.py"
    script.write_text(SET_JOB, encoding="utf-8")
    log = tmp_path / "handled.log"
    db = tmp_path / "state.db"
    argv = [sys.executable, str(script), f"sqlite:///{db}", str(log)]
    report = kill_until_done(
        argv, seed=pick_seed(), cwd=tmp_path, kills=1, log=log, after=(500, 500)
    )
    handled = log.read_text().split() if log.exists() else []
    msg = report.describe()
    assert len(set(handled)) == 1000 or not handled, f"items lost: {len(set(handled))}\n{msg}"
    assert not report.runs[0].killed, msg
    assert report.runs[0].returncode == 1, msg  # an uncaught error in a script
    err = report.runs[0].stderr
    assert "ConfigError" in err
    assert "given a set" in err
    assert "sorted(...)" in err
    assert handled == []
    assert not db.exists(), "a refused input leaves no store behind"


@pytest.mark.parametrize(
    "items",
    [
        {3, 1, 2},
        frozenset({"a", "b"}),
        iter({1, 2, 3}),
    ],
    ids=["set", "frozenset", "set-iterator"],
)
def test_unordered_inputs_are_refused_by_run_and_loop(tmp_path: Path, items: Any) -> None:
    job = midway.Job("j", store=f"sqlite:///{tmp_path / 's.db'}", progress=False)
    name = type(items).__name__
    with pytest.raises(ConfigError, match=rf"given a {name}, whose order.*sorted\(\.\.\.\)"):
        job.run(items, lambda item, ctx: None)
    with pytest.raises(ConfigError, match=rf"given a {name}"):
        job.loop(items)
    with pytest.raises(ConfigError, match=rf"given a {name}"):
        sources.iterable(items)
    assert not (tmp_path / "s.db").exists()


@pytest.mark.parametrize("items", [{3, 1, 2}, frozenset({1, 2}), {"a": 1}])
def test_sources_sequence_refuses_what_it_cannot_read_by_position(items: Any) -> None:
    """``sources.sequence`` reads by index: a set (unordered) or a mapping was a raw
    TypeError at the first item, after the run had been recorded."""
    with pytest.raises(ConfigError, match="needs a list, tuple or range"):
        sources.sequence(items)


def test_a_sorted_set_and_a_dicts_keys_are_accepted(tmp_path: Path) -> None:
    job = midway.Job("j", store=f"sqlite:///{tmp_path / 's.db'}", progress=False)
    seen: list[Any] = []
    assert job.run(sorted({3, 1, 2}), lambda item, ctx: seen.append(item)).succeeded == 3
    keys = midway.Job("k", store=job.store_url, progress=False)
    assert keys.run({"b": 1, "a": 2}.keys(), lambda item, ctx: seen.append(item)).succeeded == 2
    assert seen == [1, 2, 3, "b", "a"]


# -- key= naming no field -------------------------------------------------------------------


def people_csv(path: Path, rows: int = 1000) -> Path:
    lines = ["name,email"] + [f"p{i},p{i}@x.org" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_csv_wrong_key_is_refused_at_start_naming_the_columns(tmp_path: Path) -> None:
    """``key="emial"`` used to run 699 items and then stop, whatever max_failures said."""
    store = f"sqlite:///{tmp_path / 's.db'}"
    src = sources.csv(people_csv(tmp_path / "people.csv"), key="emial")
    handled: list[Any] = []
    job = midway.Job("people", store=store, progress=False, max_failures=5)
    with pytest.raises(ConfigError) as caught:
        job.run(src, lambda item, ctx: handled.append(item))
    assert str(caught.value) == (
        "key='emial' is not a column of people.csv, whose columns are: 'name', 'email'; "
        "pass key= one of them, or a function of the item"
    )
    assert handled == []
    info = job.info()
    assert info is None or info.checkpoint is None
    with pytest.raises(ConfigError, match="emial"):
        handled.extend(midway.Job("people2", store=store, progress=False).loop(src))
    assert handled == []


def test_first_item_without_the_key_refuses_the_job(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 's.db'}"
    rows = [{"name": f"p{i}", "email": f"p{i}@x.org"} for i in range(100)]
    handled: list[Any] = []
    job = midway.Job("dicts", store=store, progress=False, max_failures=5)
    with pytest.raises(ConfigError) as caught:
        job.run(sources.sequence(rows, key="emial"), lambda item, ctx: handled.append(item))
    assert "the first item has no field 'emial'" in str(caught.value)
    assert "'name', 'email'" in str(caught.value)
    assert handled == []
    # Nothing was marked done: the corrected key= starts from the first item.
    result = job.run(sources.sequence(rows, key="email"), lambda item, ctx: handled.append(item))
    assert result.succeeded == 100
    assert len(handled) == 100


def test_jsonl_first_record_without_the_key_refuses_the_job(tmp_path: Path) -> None:
    path = tmp_path / "people.jsonl"
    path.write_text("".join(json.dumps({"email": f"p{i}"}) + "\n" for i in range(50)))
    job = midway.Job("jsonl", store=f"sqlite:///{tmp_path / 's.db'}", progress=False)
    handled: list[Any] = []
    with pytest.raises(ConfigError, match=r"the first item has no field 'id'.*'email'"):
        job.run(sources.jsonl(path, key="id"), lambda item, ctx: handled.append(item))
    assert handled == []


def test_a_later_item_without_the_key_is_a_failing_record(tmp_path: Path) -> None:
    """Under a failure policy it is counted as failed and the job goes on; without one the
    job stops there with a SourceError naming the item, the items before it done."""
    rows: list[dict[str, Any]] = [{"id": i} for i in range(10)]
    rows[6] = {"ident": 6}
    store = f"sqlite:///{tmp_path / 's.db'}"
    handled: list[Any] = []
    failed: list[midway.ItemRecord] = []
    job = midway.Job(
        "tolerant",
        store=store,
        progress=False,
        max_failures=3,
        on_item_failed=lambda record, exc: failed.append(record),
    )
    result = job.run(sources.sequence(rows, key="id"), lambda item, ctx: handled.append(item))
    assert (result.succeeded, result.failed) == (9, 1)
    assert {"ident": 6} not in handled
    assert [(f.key, f.error) for f in failed] == [
        ("item 7", "SourceError: item 7 has no field 'id' to use as its key (its fields: 'ident')")
    ]

    strict = midway.Job("strict", store=store, progress=False)
    handled.clear()
    with pytest.raises(SourceError, match="item 7 has no field 'id'"):
        strict.run(sources.sequence(rows, key="id"), lambda item, ctx: handled.append(item))
    assert handled == rows[:6]
