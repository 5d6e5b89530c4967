"""midway: make long-running, item-by-item work resumable.

    job = midway.Job("import-contacts", every=100)
    result = job.run(midway.sources.csv("contacts.csv", key="id"), handle)

Kill it at item 7,000, run it again, and it resumes at the last checkpoint.
"""

from midway import sources
from midway._model.ledger import ItemRecord
from midway._model.result import RunResult
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
from midway.job import Job, Loop
from midway.run.context import Context
from midway.run.failures import Retry, RetryAfter
from midway.run.reducers import Append, Last, Max, Min, Sum

__version__ = "0.1.0"

__all__ = [
    "Append",
    "ConfigError",
    "Context",
    "InputDrift",
    "ItemRecord",
    "Job",
    "JobNotFound",
    "Last",
    "LeaseHeld",
    "LeaseLost",
    "Loop",
    "Max",
    "MidwayError",
    "Min",
    "RefusedError",
    "Retry",
    "RetryAfter",
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
    "sources",
]
