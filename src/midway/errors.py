"""The exception tree: one root, ``MidwayError``; every message says what to do next.

Each class carries the process exit code the command line uses for it (``exit_code``):
1 failed, 2 bad usage, 3 refused, 130 / 143 stopped by a signal. ::

    BaseException
    +-- SystemExit
    |   +-- Stopped                 a SIGINT / SIGTERM stop, checkpoint written (130 / 143)
    +-- Exception
        +-- MidwayError             exit 1
            +-- ConfigError         exit 2
            |   +-- StoreNotFound
            +-- JobNotFound         exit 2
            +-- RefusedError        exit 3
            |   +-- LeaseHeld
            |   +-- LeaseLost
            |   +-- InputDrift
            |   +-- StoreCorrupt
            |   +-- StoreTooNew
            |   +-- StoreUnavailable
            +-- StateNotSerializable
            +-- SourceError
            +-- TooManyFailures

``Stopped`` is not an error: like ``KeyboardInterrupt`` it passes through ``except
Exception:`` and ``except midway.MidwayError:``, so that a script wrapping a job in
either still ends with 130 / 143 (what a container orchestrator expects of a stop).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from midway._model.result import RunResult

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3


class MidwayError(Exception):
    """Root of every error midway raises. ``exit_code`` is what the CLI exits with."""

    exit_code: int = EXIT_FAILED


class ConfigError(MidwayError):
    """A job, source or store was set up with an option that cannot work."""

    exit_code = EXIT_USAGE


class StoreNotFound(ConfigError):
    """A command that only reads was pointed at a store that does not exist."""


class JobNotFound(MidwayError):
    """A command named a job the store does not know."""

    exit_code = EXIT_USAGE


class RefusedError(MidwayError):
    """midway refused to go on because going on could lose or corrupt work."""

    exit_code = EXIT_REFUSED


class LeaseHeld(RefusedError):
    """Another live runner owns the job."""

    def __init__(self, message: str, *, owner: dict[str, Any]) -> None:
        super().__init__(message)
        self.owner = owner


class LeaseLost(RefusedError):
    """This runner's lease was taken over; it stops instead of writing."""


class InputDrift(RefusedError):
    """The input no longer matches the one the checkpoint was taken from."""

    def __init__(self, message: str, *, saved: dict[str, Any], current: dict[str, Any]) -> None:
        super().__init__(message)
        self.saved = saved
        self.current = current


class StoreCorrupt(RefusedError):
    """The store cannot be read: garbage, truncated, or half-written."""


class StoreTooNew(RefusedError):
    """The store was written by a newer midway whose schema this one does not know."""


class StoreUnavailable(RefusedError):
    """The store cannot be opened or written (permissions, missing directory, full disk)."""


class StateNotSerializable(MidwayError):
    """``ctx.state`` holds a value that JSON cannot represent."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


class SourceError(MidwayError):
    """The input could not be read (missing file, unreadable record)."""


class TooManyFailures(MidwayError):
    """More items failed than ``max_failures`` tolerates: the job stopped (exit 1) with a
    checkpoint; fix the cause, then run it again (and ``midway retry`` the failed items)."""


class Stopped(SystemExit):
    """The run stopped on SIGINT / SIGTERM after writing a checkpoint.

    A ``SystemExit`` carrying 130 or 143 and not a ``MidwayError`` (nor an ``Exception``): a
    stop is not a failure. A script that does not catch it ends with that exit code and no
    traceback; the line saying where it stopped is already printed. Catch it by name.
    """

    exit_code: int

    def __init__(self, message: str, *, signal_number: int, result: RunResult) -> None:
        super().__init__(message)
        self.code = 128 + signal_number
        self.exit_code = self.code
        self.signal_number = signal_number
        self.result = result
