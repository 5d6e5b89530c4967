"""The stores' files are the runner's own: no link planted in the store redirects a write,
a store folder other users may write to is refused, and every file and folder midway
creates is readable by its owner only (0600 / 0700; a stricter umask still wins).

The tests run as root, which may write anywhere: a planted link would be followed, so
each check uses a target file the test made and shows that it is unchanged.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import midway
from midway._model.identity import make_job_id
from midway._model.owner import Owner
from midway.stores import open_store

PRECIOUS = b"precious: not midway's to write\n"


def target(tmp_path: Path) -> Path:
    path = tmp_path / "precious.txt"
    path.write_bytes(PRECIOUS)
    return path


def run_job(
    url: str, n: int = 20, handle: Callable[[int, midway.Context], object] | None = None
) -> midway.RunResult:
    job = midway.Job("sec", store=url, every=1, progress=False)
    return job.run(range(n), handle or (lambda item, ctx: None))


def job_folder(root: Path) -> Path:
    return root / "jobs" / make_job_id("sec", None).key


# -- links ------------------------------------------------------------------------------


def test_links_at_the_old_temporary_names_redirect_nothing(tmp_path: Path) -> None:
    """midway used to write ``.<name>.<pid>.tmp`` with O_CREAT|O_TRUNC, following a link
    planted there: any file the runner could write was overwritten with the store's JSON."""
    root = tmp_path / "store"
    url = f"file://{root}"
    precious = target(tmp_path)
    run_job(url)  # the job's folder exists
    store = open_store(url)
    try:
        store.reset(make_job_id("sec", None).key, Owner.current())  # to run it again
    finally:
        store.close()
    folder = job_folder(root)
    names = ("checkpoint.json", "job.json", "lease.json", "ledger.json")
    pid = os.getpid()

    def plant(item: int, ctx: midway.Context) -> None:
        if item == 20:  # planted while this very process writes the job's files
            for name in names:
                link = folder / f".{name}.{pid}.tmp"
                link.unlink(missing_ok=True)
                link.symlink_to(precious)

    result = midway.Job("sec", store=url, every=1, progress=False).run(range(20, 40), plant)
    assert result.processed_this_run == 20
    assert precious.read_bytes() == PRECIOUS
    store = open_store(url)
    try:
        record = store.get_job(make_job_id("sec", None).key)
        assert record is not None
        assert record.status == "completed"
    finally:
        store.close()


def test_a_link_in_place_of_a_store_file_is_refused_not_followed(tmp_path: Path) -> None:
    root = tmp_path / "store"
    url = f"file://{root}"
    precious = target(tmp_path)
    run_job(url)
    folder = job_folder(root)
    key = make_job_id("sec", None).key
    (folder / "notes.jsonl").symlink_to(precious)
    store = open_store(url)
    try:
        with pytest.raises(midway.MidwayError) as caught:
            store.add_note(key, "a note", "someone")
        assert "symbolic link" in str(caught.value)
        assert "Remove the link" in str(caught.value)
        assert caught.value.exit_code == 3
    finally:
        store.close()
    assert precious.read_bytes() == PRECIOUS

    (folder / "job.json").unlink()
    (folder / "job.json").symlink_to(precious)
    store = open_store(url)
    try:
        with pytest.raises(midway.MidwayError, match="symbolic link"):
            store.get_job(key)
    finally:
        store.close()
    with pytest.raises(midway.MidwayError, match="symbolic link"):
        run_job(url)
    assert precious.read_bytes() == PRECIOUS


def test_a_job_folder_that_is_a_link_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "store"
    url = f"file://{root}"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    open_store(url).close()
    job_folder(root).symlink_to(elsewhere)
    handled: list[int] = []
    with pytest.raises(midway.MidwayError, match="symbolic link"):
        run_job(url, handle=lambda item, ctx: handled.append(item))
    assert handled == []
    assert list(elsewhere.iterdir()) == []


