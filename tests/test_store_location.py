"""The default store does not depend on the working directory: a script finds its own
checkpoint (the nearest ``.midway/`` at or above its folder, else one created beside it),
``midway status`` finds it from the project's folder, and every store is named absolutely."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import midway
from midway.stores import default_url, open_store

MIDWAY = [sys.executable, "-m", "midway"]

SCRIPT = """
import os, sys
from pathlib import Path
import midway

LOG = Path(__file__).with_name("handled.log")

def handle(item, ctx):
    with LOG.open("a") as log:
        log.write(f"{item}\\n")
    if item == int(os.environ.get("FAIL_AT", "-1")):
        raise RuntimeError(f"item {item} failed on purpose")

job = midway.Job("mail", guarantee=os.environ["GUARANTEE"], every=10, max_failures=5)
result = job.run(range(200), handle)
print(result.status, result.processed, flush=True)
"""


@pytest.fixture(autouse=True)
def _no_store_above(tmp_path: Path) -> None:
    for folder in tmp_path.parents:
        if (folder / ".midway").is_dir():
            pytest.skip(f"{folder} holds a .midway folder: every default store would be there")


def _project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    (project / "mail.py").write_text(textwrap.dedent(SCRIPT))
    return project


def _run(script: Path, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k != "MIDWAY_STORE"}
    return subprocess.run(
        [sys.executable, str(script)],
        cwd=cwd,
        env={**clean, **env},
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("guarantee", ["at-least-once", "at-most-once"])
def test_the_same_script_from_two_folders_finds_the_same_checkpoint(
    tmp_path: Path, guarantee: str
) -> None:
    project = _project(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = project / "mail.py"
    fail_fast = {"GUARANTEE": guarantee, "FAIL_AT": "73"}

    # run 1, from the project's folder: item 73 fails and is recorded (max_failures=5)
    first = _run(script, project, **fail_fast)
    assert first.returncode == 0, first.stderr
    store = project / ".midway" / "state.db"
    assert store.is_file(), first.stderr
    assert f"sqlite:///{store}" in first.stderr, first.stderr
    if guarantee == "at-most-once":
        assert first.stderr.startswith(
            f"midway: starting at-most-once job 'mail' afresh: no record of it in sqlite:///{store}"
        ), first.stderr

    # run 2, from elsewhere: the same store, so the job is known and not run again from 0
    second = _run(script, elsewhere, GUARANTEE=guarantee)
    assert not (elsewhere / ".midway").exists(), second.stderr
    handled = [int(x) for x in (project / "handled.log").read_text().split()]
    if guarantee == "at-most-once":
        # already completed in that store: refused (an uncaught error in a script: exit 1)
        assert second.returncode == 1, second.stderr
        assert "RefusedError" in second.stderr, second.stderr
        assert "already completed" in second.stderr, second.stderr
        assert sorted(handled) == list(range(200)), "an item was handled twice"
    else:
        assert second.returncode == 0, second.stderr
        assert "already completed" not in second.stderr
        assert len(handled) == 400  # it completed, so the second run starts over: same store
        assert f"sqlite:///{store}" in second.stderr, second.stderr


def test_at_most_once_resumes_from_another_folder_without_handling_an_item_twice(
    tmp_path: Path,
) -> None:
    """Run 1 is killed partway (the item at 120 exits the process at once); run 2, from
    another working directory, resumes it: every item is handled at most once."""
    project = _project(tmp_path)
    script = project / "mail.py"
    text = script.read_text().replace(
        'raise RuntimeError(f"item {item} failed on purpose")', "os._exit(9)"
    )
    script.write_text(text)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    first = _run(script, project, GUARANTEE="at-most-once", FAIL_AT="120")
    assert first.returncode == 9, first.stderr
    second = _run(script, elsewhere, GUARANTEE="at-most-once")
    assert second.returncode == 0, second.stderr
    assert "RESUMING" in second.stderr, second.stderr
    handled = [int(x) for x in (project / "handled.log").read_text().split()]
    assert len(handled) == len(set(handled)), "an item was handled twice"
    assert set(handled) == set(range(200)) - {120} or set(handled) == set(range(200))


def test_midway_status_from_the_project_folder_or_below_finds_the_store(tmp_path: Path) -> None:
    project = _project(tmp_path)
    ran = _run(project / "mail.py", tmp_path, GUARANTEE="at-least-once", FAIL_AT="5")
    assert ran.returncode == 0, ran.stderr
    below = project / "reports" / "2026"
    below.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k != "MIDWAY_STORE"}
    for cwd in (project, below):
        status = subprocess.run(
            [*MIDWAY, "status", "--json"],
            cwd=cwd,
            env=env,
            check=False,
            capture_output=True,
            text=True,
        )
        assert status.returncode == 0, status.stderr
        assert [row["job"] for row in json.loads(status.stdout)] == ["mail"], cwd
        table = subprocess.run(
            [*MIDWAY, "status"], cwd=cwd, env=env, check=False, capture_output=True, text=True
        )
        assert f"midway jobs in sqlite:///{project / '.midway' / 'state.db'}" in table.stdout


def test_python_c_and_tools_start_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # under the test runner (a program installed with Python), as under python -c
    assert default_url() == f"sqlite:///{tmp_path / '.midway' / 'state.db'}"
    (tmp_path / ".midway").mkdir()
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert midway.Job("x").store_url == f"sqlite:///{tmp_path / '.midway' / 'state.db'}"
    code = "import midway; print(midway.Job('x').store_url)"
    env = {k: v for k, v in os.environ.items() if k != "MIDWAY_STORE"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=deep, env=env, check=False, capture_output=True, text=True
    )
    assert out.stdout.strip() == f"sqlite:///{tmp_path / '.midway' / 'state.db'}", out.stderr


def test_relative_store_urls_are_made_absolute_at_job_creation(tmp_path: Path) -> None:
    from midway.stores import absolute_url

    assert midway.Job("x", store="sqlite:///rel.db").store_url == f"sqlite:///{tmp_path}/rel.db"
    assert midway.Job("x", store="file:dir").store_url == f"file://{tmp_path}/dir"
    assert absolute_url("jobs.db") == f"sqlite:///{tmp_path}/jobs.db"
    pg = "postgresql://u@localhost/db"
    assert absolute_url(pg) == pg
    for url, expected in (
        ("sqlite:///rel.db", f"sqlite:///{tmp_path}/rel.db"),
        ("file:rel", f"file://{tmp_path}/rel"),
        ("plain.db", f"sqlite:///{tmp_path}/plain.db"),
    ):
        store = open_store(url)
        try:
            assert store.url == expected
        finally:
            store.close()


def test_relative_input_paths_are_absolute_in_the_fingerprint(tmp_path: Path) -> None:
    (tmp_path / "people.csv").write_text("id,name\n1,a\n")
    fingerprint = midway.sources.csv("people.csv", key="id").fingerprint()
    assert fingerprint["path"] == str(tmp_path / "people.csv")
