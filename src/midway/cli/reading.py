"""The commands that read a job: ``status``, ``show``, ``failed`` and ``report``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from midway._model.ledger import FAILED, RETRY, SKIPPED, ItemStatus
from midway._model.owner import describe_age, iso
from midway._model.redaction import redact_url
from midway._model.result import RunStatus
from midway.cli.options import file_option, json_option, store_option
from midway.cli.output import (
    STATUS_STYLE,
    cell,
    clip,
    open_existing,
    print_json,
    safe,
    terminal,
)
from midway.console import printable
from midway.errors import StoreNotFound
from midway.stores import absolute_url, default_url
from midway.views import overview
from midway.views.models import JobDetail, RunView, StatusRow

if TYPE_CHECKING:  # rich is imported where a table is drawn: not for --json, nor "no jobs"
    from rich.console import Console
    from rich.text import Text


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
        rows = overview.status_rows(store)
    finally:
        store.close()
    if as_json:
        print_json([row.to_json() for row in rows])
        return
    if not rows:  # plain text: no need to load rich
        click.echo(f"No jobs in {printable(store.url)} yet. Run one, or try: midway demo")
        return
    console = terminal()
    from rich.table import Table

    table = Table(title=f"midway jobs in {safe(store.url)}", title_justify="left")
    for column in ("job", "status", "progress", "failed", "checkpoint", "rate", "ETA", "owner"):
        table.add_column(column, justify="right" if column in ("failed", "rate") else "left")
    for row in rows:
        table.add_row(*_status_cells(row))
    console.print(table)


def _status_cells(row: StatusRow) -> list[Text | str]:
    status = row.status
    style = STATUS_STYLE.get(status, "")
    total = row.total
    progress = f"{row.processed:,}"
    if total:
        progress += f" / {total:,} ({100 * row.processed / total:.0f}%)"
    age = row.checkpoint_age_seconds
    rate = row.rate_per_second
    eta = row.eta_seconds
    job, owner = row.job, row.owner or ""
    if row.partition_of:  # under its whole job's row
        job = "  ~" + job.rpartition("~")[2]
        expires = row.lease_expires_in_seconds
        if expires is not None and owner:
            owner += f" (lease {expires:.0f} s)" if expires >= 1 else " (lease ending)"
        elif expires is not None and status == RunStatus.CRASHED:
            owner = f"lease expired {-expires:,.0f} s ago" if expires < 0 else "worker gone"
    if row.partitions is not None:
        checkpoint = f"{row.partitions_done}/{row.partitions['planned']} partitions done"
        workers = row.workers
        owner = f"{len(workers)} worker{'s' * (len(workers) != 1)}" if workers else ""
    else:
        checkpoint = f"#{row.checkpoint} {describe_age(age)}" if age is not None else "none"
    return [
        cell(job),
        f"[{style}]{status}[/]" if style else cell(status),
        progress,
        f"{row.failed:,}" if row.failed else "",
        checkpoint,
        f"{rate:,.0f}/s" if rate else "",
        f"{eta:,.0f} s" if eta is not None else "",
        cell(owner),
    ]


@click.command()
@click.argument("job")
@store_option
@json_option
def show(job: str, store_url: str | None, as_json: bool) -> None:
    """One job: checkpoint, counters, state, failed / in-doubt items and runs.

    JOB is the job's name, or its key (name@hash) when several params share a name.

    \b
    Example:
      midway show import-contacts
      midway show import-contacts --json
    """
    store = open_existing(store_url)
    try:
        detail = overview.job_detail(store, overview.resolve(store, job))
    finally:
        store.close()
    if as_json:
        print_json(detail.to_json())
        return
    console = terminal()
    _print_facts(console, detail)
    if detail.items:
        _print_items(console, detail)
    if detail.notes:
        console.print("[bold]notes[/]")
        for entry in detail.notes:
            console.print(
                printable(f"  {entry['at']}  {entry['author']}: {entry['text']}"), markup=False
            )
    if detail.runs:
        _print_runs(console, detail.runs[:10])


def _print_facts(console: Console, detail: JobDetail) -> None:
    """``show``'s heading and its lines of label and value."""
    style = STATUS_STYLE.get(detail.status, "")
    console.print(f"[bold]{safe(detail.job)}[/]  [{style}]{safe(detail.status)}[/]")
    lines = [
        ("params", json.dumps(detail.params, ensure_ascii=False)),
        (
            "processed",
            f"{detail.processed:,}" + (f" of {detail.total:,}" if detail.total else ""),
        ),
        ("succeeded", f"{detail.succeeded:,}"),
        ("failed", f"{detail.failed:,}"),
        ("skipped", f"{detail.skipped:,}"),
        ("in doubt", f"{detail.in_doubt:,}"),
        (
            "checkpoint",
            "none (the next run starts fresh)"
            if detail.checkpoint is None
            else f"#{detail.checkpoint} at {detail.updated_at} "
            f"({describe_age(detail.checkpoint_age_seconds or 0.0)})",
        ),
        ("position", json.dumps(detail.position, ensure_ascii=False)),
        ("state", clip(json.dumps(detail.state, ensure_ascii=False), 400)),
        ("owner", detail.owner or "nobody"),
    ]
    command = detail.resume_command
    if detail.checkpoint is not None and command:
        lines.append(("resume", f"run the same command again: {command}"))
        if detail.resume_note:
            lines.append(("", detail.resume_note))
    for label, value in lines:
        console.print(f"  [dim]{label:>10}[/]  {safe(value)}", markup=True)


