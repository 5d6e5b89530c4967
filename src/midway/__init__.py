"""midway: make long-running, item-by-item work resumable.

    job = midway.Job("import-contacts", every=100)
    result = job.run(midway.sources.csv("contacts.csv", key="id"), handle)

Kill it at item 7,000, run it again, and it resumes at the last checkpoint. Where a job
stands, from any process: ``job.status()``, or ``midway.jobs()`` for every job in a store.

The names on ``midway`` are exactly ``__all__``. The submodules the imports below load stay
importable by their full names (``import midway.stores``, ``from midway import errors``) but
are not names of the package: see the end of this file.
"""

import importlib as _importlib
import typing as _typing
from types import ModuleType as _ModuleType

from midway import sources
from midway.errors import (
    ConfigError,
    InputDrift,
    JobNotFound,
    LeaseHeld,
    LeaseLost,
    MidwayError,
    RefusedError,
    SourceError,
    StateNotSerializable,
    Stopped,
    StoreCorrupt,
    StoreNotFound,
    StoreTooNew,
    StoreUnavailable,
    TooManyFailures,
)

if _typing.TYPE_CHECKING:
    from midway._model.ledger import ItemRecord
    from midway._model.result import RunResult
    from midway.job import Job, Loop
    from midway.ops.api import jobs
    from midway.ops.models import CheckpointInfo, JobStatus, NoteInfo, PartitionStatus, RunInfo
    from midway.run.context import Context
    from midway.run.failures import Retry, RetryAfter
    from midway.run.reducers import Append, Last, Max, Min, Sum

__version__ = "0.1.0"

__all__ = [
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


_HOME = {
    "Append": "midway.run.reducers",
    "CheckpointInfo": "midway.ops.models",
    "Context": "midway.run.context",
    "ItemRecord": "midway._model.ledger",
    "Job": "midway.job",
    "JobStatus": "midway.ops.models",
    "Last": "midway.run.reducers",
    "Loop": "midway.job",
    "Max": "midway.run.reducers",
    "Min": "midway.run.reducers",
    "NoteInfo": "midway.ops.models",
    "PartitionStatus": "midway.ops.models",
    "Retry": "midway.run.failures",
    "RetryAfter": "midway.run.failures",
    "RunInfo": "midway.ops.models",
    "RunResult": "midway._model.result",
    "Sum": "midway.run.reducers",
    "jobs": "midway.ops.api",
}
"""The public names loaded on first use (PEP 562), and the module each comes from: a script
that only runs a job does not load the status API, and ``midway status`` does not load the
run's machinery. The exceptions and ``sources`` (itself loaded name by name) are bound now."""

_SUBMODULES = frozenset(
    {
        "cli",
        "console",
        "distributed",
        "each",
        "errors",
        "faults",
        "job",
        "ops",
        "run",
        "stores",
        "views",
        "web",
    }
)
"""The submodules reachable as ``midway.<name>`` without being public names: loaded on use."""


if not _typing.TYPE_CHECKING:  # hidden from type checkers, which would take any name as valid

    def __getattr__(name: str) -> object:
        """A public name of ``_HOME`` on first use (then bound here); ``midway.stores``
        after ``import midway.stores`` (whose name the package does not hold: see below)."""
        home = _HOME.get(name)
        if home is not None:
            value = getattr(_importlib.import_module(home), name)
            globals()[name] = value
            _unbind_submodules()
            return value
        if name in _SUBMODULES:
            return _importlib.import_module(f"midway.{name}")
        raise AttributeError(f"module 'midway' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def _unbind_submodules() -> None:
    """Importing a submodule binds its name in the package (``midway.job``, ``midway.run``...):
    unbind those that are not in __all__, so that what ``midway`` offers is only the public
    API."""
    names = globals()
    for name, value in list(names.items()):
        if isinstance(value, _ModuleType) and name not in __all__ and not name.startswith("_"):
            del names[name]


_unbind_submodules()
