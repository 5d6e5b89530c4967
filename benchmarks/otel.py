"""A run with an OpenTelemetry tracer provider set, for the benchmark's overhead rows.

The provider is the SDK's, with a batch processor and an exporter that drops what it gets:
what is measured is what midway adds (the run span, a span per checkpoint, the events), not
a collector's network. It is set for the measured run only and unset after it, so the rows
around it run without tracing, as a program without OpenTelemetry would.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


def available() -> bool:
    try:
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError:
        return False
    return True


def _unset() -> None:
    # The API lets a process set its provider once; the benchmark sets one per measured run.
    from opentelemetry import trace
    from opentelemetry.util._once import Once

    trace._TRACER_PROVIDER_SET_ONCE = Once()  # type: ignore[attr-defined]
    trace._TRACER_PROVIDER = None  # type: ignore[attr-defined]


def traced(thunk: Callable[[], float]) -> float:
    """``thunk()`` (a timed run) with a tracer provider set; its elapsed seconds."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    class Drop(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Drop()))
    _unset()
    trace.set_tracer_provider(provider)
    try:
        return thunk()
    finally:
        provider.shutdown()
        _unset()


def traced_thunk(thunk: Callable[[], float]) -> Callable[[], Any]:
    return lambda: traced(thunk)
