"""The public surface: names, the exception tree and its exit codes, the type marker."""

from __future__ import annotations

import importlib.resources
import json
import re
import signal
import subprocess
import sys

import pytest

import midway
from midway import errors
from midway._model.result import RunResult

EXPECTED_ALL = [
    "Append",
    "CheckpointInfo",
    "ConfigError",
    "Context",
    "InputDrift",
    "ItemRecord",
    "Job",
    "JobNotFound",
    "JobStatus",
    "Last",
    "LeaseHeld",
    "LeaseLost",
    "Loop",
    "Max",
    "MidwayError",
    "Min",
    "NoteInfo",
    "PartitionStatus",
    "RefusedError",
    "Retry",
    "RetryAfter",
    "RunInfo",
    "RunResult",
    "SourceError",
    "StateNotSerializable",
    "Stopped",
    "StoreCorrupt",
    "StoreNotFound",
    "StoreTooNew",
    "StoreUnavailable",
    "Sum",
    "TooManyFailures",
    "__version__",
    "jobs",
    "sources",
]

# RetryAfter is raised by handlers to ask for a later try, never by midway: not an error.
EXCEPTIONS = [
    name
    for name in EXPECTED_ALL
    if name != "RetryAfter"
    and isinstance(getattr(midway, name), type)
    and issubclass(getattr(midway, name), BaseException)
]

REFUSALS = [
    "LeaseHeld",
    "LeaseLost",
    "InputDrift",
    "StoreCorrupt",
    "StoreTooNew",
    "StoreUnavailable",
]


def test_all_is_pinned() -> None:
    """Adding or removing a public name is a decision: change this list with it."""
    assert midway.__all__ == EXPECTED_ALL
    assert sorted(midway.__all__) == midway.__all__, "keep __all__ sorted"


def run_fresh(code: str) -> str:
    """Run ``code`` in a new interpreter (nothing of midway imported yet); its output."""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def public(names: list[str]) -> list[str]:
    return sorted(n for n in names if not n.startswith("_") or n == "__version__")


def test_public_names_are_exactly_all() -> None:
    """What ``import midway`` offers is ``__all__``, no more: no submodule (``midway.job``,
    ``midway.stores``...) shows up as if it were public, before or after the names loaded on
    first use are used. Checked in a fresh interpreter, as a user's script sees it (this test
    process has imported more)."""
    listed = json.loads(
        run_fresh(
            "import json, midway\n"
            "before = sorted(vars(midway))\n"
            "listed = dir(midway)\n"
            "for name in midway.__all__:\n"
            "    getattr(midway, name)\n"
            "print(json.dumps([before, listed, sorted(vars(midway)), dir(midway)]))"
        )
    )
    bound_at_import, listed_at_import, bound_after_use, listed_after_use = listed
    assert set(public(bound_at_import)) < set(EXPECTED_ALL)
    assert public(listed_at_import) == EXPECTED_ALL
    assert public(bound_after_use) == EXPECTED_ALL
    assert public(listed_after_use) == EXPECTED_ALL


def test_lazy_names_are_the_real_ones() -> None:
    """A name loaded on first use is the object of its home module, also through
    ``from midway import ...`` in a fresh interpreter."""
    out = run_fresh(
        "from midway import Job, JobStatus, jobs\n"
        "import midway.job, midway.ops.models, midway.ops.api\n"
        "print(Job is midway.job.Job, JobStatus is midway.ops.models.JobStatus,"
        " jobs is midway.ops.api.jobs)\n"
    )
    assert out.split() == ["True", "True", "True"]


def test_submodules_stay_importable_by_full_name() -> None:
    """The submodules are not public names, but code that names them in full keeps working."""
    out = run_fresh(
        "import midway\n"
        "import midway.stores\n"
        "from midway import errors\n"
        "from midway.stores import open_store\n"
        "assert midway.stores.open_store is open_store\n"
        "assert errors.MidwayError is midway.MidwayError\n"
        "assert midway.job.Job is midway.Job\n"
        "import types\n"
        "print(isinstance(midway.sources, types.ModuleType))\n"
        "try:\n"
        "    midway.no_such_name\n"
        "except AttributeError as exc:\n"
        "    print(exc)\n"
    )
    assert out.splitlines() == ["True", "module 'midway' has no attribute 'no_such_name'"]


# A line of the tree in errors.py's docstring: where the name starts tells its depth.
TREE_LINE = re.compile(r"^(?P<lead>[ |+-]*)(?P<name>[A-Z]\w+)(?:\s+(?P<code>\d+(?: / \d+)?))?")


