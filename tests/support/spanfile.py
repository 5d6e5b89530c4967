"""Spans to a JSON-lines file, for a job in a subprocess that a test kills: each span is
written when it starts (a killed run's span never ends, so an exporter would never see it)
and again when it ends, with its events and status.

A process installs it from a ``sitecustomize`` module (see tests/test_tracing.py), so the
job script itself knows nothing of OpenTelemetry.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

from opentelemetry import context, trace
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider


def _ids(span: ReadableSpan) -> dict[str, Any]:
    ctx = span.get_span_context()
    parent = span.parent
    return {
        "name": span.name,
        "trace_id": f"{ctx.trace_id:032x}" if ctx else None,
        "span_id": f"{ctx.span_id:016x}" if ctx else None,
        "parent_id": f"{parent.span_id:016x}" if parent else None,
        "attributes": dict(span.attributes or {}),
        "pid": os.getpid(),
    }


class JsonLinesProcessor(SpanProcessor):
    """Appends a line per span start and per span end to ``path``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.Lock()

    def _write(self, data: dict[str, Any]) -> None:
        line = json.dumps(data, default=str) + "\n"
        with self.lock, open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def on_start(self, span: Span, parent_context: context.Context | None = None) -> None:
        self._write({"phase": "start", **_ids(span)})

    def on_end(self, span: ReadableSpan) -> None:
        events = [{"name": e.name, "attributes": dict(e.attributes or {})} for e in span.events]
        status = span.status.status_code.name
        self._write({"phase": "end", **_ids(span), "events": events, "status": status})


def install(path: str) -> None:
    """Make this process's tracer provider write its spans to ``path``."""
    provider = TracerProvider()
    provider.add_span_processor(JsonLinesProcessor(path))
    trace.set_tracer_provider(provider)


def read(path: str) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
