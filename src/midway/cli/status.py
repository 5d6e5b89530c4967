"""``midway status``: every job in one table.

Its own module so that the command most often typed loads only what it shows (the status
API and the store), not what ``show``, ``failed`` and ``report`` need.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from midway._model.owner import describe_age
from midway._model.redaction import redact_url
from midway._model.result import RunStatus
from midway.cli.options import json_option, store_option
from midway.cli.output import STATUS_STYLE, cell, clip, open_existing, print_json, safe, terminal
from midway.console import printable
from midway.errors import StoreNotFound
from midway.ops.status import all_statuses
from midway.stores import absolute_url, default_url
from midway.views.waiting import waiting_items

if TYPE_CHECKING:  # rich is imported where a table is drawn: not for --json, nor "no jobs"
    from rich.console import Console
    from rich.text import Text

    from midway.ops.models import CheckpointInfo, JobStatus, PartitionStatus
    from midway.views.waiting import WaitingView

SHOWN_QUESTIONS = 3
"""``status`` shows a job's oldest questions, this many."""


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
    if not jobs:  # plain text: no need to load rich
        click.echo(f"No jobs in {printable(store.url)} yet. Run one, or try: midway demo")
        return
    console = terminal()
    from rich.table import Table

    table = Table(title=f"midway jobs in {safe(store.url)}", title_justify="left")
    for column in ("job", "status", "progress", "failed", "checkpoint", "rate", "ETA", "owner"):
        table.add_column(column, justify="right" if column in ("failed", "rate") else "left")
    for job in jobs:
        table.add_row(*_status_cells(job))
        for part in job.partitions or ():
            table.add_row(*partition_cells(part))
    console.print(table)
    for job in jobs:
        if job.waiting:
            _print_waiting_line(console, job, asked.get(job.job, []))


def _progress(processed: int, total: int | None) -> str:
    if not total:
        return f"{processed:,}"
    return f"{processed:,} / {total:,} ({100 * processed / total:.0f}%)"


def _checkpoint_text(checkpoint: CheckpointInfo | None, age: float | None) -> str:
    if checkpoint is None:
        return "none"
    return f"#{checkpoint.version} {describe_age(age or 0.0)}" if age is not None else "none"


def _status_cells(job: JobStatus) -> list[Text | str]:
    style = STATUS_STYLE.get(job.status, "")
    owner = job.owner or ""
    if job.partitions is not None:
        checkpoint = f"{job.partitions_done}/{len(job.partitions)} partitions done"
        owner = f"{len(job.workers)} worker{'s' * (len(job.workers) != 1)}" if job.workers else ""
    else:
        checkpoint = _checkpoint_text(job.checkpoint, job.checkpoint_age_seconds)
    return [
        cell(job.job),
        f"[{style}]{job.status}[/]" if style else cell(job.status),
        _progress(job.processed, job.total),
        f"{job.failed:,}" if job.failed else "",
        checkpoint,
        f"{job.rate:,.0f}/s" if job.rate else "",
        f"{job.eta_seconds:,.0f} s" if job.eta_seconds is not None else "",
        cell(owner),
    ]


def partition_cells(part: PartitionStatus) -> list[Text | str]:
    """A partition's row, under its whole job's: the worker holding it and its lease."""
    style = STATUS_STYLE.get(part.status, "")
    return [
        cell("  ~" + part.job.rpartition("~")[2]),
        f"[{style}]{part.status}[/]" if style else cell(part.status),
        _progress(part.processed, part.total),
        f"{part.failed:,}" if part.failed else "",
        f"#{part.checkpoint.version}" if part.checkpoint else "none",
        "",
        "",
        cell(_lease_text(part)),
    ]


def _lease_text(part: PartitionStatus) -> str:
    owner, expires = part.owner or "", part.lease_expires_in_seconds
    if expires is not None and owner:
        owner += f" (lease {expires:.0f} s)" if expires >= 1 else " (lease ending)"
    elif expires is not None and part.status == RunStatus.CRASHED:
        owner = f"lease expired {-expires:,.0f} s ago" if expires < 0 else "worker gone"
    return owner


def _print_waiting_line(console: Console, row: JobStatus, asked: list[WaitingView]) -> None:
    """Under ``status``: a job with items waiting for a person, its oldest questions, and
    how to see them all."""
    console.print(
        f"  {safe(row.job)}: {row.waiting:,} item(s) wait for a decision "
        f"(midway show {safe(row.job)} lists them, midway approve decides)"
    )
    for view in asked:
        key = json.dumps(view["key"], ensure_ascii=False)
        console.print(f"    {safe(key)}: {safe(clip(str(view['question']), 100))}")