def drawn_tree() -> dict[str, tuple[str | None, str | None]]:
    """``{class name: (parent drawn above it, exit code drawn)}`` from errors' docstring."""
    doc = errors.__doc__ or ""
    block = doc.split("::", 1)[1].split("\n\n")[1]
    tree: dict[str, tuple[str | None, str | None]] = {}
    at_depth: dict[int, str] = {}
    for line in block.splitlines():
        match = TREE_LINE.match(line)
        assert match, f"not a line of the tree: {line!r}"
        depth = len(match["lead"]) // 4
        at_depth[depth] = match["name"]
        tree[match["name"]] = (at_depth.get(depth - 1), match["code"])
    return tree


def test_the_exception_tree_drawn_in_errors_is_the_real_one() -> None:
    """The drawing is how a reader learns the tree: every exception, its parent, its code."""
    tree = drawn_tree()
    assert sorted(n for n in tree if n not in ("BaseException", "Exception", "SystemExit")) == (
        sorted(EXCEPTIONS)
    )
    for name in EXCEPTIONS:
        cls = getattr(midway, name)
        parent, code = tree[name]
        assert cls.__bases__[0].__name__ == parent, name
        if cls is midway.Stopped:
            assert code == "130 / 143"
        else:
            assert code == str(cls.exit_code), name


@pytest.mark.parametrize("name", EXPECTED_ALL)
def test_every_public_name_resolves(name: str) -> None:
    assert getattr(midway, name) is not None


SOURCES = [
    "csv",
    "dataframe",
    "files",
    "iterable",
    "jsonl",
    "lines",
    "pages",
    "parquet",
    "sequence",
    "shards",
    "sql",
]


def test_sources_namespace() -> None:
    """The sources are public names too: pinned like ``midway.__all__``."""
    callables = [n for n in midway.sources.__all__ if n[0].islower()]
    assert callables == SOURCES
    for name in SOURCES:
        assert callable(getattr(midway.sources, name)), name


def test_version_is_a_string() -> None:
    assert isinstance(midway.__version__, str)
    assert midway.__version__.count(".") >= 1


@pytest.mark.parametrize("name", EXCEPTIONS)
def test_every_exception_is_a_midway_error(name: str) -> None:
    assert len(EXCEPTIONS) == 15, EXCEPTIONS
    cls = getattr(midway, name)
    if cls is midway.Stopped:  # a stop is not an error: see test_stopped_is_not_an_exception
        assert issubclass(cls, SystemExit)
        assert not issubclass(cls, Exception)
        return
    assert issubclass(cls, Exception)
    assert issubclass(cls, midway.MidwayError)


def test_every_exception_in_errors_module_is_a_midway_error() -> None:
    """Also catches an exception class added to errors.py but not exported."""
    found = [
        obj
        for obj in vars(errors).values()
        if isinstance(obj, type) and issubclass(obj, BaseException)
    ]
    assert found
    for cls in found:
        assert issubclass(cls, midway.Stopped if cls is midway.Stopped else midway.MidwayError)
        if cls is not midway.MidwayError:
            assert getattr(midway, cls.__name__) is cls, f"{cls.__name__} is not exported"


def test_exit_codes() -> None:
    assert midway.MidwayError.exit_code == 1
    assert midway.ConfigError.exit_code == 2
    assert midway.JobNotFound.exit_code == 2
    assert midway.RefusedError.exit_code == 3
    assert midway.SourceError.exit_code == 1
    assert midway.StateNotSerializable.exit_code == 1


@pytest.mark.parametrize("name", REFUSALS)
def test_refusals_exit_3(name: str) -> None:
    cls = getattr(midway, name)
    assert issubclass(cls, midway.RefusedError)
    assert cls.exit_code == 3


def test_refusal_instances_carry_their_data() -> None:
    held = midway.LeaseHeld("held", owner={"pid": 1})
    assert held.owner == {"pid": 1}
    assert held.exit_code == 3
    drift = midway.InputDrift("drift", saved={"size": 1}, current={"size": 2})
    assert (drift.saved, drift.current) == ({"size": 1}, {"size": 2})
    bad = midway.StateNotSerializable("bad", path="ctx.state['x']")
    assert bad.path == "ctx.state['x']"


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)]
)
def test_stopped_exit_code_is_128_plus_signal(signum: int, code: int) -> None:
    result = RunResult(job="j", status="stopped")
    stopped = midway.Stopped("stopped", signal_number=signum, result=result)
    assert stopped.code == code
    assert stopped.exit_code == code
    assert stopped.result is result
    assert isinstance(stopped, SystemExit)
    assert not isinstance(stopped, midway.MidwayError)
    assert "stopped" in str(stopped)


def test_py_typed_ships_with_the_package() -> None:
    marker = importlib.resources.files("midway") / "py.typed"
    assert marker.is_file(), "PEP 561 marker missing: type checkers would ignore midway's hints"
