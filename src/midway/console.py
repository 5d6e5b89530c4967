"""Where midway's own words go: the ``midway`` logger if logging is set up, else stderr;
one JSON object per line on stderr with ``MIDWAY_LOG_FORMAT=json`` (``midway --log-format
json``).

The JSON lines have a stable schema. Every line has these keys, in this order:

    ts        when, UTC, ISO 8601 with milliseconds: "2026-12-07T05:12:03.481Z"
    level     "debug", "info", "warning" or "error"
    event     what happened, a dotted name from the list below ("log" for a line of the
              ``midway`` logger that names no event)
    job       the job's key ("import-contacts", "import@3f2a9c1b"), or null
    run_id    the run's id (32 hex digits, as ``midway show`` lists runs), or null
    message   the sentence the plain format prints

then the event's own fields. The events and their fields:

    run.started         source; fresh: true (no checkpoint), or retry_only: true
    run.resumed         version, processed, position, saved_at (the checkpoint it resumes)
    run.takeover        previous_pid, previous_host (the runner whose lease it took)
    run.drift           policy ("restart" or "continue"), changes (list of text)
    run.finished        status, processed, succeeded, failed, skipped, in_doubt,
                        processed_this_run, elapsed_seconds
    run.left            processed (``job.loop`` left early; a checkpoint is saved)
    run.lease_lost      (another runner took the job over; this one wrote nothing more)
    run.other_params    other_job, processed (an unfinished job of the same name)
    run.retry_queue     (the items `midway retry` put back, handled first)
    run.warning         (anything else a run warns about)
    item.failed         key, status ("failed", "skipped" or "in_doubt"), error, attempts
    item.retry          key, attempt, attempts, delay_seconds, error
    checkpoint          version, position (debug level)
    progress            processed, total, failed, rate_per_second, eta_seconds
    hook.failed         hook, error

What ``midway each`` and ``midway worker`` say of themselves is ``log``, with job and
run_id null. A field added later is a new key; a key listed here keeps its name and
meaning. The plain format (the default, also on a terminal) prints the message alone.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from typing import Any

from midway._model.logformat import FORMAT_VARIABLE, LOG_FORMATS
from midway._model.printable import printable
from midway.errors import ConfigError

log = logging.getLogger("midway")
EVENT = "midway_event"
FIELDS = "midway_fields"


def logging_configured() -> bool:
    return bool(log.handlers or logging.getLogger().handlers)


def heard(level: int) -> bool:
    """Would ``say(..., level=level, quiet=True)`` reach anyone (a logger that takes it)?"""
    return log.isEnabledFor(level)


def log_format() -> str:
    """``plain`` or ``json``, from ``MIDWAY_LOG_FORMAT`` (unset or empty: plain)."""
    value = os.environ.get(FORMAT_VARIABLE, "").strip().lower() or "plain"
    if value not in LOG_FORMATS:
        raise ConfigError(
            f"{FORMAT_VARIABLE}={value[:40]!r} is not a log format: use plain or json"
        )
    return value


def say(
    message: str,
    *,
    level: int = logging.INFO,
    quiet: bool = False,
    event: str = "log",
    **fields: Any,
) -> None:
    """To the ``midway`` logger once logging is set up (or the JSON format is asked for);
    else to stderr, unless ``quiet``.

    ``event`` and ``fields`` are what the JSON format adds to the message (see the module
    docstring); a handler of the user's finds them on the record as ``midway_event`` and
    ``midway_fields``."""
    extra = {EVENT: event, FIELDS: fields}
    if log_format() == "json":
        use_log_format()
        log.log(level, message, extra=extra)
    elif logging_configured():  # the exact text: the handlers decide how to show it
        log.log(level, message, extra=extra)
    elif not quiet:
        print(f"midway: {printable(message, lines=True)}", file=sys.stderr, flush=True)


class JsonLines(logging.Formatter):
    """One JSON object per record, in the schema of the module docstring."""

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = dict(getattr(record, FIELDS, None) or {})
        data: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "event": getattr(record, EVENT, None) or "log",
            "job": fields.pop("job", None),
            "run_id": fields.pop("run_id", None) or None,
            "message": record.getMessage(),
        }
        for name, value in fields.items():
            data.setdefault(name, value)
        if record.exc_info and record.exc_info[1] is not None:
            data.setdefault("error", f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]}")
        return json.dumps(data, ensure_ascii=False, default=str)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time (a test may have replaced it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.setStream(sys.stderr)
        super().emit(record)


def use_log_format() -> None:
    """Check ``MIDWAY_LOG_FORMAT`` (a ``ConfigError`` if it names no format); with json,
    the ``midway`` logger writes JSON lines to stderr from now on, and only there."""
    if log_format() != "json" or any(isinstance(h, _StderrHandler) for h in log.handlers):
        return
    handler = _StderrHandler()
    handler.setFormatter(JsonLines())
    log.addHandler(handler)
    log.propagate = False  # asked for JSON on stderr: not the same line again through root
    if log.level == logging.NOTSET:
        log.setLevel(logging.INFO)


def say_from_signal_handler(message: str) -> None:
    """A raw write: safe inside a signal handler, where locks may be held."""
    with contextlib.suppress(OSError):
        os.write(2, f"\nmidway: {message}\n".encode())
