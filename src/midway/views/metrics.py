"""Every job of a store as Prometheus metrics: what ``/metrics`` serves and ``midway metrics``
prints, in the text exposition format.

The metrics are read from the store at each scrape (a custom collector over the status rows
of :mod:`midway.views.overview`), so they hold wherever the jobs run: one process, many
machines, a job killed and resumed. Labels are the job's key and a small closed set of
values; they never carry an item key.

    midway_items_total{job, outcome}          items done, by outcome: succeeded, failed,
                                              skipped, in_doubt (counter)
    midway_checkpoints_total{job}             checkpoints written since the job last started
                                              fresh (counter; absent once it completed)
    midway_runs_total{job, status}            runs recorded, by how they ended (counter)
    midway_job_running{job}                   1 while a runner holds the job, else 0
    midway_job_items_remaining{job}           items left, when the total is known
    midway_job_progress_ratio{job}            processed / total (1 once completed)
    midway_job_eta_seconds{job}               time left at the current rate, while running
    midway_checkpoint_age_seconds{job}        seconds since the last checkpoint
    midway_lease_expires_in_seconds{job}      until the runner's lease runs out unless renewed
    midway_partitions{job, state}             a distributed job's partitions in each state

A distributed job shows as its partitions (each a job of its own, with every metric) and as
the whole job, which has the gauges and ``midway_partitions`` but not the counters: a sum of
``midway_items_total`` over every ``job`` counts each item once.

``prometheus_client`` is imported only when metrics are asked for (the ``ui`` extra).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from midway._model.result import FINISHED_OK, RunStatus
from midway.errors import ConfigError
from midway.stores import RunRecord, Store
from midway.views import overview
from midway.views.models import StatusRow

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

OUTCOMES = ("succeeded", "failed", "skipped", "in_doubt")
MAX_RUNS_COUNTED = 100_000
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The media type of the text format (what ``prometheus_client`` serves it as)."""


def prometheus() -> None:
    """Raise a ``ConfigError`` naming the extra when ``prometheus_client`` cannot be imported."""
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        raise ConfigError(
            "Prometheus metrics need prometheus_client, which is not installed; install it "
            "with: pip install 'midway[ui]'"
        ) from None


def metrics_text(store: Store | None) -> str:
    """Every job of ``store`` in the Prometheus text format (None: a store not made yet,
    which has no jobs)."""
    prometheus()
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(store))
    return generate_latest(registry).decode("utf-8")


class StoreCollector:
    """A ``prometheus_client`` collector that reads the store at each ``collect``."""

    def __init__(self, store: Store | None) -> None:
        self.store = store

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        rows = [] if self.store is None else overview.status_rows(self.store)
        families = Families()
        for row in rows:
            families.add_row(row)
            if row.partitions is None:  # a job with a record of its own: its counters
                assert self.store is not None
                families.add_counters(row, self.store.list_runs(row.job, MAX_RUNS_COUNTED))
        yield from families.all()


class Families:
    """The metric families of one scrape, filled row by row."""

    def __init__(self) -> None:
        from prometheus_client.core import CounterMetricFamily as counter
        from prometheus_client.core import GaugeMetricFamily as gauge

        job = ["job"]
        self.items = counter("midway_items", "Items done, by outcome.", labels=[*job, "outcome"])
        self.checkpoints = counter(
            "midway_checkpoints", "Checkpoints written since the job last started.", labels=job
        )
        self.runs = counter("midway_runs", "Runs recorded, by status.", labels=[*job, "status"])
        self.running = gauge("midway_job_running", "1 while a runner holds the job.", labels=job)
        self.remaining = gauge(
            "midway_job_items_remaining", "Items left, when the total is known.", labels=job
        )
        self.progress = gauge(
            "midway_job_progress_ratio", "Processed items over the total.", labels=job
        )
        self.eta = gauge("midway_job_eta_seconds", "Seconds left at the current rate.", labels=job)
        self.age = gauge(
            "midway_checkpoint_age_seconds", "Seconds since the last checkpoint.", labels=job
        )
        self.lease = gauge(
            "midway_lease_expires_in_seconds",
            "Seconds until the runner's lease runs out unless renewed.",
            labels=job,
        )
        self.partitions = gauge(
            "midway_partitions", "A distributed job's partitions, by state.", labels=[*job, "state"]
        )

    def all(self) -> list[Metric]:
        return [
            self.items,
            self.checkpoints,
            self.runs,
            self.running,
            self.remaining,
            self.progress,
            self.eta,
            self.age,
            self.lease,
            self.partitions,
        ]

    def add_row(self, row: StatusRow) -> None:
        job = [row.job]
        self.running.add_metric(job, 1.0 if row.status == RunStatus.RUNNING else 0.0)
        for family, value in (
            (self.remaining, row.remaining),
            (self.progress, progress_ratio(row)),
            (self.eta, row.eta_seconds),
            (self.age, row.checkpoint_age_seconds),
            (self.lease, row.lease_expires_in_seconds),
        ):
            if value is not None:
                family.add_metric(job, float(value))
        for state, count in (row.partitions or {}).items():
            if state != "planned":
                self.partitions.add_metric([row.job, state], float(count))

    def add_counters(self, row: StatusRow, runs: list[RunRecord]) -> None:
        for outcome in OUTCOMES:
            self.items.add_metric([row.job, outcome], float(getattr(row, outcome)))
        if row.checkpoint is not None:
            self.checkpoints.add_metric([row.job], float(row.checkpoint))
        statuses: dict[str, int] = {}
        for run in runs:
            statuses[run.status] = statuses.get(run.status, 0) + 1
        for status, count in sorted(statuses.items()):
            self.runs.add_metric([row.job, status], float(count))


def progress_ratio(row: StatusRow) -> float | None:
    """processed / total, 1 for a completed job, None while the total is unknown."""
    if row.status in FINISHED_OK:
        return 1.0
    if not row.total:
        return None
    return min(row.processed / row.total, 1.0)
