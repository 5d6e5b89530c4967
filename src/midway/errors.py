"""The exception tree: one root, ``MidwayError``; every message says what to do next.

Each class carries the process exit code the command line uses for it (``exit_code``):
1 failed, 2 bad usage, 3 refused, 128 + the signal for a stop (and ``EXIT_WAITING``, 4, for
a run that reached the end of its input with items waiting for a person's decision: not an
error, see ``ctx.approval``). The whole tree, with the
exit code of each class (a test checks this drawing against the classes)::

    BaseException
    +-- SystemExit
    |   +-- Stopped                   130 / 143  a SIGINT / SIGTERM stop, checkpoint written
    +-- Exception
        +-- MidwayError               1    the root of every midway error
            +-- ConfigError           2    an option that cannot work
            |   +-- StoreNotFound     2    a read-only command named a missing store
            +-- JobNotFound           2    the store does not know the job
            +-- RefusedError          3    going on could lose or corrupt work
            |   +-- LeaseHeld         3    another live runner owns the job
            |   +-- LeaseLost         3    this runner's lease was taken over
            |   +-- InputDrift        3    the input changed since the checkpoint
            |   +-- StoreCorrupt      3    the store is damaged
            |   +-- StoreTooNew       3    a newer midway wrote the store
            |   +-- StoreUnavailable  3    the store cannot be opened or written
            +-- StateNotSerializable  1    ``ctx.state`` holds a value JSON cannot hold
            +-- SourceError           1    the input could not be read
            +-- TooManyFailures       1    more items failed than ``max_failures`` allows

``Stopped`` is not an error: like ``KeyboardInterrupt`` it passes through ``except
Exception:`` and ``except midway.MidwayError:``, so that a script wrapping a job in
either still ends with 130 / 143 (what a container orchestrator expects of a stop).

This module imports nothing of midway: every layer may import it.
"""

from __future__ import annotations

from typing import Any

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_WAITING = 4
"""A run ended ``waiting``: items wait for ``midway approve``; run the job again after it."""


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

    ``result`` is the run's :class:`midway.RunResult` (typed ``Any`` here so that this
    module imports nothing of midway).
    """

    exit_code: int
    result: Any

    def __init__(self, message: str, *, signal_number: int, result: Any) -> None:
        super().__init__(message)
        self.code = 128 + signal_number
        self.exit_code = self.code
        self.signal_number = signal_number
        self.result = result
