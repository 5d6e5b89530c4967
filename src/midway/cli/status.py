"""``midway status``: every job in one table.

Its own module so that the command most often typed loads only what it shows (the status
API and the store), not what ``show``, ``failed`` and ``report`` need.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from midway._model.owner import describe_age
from midway._model.printable import printable
from midway._model.redaction import redact_url
from midway._model.result import RunStatus
from midway.cli import columns
from midway.cli.options import json_option, store_option
from midway.cli.output import STATUS_STYLE, clip, open_existing, print_json
from midway.errors import StoreNotFound
from midway.ops.status import all_statuses
from midway.stores import absolute_url, default_url
from midway.views.waiting import waiting_items

if TYPE_CHECKING:
    from midway.ops.models import CheckpointInfo, JobStatus, PartitionStatus
    from midway.views.waiting import WaitingView

SHOWN_QUESTIONS = 3
"""``status`` shows a job's oldest questions, this many."""

HEADERS = ("job", "status", "progress", "failed", "checkpoint", "rate", "ETA", "owner")


@click.command()
@store_option
@json_option
def status(store_url: str | None, as_json: bool) -> None:
    """Every job: state, progress, last checkpoint age, rate and ETA.

    A distributed job shows as one row for the whole job (how many of its partitions are
    done, how many workers hold the others), then a row per partition with the worker
    holding it and when that worker's lease runs out unless its heartbeat renews it.

    \b
    Example:
      midway status
      midway status --json --store sqlite:///jobs.db
    """
    try:
        store = open_existing(store_url)
    except StoreNotFound:
        if as_json:
            print_json([])
        else:
            click.echo(
                "No jobs yet: there is no store at "
                f"{redact_url(absolute_url(store_url or default_url()))}. "
                "Run a job, or try: midway demo"
            )
        return
    try:
        jobs = all_statuses(store)
        asked = {
            job.job: waiting_items(store, job.job, decided=False)[:SHOWN_QUESTIONS]
            for job in jobs
            if job.waiting and not as_json
        }
    finally:
        store.close()
    if as_json:
        print_json([job.to_json() for job in jobs])
        return
    if not jobs:
        click.echo(f"No jobs in {printable(store.url)} yet. Run one, or try: midway demo")
        return
    rows: list[list[columns.Cell]] = []
    for job in jobs:
        rows.append(_status_cells(job))
        rows.extend(partition_cells(part) for part in job.partitions or ())
    click.echo(f"midway jobs in {printable(store.url)}\n")
    for line in columns.render(HEADERS, rows, right=frozenset({"failed", "rate", "ETA"})):
        click.echo(line)
    for job in jobs:
        if job.waiting:
            _print_waiting_line(job, asked.get(job.job, []))


def _progress(processed: int, total: int | None) -> str:
    if not total:
        return f"{processed:,}"
    return f"{processed:,} / {total:,} ({100 * processed / total:.0f}%)"


def _checkpoint_text(checkpoint: CheckpointInfo | None, age: float | None) -> str:
    if checkpoint is None:
        return "none"
    return f"#{checkpoint.version} {describe_age(age or 0.0)}" if age is not None else "none"


def _status_cells(job: JobStatus) -> list[columns.Cell]:
    owner = job.owner or ""
    if job.partitions is not None:
        checkpoint = f"{job.partitions_done}/{len(job.partitions)} partitions done"
        owner = f"{len(job.workers)} worker{'s' * (len(job.workers) != 1)}" if job.workers else ""
    else:
        checkpoint = _checkpoint_text(job.checkpoint, job.checkpoint_age_seconds)
    return [
        job.job,
        (job.status, STATUS_STYLE.get(job.status, "")),
        _progress(job.processed, job.total),
        f"{job.failed:,}" if job.failed else "",
        checkpoint,
        f"{job.rate:,.0f}/s" if job.rate else "",
        f"{job.eta_seconds:,.0f} s" if job.eta_seconds is not None else "",
        owner,
    ]


def partition_cells(part: PartitionStatus) -> list[columns.Cell]:
    """A partition's row, under its whole job's: the worker holding it and its lease."""
    return [
        "  ~" + part.job.rpartition("~")[2],
        (part.status, STATUS_STYLE.get(part.status, "")),
        _progress(part.processed, part.total),
        f"{part.failed:,}" if part.failed else "",
        f"#{part.checkpoint.version}" if part.checkpoint else "none",
        "",
        "",
        _lease_text(part),
    ]


def _lease_text(part: PartitionStatus) -> str:
    owner, expires = part.owner or "", part.lease_expires_in_seconds
    if expires is not None and owner:
        owner += f" (lease {expires:.0f} s)" if expires >= 1 else " (lease ending)"
    elif expires is not None and part.status == RunStatus.CRASHED:
        owner = f"lease expired {-expires:,.0f} s ago" if expires < 0 else "worker gone"
    return owner


def _print_waiting_line(row: JobStatus, asked: list[WaitingView]) -> None:
    """Under ``status``: a job with items waiting for a person, its oldest questions, and
    how to see them all."""
    job = printable(row.job)
    click.echo(
        f"  {job}: {row.waiting:,} item(s) wait for a decision "
        f"(midway show {job} lists them, midway approve decides)"
    )
    for view in asked:
        key = json.dumps(view["key"], ensure_ascii=False)
        click.echo(f"    {printable(key)}: {printable(clip(str(view['question']), 100))}")