def test_a_store_root_given_as_a_link_is_fine(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(real)
    result = run_job(f"file://{tmp_path / 'link'}")
    assert result.status == "completed"
    assert (real / "midway-store.json").exists()


# -- folders others may write to ----------------------------------------------------------


def test_a_world_writable_store_folder_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "shared"
    root.mkdir()
    root.chmod(0o777)
    handled: list[int] = []
    with pytest.raises(midway.StoreUnavailable) as caught:
        run_job(f"file://{root}", handle=lambda item, ctx: handled.append(item))
    message = str(caught.value)
    assert "every user of this machine may write to it (mode 777)" in message
    assert f"chmod 700 {root}" in message
    assert handled == []
    assert list(root.iterdir()) == [], "nothing may be written in a refused folder"

    root.chmod(0o700)
    assert run_job(f"file://{root}").status == "completed"


def test_a_world_writable_job_folder_is_refused_before_any_item(tmp_path: Path) -> None:
    root = tmp_path / "store"
    url = f"file://{root}"
    run_job(url)
    folder = job_folder(root)
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    folder.chmod(0o777)
    handled: list[int] = []
    with pytest.raises(midway.StoreUnavailable, match=r"chmod 700 .*jobs"):
        run_job(url, n=40, handle=lambda item, ctx: handled.append(item))
    assert handled == []
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before


# -- modes --------------------------------------------------------------------------------

MODES_SCRIPT = """
import json, os, stat, sys
os.umask(int(sys.argv[1], 8))
import midway
from midway.stores import open_store

FILE_STORE = "file:users-own/filestore"
seen = {}


def look(root):
    for here, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(here, name)
            st = os.lstat(path)
            seen[path] = [stat.S_IMODE(st.st_mode), stat.S_ISDIR(st.st_mode)]


def handle(item, ctx):
    if item == 9:  # while the SQLite store is open: its -wal and -shm files exist
        look(".midway")
        look("users-own/filestore")


os.mkdir("users-own")
os.chmod("users-own", 0o755)  # a folder the user made: its mode is left alone
midway.Job("modes", store=FILE_STORE, every=1, progress=False).run(range(10), lambda i, c: None)
store = open_store(FILE_STORE)
store.add_note(store.list_jobs()[0].job, "a note", "me")
store.settle_plan("modes-plan", {"parts": []})
store.close()
midway.Job("modes", every=1, progress=False).run(range(10), handle)  # .midway/state.db
print(json.dumps(seen))
"""


@pytest.mark.parametrize("umask", ["022", "077"])
def test_store_files_are_private(tmp_path: Path, umask: str) -> None:
    script = tmp_path / "modes.py"
    script.write_text(MODES_SCRIPT, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script), umask],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    seen: dict[str, list[Any]] = json.loads(done.stdout.strip().splitlines()[-1])
    for name in (".midway/state.db", ".midway/state.db-wal", ".midway/state.db-shm"):
        assert name in seen, sorted(seen)
    names = sorted(seen)
    assert "users-own/filestore/midway-store.json" in seen, names
    assert any(name.endswith("/notes.jsonl") for name in seen), names
    assert any(name.startswith("users-own/filestore/plans/") for name in seen), names
    assert any("/runs/" in name for name in seen), names
    wrong = {
        name: oct(mode)
        for name, (mode, folder) in seen.items()
        if mode != (0o700 if folder else 0o600)
    }
    assert wrong == {}, f"not private with umask {umask}: {wrong}"
    assert stat.S_IMODE((tmp_path / ".midway").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "users-own").stat().st_mode) == 0o755


def test_a_stricter_umask_still_wins(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os; os.umask(0o077 | 0o020); import midway;"
            "from midway.stores import open_store; open_store('file:deep/er/store').close()",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for folder in ("deep", "deep/er", "deep/er/store", "deep/er/store/jobs"):
        assert stat.S_IMODE((tmp_path / folder).stat().st_mode) == 0o700, folder
    marker = tmp_path / "deep/er/store/midway-store.json"
    assert stat.S_IMODE(marker.stat().st_mode) == 0o600


def test_a_reset_and_a_new_run_leave_everything_private(tmp_path: Path) -> None:
    root = tmp_path / "store"
    url = f"file://{root}"
    run_job(url)
    store = open_store(url)
    try:
        assert store.reset(make_job_id("sec", None).key, Owner.current()) is True
    finally:
        store.close()
    run_job(url)
    for path in root.rglob("*"):
        mode = stat.S_IMODE(path.lstat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))