def _print_items(console: Console, detail: JobDetail) -> None:
    """The items needing attention (the first 50), and what to do about them."""
    from rich.table import Table

    items = Table(title="items needing attention", title_justify="left")
    for column in ("key", "status", "attempts", "when", "error"):
        items.add_column(column)
    for item in detail.items[:50]:
        items.add_row(
            cell(json.dumps(item["key"])),
            cell(item["status"]),
            str(item["attempts"]),
            cell(item["updated_at"] or ""),
            cell(clip(item["error"] or "", 100)),
        )
    if len(detail.items) > 50:
        console.print(
            f"  ... and {len(detail.items) - 50:,} more: "
            f"midway failed {safe(detail.job)} --export FILE (or show --json)"
        )
    console.print(items)
    statuses = {item["status"] for item in detail.items}
    if ItemStatus.FAILED in statuses:
        console.print(f"  retry the failed items with: midway retry {safe(detail.job)}")
    if ItemStatus.IN_DOUBT in statuses:
        console.print(
            f"  in doubt: check whether they took effect, then: midway resolve "
            f"{safe(detail.job)} KEY... --done (or --retry)"
        )


def _print_runs(console: Console, runs: list[RunView]) -> None:
    from rich.table import Table

    table = Table(title="runs (newest first)", title_justify="left")
    for column in ("started", "status", "host:pid", "items", "note"):
        table.add_column(column)
    for run in runs:
        done = (
            "" if run["processed"] is None else f"{run['start_processed']:,} → {run['processed']:,}"
        )
        table.add_row(
            cell(run["started_at"] or ""),
            cell(run["status"]),
            cell(f"{run['host']}:{run['pid']}"),
            done,
            cell(clip(run["message"] or "", 80)),
        )
    console.print(table)


@click.command()
@click.argument("job")
@file_option("--export", help="Write the items to this file as JSON Lines (- for standard output).")
@click.option("--skipped", is_flag=True, help="Include skipped items.")
@store_option
@json_option
def failed(
    job: str, export: str | None, skipped: bool, store_url: str | None, as_json: bool
) -> None:
    """The items that failed: key, error, attempts, when, and the item itself.

    \b
    Example:
      midway failed import-contacts
      midway failed import-contacts --export failed.jsonl
    """
    statuses = (FAILED, RETRY, SKIPPED) if skipped else (FAILED, RETRY)
    store = open_existing(store_url)
    try:
        record = overview.resolve(store, job)
        items = store.list_items(record.job, statuses)
    finally:
        store.close()
    rows = [item.to_export() for item in items]
    if export is not None:
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        if export == "-":
            click.echo(text, nl=False)
        else:
            with open(export, "w", encoding="utf-8") as out:
                out.write(text)
            click.echo(f"{len(rows):,} item(s) of job {record.job!r} written to {export}", err=True)
        return
    if as_json:
        print_json(rows)
        return
    if not rows:
        click.echo(f"Job {record.job!r} has no failed items.")
        return
    from rich.table import Table

    table = Table(title=f"failed items of {safe(record.job)}", title_justify="left")
    for column in ("key", "status", "attempts", "when", "error"):
        table.add_column(column)
    for item in items:
        table.add_row(
            cell(json.dumps(item.key)),
            cell(item.status),
            str(item.attempts),
            iso(item.updated_at) or "",
            cell(clip(item.error or "", 100)),
        )
    terminal().print(table)


@click.command()
@click.argument("job")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["md", "html", "json"]),
    default="md",
    show_default=True,
    help="Markdown, a self-contained HTML page, or JSON.",
)
@file_option("--output", "-o", help="Write to this file instead of standard output.")
@store_option
def report(job: str, fmt: str, output: str | None, store_url: str | None) -> None:
    """The handoff document: where the job stands and how to carry on.

    Counts and a progress bar, throughput over time, the ETA, the most common errors with
    example keys, in-doubt items and how to resolve them, the runs, the notes, and the
    command that resumes the work.

    \b
    Example:
      midway report import-contacts > handoff.md
      midway report import-contacts --format html -o handoff.html
    """
    from midway.views import report as report_module

    store = open_existing(store_url)
    try:
        data = report_module.gather(store, overview.resolve(store, job))
    finally:
        store.close()
    if fmt == "json":
        text = json.dumps(data.to_json(), indent=2, ensure_ascii=False) + "\n"
    elif fmt == "html":
        text = report_module.html_page(data)
    else:
        text = report_module.markdown(data)
    if output is None:
        click.echo(text, nl=False)
        return
    with open(output, "w", encoding="utf-8") as out:
        out.write(text)
    click.echo(f"report on {data.job!r} written to {output}", err=True)
