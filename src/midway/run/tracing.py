"""OpenTelemetry traces of a run, when the program has a tracer provider (``midway[otel]``
brings the API; the program brings the SDK and an exporter).

    midway.run          one span per run, from the lease to the end. Attributes:
                        midway.job, midway.run_id, midway.guarantee, midway.resumed_from
                        (the run id of the checkpoint it resumed from, or ""), and at the end
                        midway.status and the counters (midway.processed, midway.succeeded,
                        midway.failed, midway.skipped, midway.in_doubt,
                        midway.processed_this_run).
    midway.checkpoint   a child span per checkpoint commit, on whichever thread commits it
                        (the keeper thread for group commit): midway.checkpoint.version,
                        midway.checkpoint.items (items since the commit before),
                        midway.checkpoint.ledger_rows, midway.checkpoint.commit_seconds.

Item failures, retries, skips, in-doubt items, lease takeovers, a lost lease and input drift
are events on the run span (``midway.item.failed`` with ``midway.key``, ``midway.status``,
``midway.error``...), never a span per item. While ``job.run`` calls the handler on the
job's thread the run span is the current span, so the handler's own spans (an HTTP
client's) nest under it.

Whether to trace is decided once, when the run starts: without opentelemetry installed, or
with no tracer provider set, the run holds :data:`OFF`, whose methods do nothing, and the
per-item path has no call to it at all.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from midway._model.checkpoint import Checkpoint, Counters
from midway._model.jsonutil import JSONValue
from midway.errors import InputDrift

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

TRACED_EVENTS = frozenset(
    {
        "item.failed",
        "item.retry",
        "run.takeover",
        "run.drift",
        "run.drift_refused",
        "run.lease_lost",
        "run.warning",
        "run.retry_queue",
    }
)
"""The events of the JSON log that are also events of the run span."""

_NOTHING = contextlib.nullcontext()


class Tracing:
    """No tracing (:data:`OFF`): every method does nothing. :class:`RunTrace` traces."""

    def start(self, job: str, run_id: str, guarantee: str, processed: int) -> None:
        """The run began (its lease is held): open the run span."""

    def resumed(self, resumed_from: dict[str, JSONValue] | None) -> None:
        """The opening is done: where the run resumed from, if it did."""

    def current(self) -> contextlib.AbstractContextManager[Any]:
        """The run span as the current span, while the handler runs on this thread."""
        return _NOTHING

    def checkpoint(self, cp: Checkpoint) -> contextlib.AbstractContextManager[Any]:
        """Around one checkpoint's commit, on the thread that commits it."""
        return _NOTHING

    def event(self, event: str, fields: dict[str, Any]) -> None:
        """An event of the run (see :data:`TRACED_EVENTS`)."""

    def error(self, exc: BaseException) -> None:
        """The exception that ends the run."""

    def end(self, status: str | None, counters: Counters, processed_at_start: int) -> None:
        """The run ended (safe to call twice): its status and counters, then the span ends."""


OFF = Tracing()


def tracing() -> Tracing:
    """:class:`RunTrace` when opentelemetry is installed and a tracer provider is set, else
    :data:`OFF`."""
    try:
        from opentelemetry import trace
    except ImportError:
        return OFF
    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return OFF  # nothing set: every span would be dropped
    return RunTrace(provider.get_tracer("midway"))


def _attribute(value: Any) -> Any:
    """A span attribute value: str, bool, int, float as they are; anything else as JSON."""
    if isinstance(value, str | bool | int | float):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


class RunTrace(Tracing):
    """One run's span, its checkpoints' spans and its events."""

    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer
        self.span: Span | None = None
        self.context: Any = None
        self.committed_processed = 0
        self.ended = False

    def start(self, job: str, run_id: str, guarantee: str, processed: int) -> None:
        from opentelemetry import trace

        self.span = self.tracer.start_span(
            "midway.run",
            attributes={
                "midway.job": job,
                "midway.run_id": run_id,
                "midway.guarantee": guarantee,
                "midway.resumed_from": "",
            },
        )
        self.context = trace.set_span_in_context(self.span)
        self.committed_processed = processed

    def resumed(self, resumed_from: dict[str, JSONValue] | None) -> None:
        if self.span is None or not resumed_from:
            return
        processed = resumed_from.get("processed")
        self.committed_processed = processed if isinstance(processed, int) else 0
        self.span.set_attribute("midway.resumed_from", str(resumed_from.get("run_id") or ""))
        self.span.set_attribute("midway.resumed_version", _attribute(resumed_from.get("version")))

    def current(self) -> contextlib.AbstractContextManager[Any]:
        if self.span is None:
            return _NOTHING
        from opentelemetry import trace

        return trace.use_span(self.span, end_on_exit=False)

    @contextlib.contextmanager
    def checkpoint(self, cp: Checkpoint) -> Iterator[None]:
        items = cp.counters.processed - self.committed_processed
        span = self.tracer.start_span(
            "midway.checkpoint",
            context=self.context,  # the keeper thread has no current span of its own
            attributes={
                "midway.job": cp.job,
                "midway.checkpoint.version": cp.version,
                "midway.checkpoint.items": items,
                "midway.checkpoint.ledger_rows": len(cp.ledger),
            },
        )
        began = time.perf_counter()
        try:
            yield
        except BaseException as exc:
            span.record_exception(exc)
            _set_error(span, exc)
            raise
        else:
            self.committed_processed = cp.counters.processed
        finally:
            span.set_attribute("midway.checkpoint.commit_seconds", time.perf_counter() - began)
            span.end()

    def event(self, event: str, fields: dict[str, Any]) -> None:
        if self.span is None or event not in TRACED_EVENTS:
            return
        attributes = {f"midway.{name}": _attribute(value) for name, value in fields.items()}
        self.span.add_event(f"midway.{event}", attributes=attributes)

    def error(self, exc: BaseException) -> None:
        if self.span is None or self.ended:
            return
        if isinstance(exc, InputDrift):
            self.event("run.drift_refused", {"error": str(exc)[:1000]})
        self.span.record_exception(exc)
        if not isinstance(exc, SystemExit):  # a stop by a signal is no error
            _set_error(self.span, exc)

    def end(self, status: str | None, counters: Counters, processed_at_start: int) -> None:
        if self.span is None or self.ended:
            return
        self.ended = True
        span = self.span
        span.set_attribute("midway.status", status or "")
        for name, value in counters.as_dict().items():
            span.set_attribute(f"midway.{name}", value)
        span.set_attribute("midway.processed", counters.processed)
        span.set_attribute("midway.processed_this_run", counters.processed - processed_at_start)
        span.end()


def _set_error(span: Span, exc: BaseException) -> None:
    from opentelemetry.trace import Status, StatusCode

    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:500]))
