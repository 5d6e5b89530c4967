"""OpenTelemetry: a run is a ``midway.run`` span, each checkpoint commit a child span, and
failures are events, checked with the SDK's in-memory exporter; a run SIGKILLed in a real
process and resumed leaves two run spans of the same job (tests/support/spanfile.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once

import midway
from midway.run import tracing
from midway.stores import open_store
from support import spanfile
from support.itemjob import ItemJob, ItemSpec

SUPPORT = Path(__file__).resolve().parent / "support"


def _unset_provider() -> None:
    # The API sets its global provider once per process; the tests restore "none set" so
    # that no other test runs traced.
    trace._TRACER_PROVIDER_SET_ONCE = Once()  # type: ignore[attr-defined]
    trace._TRACER_PROVIDER = None  # type: ignore[attr-defined]


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    _unset_provider()
    trace.set_tracer_provider(provider)
    try:
        yield memory
    finally:
        provider.shutdown()
        _unset_provider()


def spans(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


def parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent else None


def span_id(span: ReadableSpan) -> int:
    ctx = span.get_span_context()
    assert ctx is not None
    return ctx.span_id


def test_a_run_span_with_checkpoint_spans_failure_events_and_the_handlers_spans(
    tmp_path: Path, exporter: InMemorySpanExporter
) -> None:
    tracer = trace.get_tracer("the-handler")

    def handle(item: int, ctx: midway.Context) -> None:
        if item == 0:
            with tracer.start_as_current_span("call-api"):
                pass
        if item in (3, 17):
            raise ValueError(f"item {item} refused")
        if item == 9:
            raise KeyError("no such row")

    job = midway.Job(
        "traced",
        store=f"sqlite:///{tmp_path / 'state.db'}",
        every=5,
        every_seconds=None,
        max_lag=0,  # each checkpoint commits on the job's thread, in turn
        max_failures=10,
        skip_on=KeyError,
        quiet=True,
    )
    result = job.run(range(23), handle)
    assert (result.failed, result.skipped) == (2, 1)

    (run,) = spans(exporter, "midway.run")
    attributes = dict(run.attributes or {})
    assert attributes["midway.job"] == "traced"
    assert attributes["midway.run_id"] == result.run_id
    assert attributes["midway.guarantee"] == "at-least-once"
    assert attributes["midway.resumed_from"] == ""
    assert attributes["midway.status"] == "completed_with_failures"
    assert (attributes["midway.succeeded"], attributes["midway.failed"]) == (20, 2)
    assert attributes["midway.skipped"] == 1

    checkpoints = spans(exporter, "midway.checkpoint")
    versions = [dict(s.attributes or {})["midway.checkpoint.version"] for s in checkpoints]
    assert versions == [1, 2, 3, 4]  # at 5, 10, 15, 20 items; the end records the last 3
    items = [dict(s.attributes or {})["midway.checkpoint.items"] for s in checkpoints]
    assert items == [5, 5, 5, 5]
    rows = [dict(s.attributes or {})["midway.checkpoint.ledger_rows"] for s in checkpoints]
    assert sum(rows) == 3  # the two failed items and the skipped one
    assert all(parent_id(s) == span_id(run) for s in checkpoints)
    assert all(
        dict(s.attributes or {})["midway.checkpoint.commit_seconds"] > 0 for s in checkpoints
    )

    (own,) = spans(exporter, "call-api")
    assert parent_id(own) == span_id(run), "the handler's span nests under the run"

    failures = [e for e in run.events if e.name == "midway.item.failed"]
    outcomes = [(dict(e.attributes or {}))["midway.status"] for e in failures]
    keys = [(dict(e.attributes or {}))["midway.key"] for e in failures]
    assert list(zip(keys, outcomes, strict=True)) == [
        (3, "failed"),
        (9, "skipped"),
        (17, "failed"),
    ]


def test_group_commit_spans_are_children_of_the_run_and_retries_are_events(
    tmp_path: Path, exporter: InMemorySpanExporter
) -> None:
    tries: dict[int, int] = {}

    def handle(item: int, ctx: midway.Context) -> None:
        tries[item] = tries.get(item, 0) + 1
        if item == 40 and tries[item] == 1:
            raise TimeoutError("slow upstream")

    job = midway.Job(
        "grouped",
        store=f"sqlite:///{tmp_path / 'state.db'}",
        every=10,
        every_seconds=None,
        retry=midway.Retry(attempts=2, backoff=0.01),
        quiet=True,
    )
    job.run(range(200), handle)
    (run,) = spans(exporter, "midway.run")
    checkpoints = spans(exporter, "midway.checkpoint")
    assert checkpoints
    assert all(parent_id(s) == span_id(run) for s in checkpoints)
    versions = [dict(s.attributes or {})["midway.checkpoint.version"] for s in checkpoints]
    assert versions == sorted(set(versions))  # one span per commit, in order
    items = [dict(s.attributes or {})["midway.checkpoint.items"] for s in checkpoints]
    assert all(n > 0 and n % 10 == 0 for n in items), items  # a skipped one rides along
    (retry,) = [e for e in run.events if e.name == "midway.item.retry"]
    assert dict(retry.attributes or {})["midway.key"] == 40
    assert not [e for e in run.events if e.name == "midway.item.failed"]


def test_a_drift_refusal_is_an_event_and_an_error(
    tmp_path: Path, exporter: InMemorySpanExporter
) -> None:
    data = tmp_path / "rows.txt"
    data.write_text("a\nb\nc\n")
    job = midway.Job("drifting", store=f"sqlite:///{tmp_path / 'state.db'}", quiet=True)
    for _ in job.loop(midway.sources.lines(data)):
        break
    data.write_text("a\nb\nc\nd\n")
    with pytest.raises(midway.InputDrift):
        job.run(midway.sources.lines(data), lambda item, ctx: None)
    refused = spans(exporter, "midway.run")[-1]
    assert [e.name for e in refused.events] == ["midway.run.drift_refused", "exception"]
    assert refused.status.status_code == trace.StatusCode.ERROR


def test_no_provider_no_tracing(tmp_path: Path) -> None:
    _unset_provider()
    assert tracing.tracing() is tracing.OFF
    blocker = tmp_path / "blocker" / "opentelemetry"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('not installed')\n")
    url = f"sqlite:///{tmp_path / 's.db'}"
    script = (
        "import midway, midway.run.tracing as t\n"
        "assert t.tracing() is t.OFF\n"
        f"job = midway.Job('plain', store={url!r}, quiet=True)\n"
        "print(job.run(range(10), lambda item, ctx: None).status)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(blocker.parent)},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "completed"


def wait_for_checkpoint_span(path: Path, url: str, job: str) -> None:
    """Until the held run's last commit is on disk and its span has ended (twice in a row,
    0.2 s apart: no commit was in flight)."""
    deadline = time.monotonic() + 30
    seen = None
    while time.monotonic() < deadline:
        store = open_store(url)
        try:
            record = store.get_job(job)
        finally:
            store.close()
        version = record.checkpoint.version if record and record.checkpoint else None
        ended = [
            s["attributes"]["midway.checkpoint.version"]
            for s in (spanfile.read(str(path)) if path.exists() else [])
            if s["phase"] == "end" and s["name"] == "midway.checkpoint"
        ]
        if version is not None and version in ended:
            if seen == version:
                return
            seen = version
        time.sleep(0.2)
    raise AssertionError("the held run's checkpoint span did not end in 30 s")


def test_a_killed_run_and_its_resume_are_two_run_spans_of_the_job(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import os, spanfile\nspanfile.install(os.environ['MIDWAY_TEST_SPANS'])\n"
    )
    path = tmp_path / "spans.jsonl"
    env = {"PYTHONPATH": os.pathsep.join([str(site), str(SUPPORT)]), "MIDWAY_TEST_SPANS": str(path)}
    store = f"sqlite:///{tmp_path / 'state.db'}"
    spec = ItemSpec(store=store, n=30, every=5, refuse=[4, 22], hold=[17], max_failures=5)
    job = ItemJob(tmp_path / "job", spec)
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        job.hold(17)
        first = job.start()
        job.wait_for(0, 16)
        wait_for_checkpoint_span(path, store, job.key)
        first.kill()  # SIGKILL while the run span is open
        first.communicate(timeout=30)
        job.release(17)
        second = job.run()
    finally:
        os.environ.clear()
        os.environ.update(saved)
        job.stop_all()
    assert second.returncode == 0, second.stderr
    found = spanfile.read(str(path))
    starts = [s for s in found if s["phase"] == "start" and s["name"] == "midway.run"]
    ends = [s for s in found if s["phase"] == "end" and s["name"] == "midway.run"]
    assert len(starts) == 2
    assert {s["attributes"]["midway.job"] for s in starts} == {job.key}
    killed, resumed = starts
    assert killed["pid"] != resumed["pid"]
    (ended,) = ends  # the killed run's span never ended
    assert ended["span_id"] == resumed["span_id"]
    attributes = ended["attributes"]
    assert attributes["midway.resumed_from"] == killed["attributes"]["midway.run_id"]
    assert attributes["midway.status"] == "completed_with_failures"
    assert attributes["midway.failed"] == 2
    assert attributes["midway.processed"] == 30
    failures = [e for e in ended["events"] if e["name"] == "midway.item.failed"]
    assert [e["attributes"]["midway.key"] for e in failures] == [22]  # no logging set up
    (takeover,) = [e for e in ended["events"] if e["name"] == "midway.run.takeover"]
    assert takeover["attributes"]["midway.previous_pid"] == killed["pid"]
    killed_checkpoints = [
        s
        for s in found
        if s["phase"] == "end"
        and s["name"] == "midway.checkpoint"
        and s["parent_id"] == killed["span_id"]
    ]
    assert killed_checkpoints, "the killed run's commits were children of its run span"
    resumed_at = job.handled(1)[0]
    last = max(s["attributes"]["midway.checkpoint.version"] for s in killed_checkpoints)
    assert attributes["midway.resumed_version"] == last
    assert resumed_at % 5 == 0
    assert json.dumps(found)  # every line was JSON
