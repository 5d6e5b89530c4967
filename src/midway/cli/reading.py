"""The commands that read a job: ``show``, ``failed`` and ``report`` (``status``: status.py)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from midway._model.ledger import FAILED, RETRY, SKIPPED, ItemStatus
from midway._model.owner import describe_age, iso
from midway._model.printable import printable
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
from midway.cli.status import partition_cells
from midway.ops import actions, digest
from midway.ops.models import PartitionStatus
from midway.ops.status import detail_json, status_of
from midway.views import whole
from midway.views.models import JobDetail, RunView

if TYPE_CHECKING:  # rich is imported where a table is drawn: not for --json, nor "no jobs"
    from rich.console import Console


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
        target = whole.find(store, job)
        state, detail = status_of(store, target), whole.detail(store, target)
    finally:
        store.close()
    if as_json:
        print_json(detail_json(state, detail))
        return
    console = terminal()
    _print_facts(console, detail)
    if state.partitions is not None:
        _print_partitions(console, state.partitions)
    if any(item["status"] != ItemStatus.WAITING for item in detail.items):
        _print_items(console, detail)  # the waiting ones: a table of their own
    if detail.waiting_items:
        _print_waiting(console, detail)
    if detail.notes:
        console.print("[bold]notes[/]")
        for entry in detail.notes:
            console.print(
                printable(f"  {entry['at']}  {entry['author']}: {entry['text']}"), markup=False
            )
    if detail.runs:
        _print_runs(console, detail.runs[:10])


def _print_partitions(console: Console, parts: tuple[PartitionStatus, ...]) -> None:
    from rich.table import Table

    table = Table(title="partitions", title_justify="left")
    for column in ("partition", "status", "progress", "failed", "checkpoint", "worker"):
        table.add_column(column)
    for part in parts:
        cells = [cell(value) for value in partition_cells(part)]
        table.add_row(*cells[:5], cells[7])
    console.print(table)


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
        ("waiting", f"{detail.waiting:,}"),
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
    if detail.partitions is not None:  # a distributed job: no checkpoint of its own
        lines[6:9] = [
            ("partitions", f"{detail.partitions_done}/{detail.partitions['planned']} done")
        ]
        lines[-1] = ("workers", ", ".join(detail.workers or ()) or "none now")
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
    listed = [item for item in detail.items if item["status"] != ItemStatus.WAITING]
    for item in listed[:50]:
        items.add_row(
            cell(json.dumps(item["key"])),
            cell(item["status"]),
            str(item["attempts"]),
            cell(item["updated_at"] or ""),
            cell(clip(item["error"] or "", 100)),
        )
    if len(listed) > 50:
        console.print(
            f"  ... and {len(listed) - 50:,} more: "
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


def _print_waiting(console: Console, detail: JobDetail) -> None:
    """``show``: the items waiting for a person, with their questions and data."""
    from rich.table import Table

    table = Table(title="items waiting for a decision", title_justify="left")
    for column in ("key", "status", "asked", "question", "data", "decision"):
        table.add_column(column)
    for view in detail.waiting_items[:50]:
        answer = (
            "" if view["approved"] is None else ("approved" if view["approved"] else "rejected")
        )
        if answer:
            answer += f" by {view['by']}"
        table.add_row(
            cell(json.dumps(view["key"], ensure_ascii=False)),
            cell(str(view["status"])),
            cell(str(view["asked_at"] or "")),
            cell(clip(str(view["question"]), 100)),
            cell(clip(json.dumps(view["data"], ensure_ascii=False), 80)),
            cell(answer),
        )
    console.print(table)
    console.print(
        f"  decide with: midway approve {safe(detail.job)} KEY... (--reject to say no, "
        "--all for every one); the next run hands them back"
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
        target = whole.find(store, job)
        items = [item for status in statuses for item in actions.items(store, target, status)]
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
            click.echo(f"{len(rows):,} item(s) of job {target.key!r} written to {export}", err=True)
        return
    if as_json:
        print_json(rows)
        return
    if not rows:
        click.echo(f"Job {target.key!r} has no failed items.")
        return
    from rich.table import Table

    table = Table(title=f"failed items of {safe(target.key)}", title_justify="left")
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
@click.argument("job", required=False)
@click.option(
    "--all", "every_job", is_flag=True, help="One status report for every job in the store."
)
@click.option(
    "--since",
    metavar="AGE",
    help="With --all: what finished and the notes in this window (7d, 12h, 30m, 2w).",
)
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
def report(
    job: str | None,
    every_job: bool,
    since: str | None,
    fmt: str,
    output: str | None,
    store_url: str | None,
) -> None:
    """The handoff document of JOB, or (--all) the status report of every job.

    For one job: counts and a progress bar, throughput over time, the ETA, the most common
    errors with example keys, in-doubt items and how to resolve them, the runs, the notes,
    and the command that resumes the work (a distributed job: its partitions too).

    With --all: what finished, what is running with its ETA, what failed or needs a person
    (with the commands), the notes left, and each job's throughput.

    \b
    Example:
      midway report import-contacts > handoff.md
      midway report import-contacts --format html -o handoff.html
      midway report --all --since 7d --format html -o weekly.html
    """
    if every_job == (job is not None):
        raise click.UsageError("name a JOB, or give --all for every job (not both)")
    if since is not None and not every_job:
        raise click.UsageError("--since goes with --all")
    window = digest.parse_since(since)
    store = open_existing(store_url)
    try:
        if job is None:
            what, text = "every job", digest.render(store, window, fmt)
        else:
            target = whole.find(store, job)
            what, text = repr(target.key), actions.report(store, target, fmt)
    finally:
        store.close()
    if output is None:
        click.echo(text, nl=False)
        return
    with open(output, "w", encoding="utf-8") as out:
        out.write(text)
    click.echo(f"report on {what} written to {output}", err=True)
