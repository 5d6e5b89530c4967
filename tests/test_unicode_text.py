"""Text that is not valid Unicode: a file name with a byte that is not UTF-8 (Python gives it
a lone surrogate), a key, an error message or a state value holding one. Every store used to
fail to encode it, on every run, at the same item, and left the run recorded as running."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

import midway
from midway import StateNotSerializable, sources
from midway.stores import open_store

BAD = "b\udcff"  # what os.listdir gives for the bytes b"b\xff"


def last_run_status(store_url: str, job: str) -> str:
    store = open_store(store_url)
    try:
        runs = store.list_runs(job)
        assert runs, "the run was recorded"
        return runs[0].status
    finally:
        store.close()


def test_file_names_keep_their_bytes(store_url: str, tmp_path: Path) -> None:
    """Keys and positions from such names are stored (escaped) and read back unchanged: a
    resume after the odd name starts at the next file, and the handler opens the file."""
    folder = tmp_path / "in"
    folder.mkdir()
    for name in (b"a.txt", b"b\xff.txt", b"c.txt", b"d.txt"):
        with open(os.fsencode(folder) + b"/" + name, "wb") as f:
            f.write(name)
    seen: list[bytes] = []

    def handle(path: Path, ctx: Any) -> None:
        seen.append(path.read_bytes())
        if path.name == "c.txt" and len(seen) == 3:
            raise RuntimeError("stop here once")

    job = midway.Job("files", store=store_url, every=1, progress=False)
    with pytest.raises(RuntimeError):
        job.run(sources.files(folder), handle)
    info = job.info()
    assert info is not None
    assert info.checkpoint is not None
    assert info.checkpoint.position == "b\udcff.txt", "the position read back is the name"
    result = midway.Job("files", store=store_url, every=1, progress=False).run(
        sources.files(folder), handle
    )
    assert result.status == "completed"
    assert seen == [b"a.txt", b"b\xff.txt", b"c.txt", b"c.txt", b"d.txt"]


def test_keys_and_error_messages_are_stored_escaped(store_url: str) -> None:
    failed: list[midway.ItemRecord] = []

    def handle(item: str, ctx: Any) -> None:
        if item == BAD:
            raise ValueError(f"cannot send to {item}")

    job = midway.Job(
        "keys",
        store=store_url,
        every=1,
        max_failures=3,
        progress=False,
        on_item_failed=lambda record, exc: failed.append(record),
    )
    result = job.run(sources.sequence(["a", BAD, "c"], key=str), handle)
    assert (result.status, result.succeeded, result.failed) == ("completed_with_failures", 2, 1)
    assert failed[0].error == "ValueError: cannot send to b\\udcff"
    store = open_store(store_url)
    try:
        (stored,) = store.list_items(job.key, ("failed",))
    finally:
        store.close()
    assert stored.key == BAD, "the key reads back as the same string"
    assert stored.error == "ValueError: cannot send to b\\udcff"
    assert stored.traceback is not None
    assert "b\\udcff" in stored.traceback


def test_an_error_message_that_ends_the_run_is_recorded(store_url: str) -> None:
    """No failure policy: the error stops the job, and the run is recorded as failed (it
    used to stay "running", as the message could not be stored)."""

    def handle(item: int, ctx: Any) -> None:
        if item == 2:
            raise ValueError(f"bad name {BAD}")

    job = midway.Job("ends", store=store_url, every=1, progress=False)
    with pytest.raises(ValueError, match="bad name"):
        job.run(range(5), handle)
    assert last_run_status(store_url, job.key) == "failed"
    info = job.info()
    assert info is not None
    assert info.effective_status == "failed"
    assert info.checkpoint is not None
    assert info.checkpoint.counters.processed == 2
    # The next run resumes at the failing item, and goes on.
    assert (
        midway.Job("ends", store=store_url, progress=False)
        .run(range(5), lambda item, ctx: None)
        .succeeded
        == 5
    )


def test_a_state_value_that_is_not_unicode_names_its_key(store_url: str) -> None:
    def handle(item: int, ctx: Any) -> None:
        ctx.state["count"] = item + 1
        if item == 3:
            ctx.state["last_name"] = BAD

    job = midway.Job("state", store=store_url, every=1, progress=False)
    with pytest.raises(StateNotSerializable) as caught:
        job.run(range(10), handle)
    assert caught.value.path == "ctx.state['last_name']"
    assert "not valid Unicode" in str(caught.value)
    assert last_run_status(store_url, job.key) == "failed"


def test_a_state_key_that_is_not_unicode_is_named_too() -> None:
    with pytest.raises(StateNotSerializable, match="key that is not valid Unicode"):
        midway._model.jsonutil.dumps_state({"ok": 1, BAD: 2})


def test_at_most_once_marks_such_a_key(store_url: str) -> None:
    """Each item's mark is stored before its handler runs: the key is in it."""
    seen: list[str] = []
    job = midway.Job("marks", store=store_url, guarantee="at-most-once", progress=False)
    result = job.run(sources.sequence(["a", BAD, "c"], key=str), lambda i, ctx: seen.append(i))
    assert (result.status, result.succeeded) == ("completed", 3)
    assert seen == ["a", BAD, "c"]
