"""The ``midway`` command: thin; it parses, calls the library, and prints.

Exit codes: 0 done; 1 failed; 2 bad usage; 3 refused (lease held, input drift, corrupt
store); 130 / 143 stopped by a signal with a checkpoint written.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from midway import overview
from midway.errors import MidwayError, StoreNotFound
from midway.owner import Owner, describe_age
from midway.stores import Store, default_url, open_store
from midway.web.command import ui

F = TypeVar("F", bound=Callable[..., Any])

STATUS_STYLE = {
    "running": "bold green",
    "completed": "green",
    "completed_with_failures": "yellow",
    "stopped": "yellow",
    "failed": "red",
    "crashed": "bold red",
}


def store_option(fn: F) -> F:
    return click.option(
        "--store",
        "store_url",
        metavar="URL",
        envvar="MIDWAY_STORE",
        default=None,
        help="Store URL (default: $MIDWAY_STORE, else sqlite:///.midway/state.db).",
    )(fn)


def json_option(fn: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(
        fn
    )


def _open(url: str | None) -> Store:
    """Commands only read: a mistyped --store is an error, not a new empty store."""
    return open_store(url or default_url(), create=False)


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="midway", prog_name="midway")
def cli() -> None:
    """Resumable item-by-item jobs: checkpoints that survive kill -9.

    \b
    Try it:   midway demo
    Then:     midway status
    """


@cli.command()
@store_option
@json_option
def status(store_url: str | None, as_json: bool) -> None:
    """Every job: state, progress, last checkpoint age, rate and ETA.

    \b
    Example:
      midway status
      midway status --json --store sqlite:///jobs.db
    """
    try:
        store = _open(store_url)
    except StoreNotFound:
        if as_json:
            _print_json([])
        else:
            click.echo(
                f"No jobs yet: there is no store at {store_url or default_url()}. "
                "Run a job, or try: midway demo"
            )
        return
    try:
        rows = [overview.job_summary(store, record) for record in store.list_jobs()]
    finally:
        store.close()
    if as_json:
        _print_json(rows)
        return
    console = _console()
    if not rows:
        console.print(f"No jobs in {store.url} yet. Run one, or try: midway demo")
        return
    table = Table(title=f"midway jobs in {store.url}", title_justify="left")
    for column in ("job", "status", "progress", "failed", "checkpoint", "rate", "ETA", "owner"):
        table.add_column(column, justify="right" if column in ("failed", "rate") else "left")
    for row in rows:
        table.add_row(*_status_cells(row))
    console.print(table)


def _status_cells(row: dict[str, Any]) -> list[str]:
    status = row["status"]
    style = STATUS_STYLE.get(status, "")
    total = row["total"]
    progress = f"{row['processed']:,}"
    if total:
        progress += f" / {total:,} ({100 * row['processed'] / total:.0f}%)"
    age = row["checkpoint_age_seconds"]
    rate = row["rate_per_second"]
    eta = row["eta_seconds"]
    return [
        row["job"],
        f"[{style}]{status}[/]" if style else status,
        progress,
        f"{row['failed']:,}" if row["failed"] else "",
        f"#{row['checkpoint']} {describe_age(age)}" if age is not None else "none",
        f"{rate:,.0f}/s" if rate else "",
        f"{eta:,.0f} s" if eta is not None else "",
        row["owner"] or "",
    ]


@cli.command()
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
    store = _open(store_url)
    try:
        detail = overview.job_detail(store, overview.resolve(store, job))
    finally:
        store.close()
    if as_json:
        _print_json(detail)
        return
    console = _console()
    style = STATUS_STYLE.get(detail["status"], "")
    console.print(f"[bold]{detail['job']}[/]  [{style}]{detail['status']}[/]")
    lines = [
        ("params", json.dumps(detail["params"], ensure_ascii=False)),
        (
            "processed",
            f"{detail['processed']:,}" + (f" of {detail['total']:,}" if detail["total"] else ""),
        ),
        ("succeeded", f"{detail['succeeded']:,}"),
        ("failed", f"{detail['failed']:,}"),
        ("skipped", f"{detail['skipped']:,}"),
        ("in doubt", f"{detail['in_doubt']:,}"),
        (
            "checkpoint",
            "none (the next run starts fresh)"
            if detail["checkpoint"] is None
            else f"#{detail['checkpoint']} at {detail['updated_at']} "
            f"({describe_age(detail['checkpoint_age_seconds'])})",
        ),
        ("position", json.dumps(detail["position"], ensure_ascii=False)),
        ("state", _clip(json.dumps(detail["state"], ensure_ascii=False), 400)),
        ("owner", detail["owner"] or "nobody"),
    ]
    command = next((run["command"] for run in detail["runs"] if run.get("command")), None)
    if detail["checkpoint"] is not None and command:
        lines.append(("resume", f"run the same command again: {command}"))
    for label, value in lines:
        console.print(f"  [dim]{label:>10}[/]  {value}", markup=True)
    if detail["items"]:
        items = Table(title="items needing attention", title_justify="left")
        for column in ("key", "status", "attempts", "error"):
            items.add_column(column)
        for item in detail["items"][:50]:
            items.add_row(
                json.dumps(item["key"]),
                item["status"],
                str(item["attempts"]),
                _clip(item["error"] or "", 100),
            )
        console.print(items)
    if detail["runs"]:
        runs = Table(title="runs (newest first)", title_justify="left")
        for column in ("started", "status", "host:pid", "items", "note"):
            runs.add_column(column)
        for run in detail["runs"][:10]:
            done = (
                ""
                if run["processed"] is None
                else f"{run['start_processed']:,} → {run['processed']:,}"
            )
            runs.add_row(
                run["started_at"] or "",
                run["status"],
                f"{run['host']}:{run['pid']}",
                done,
                _clip(run["message"] or "", 80),
            )
        console.print(runs)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


@cli.command()
@click.argument("job")
@click.option("--yes", is_flag=True, help="Do it without asking.")
@store_option
def reset(job: str, yes: bool, store_url: str | None) -> None:
    """Forget a job: its checkpoint, item ledger, summary and run history.

    The next run starts from the first item. Refused while a runner holds the job.

    \b
    Example:
      midway reset import-contacts --yes
    """
    store = _open(store_url)
    try:
        record = overview.resolve(store, job)
        if not yes:
            if not sys.stdin.isatty():
                raise click.UsageError(
                    f"reset forgets everything about {record.job!r}; add --yes to confirm"
                )
            click.confirm(f"Forget job {record.job!r} and its checkpoint?", abort=True)
        store.reset(record.job, Owner.current())
    finally:
        store.close()
    click.echo(f"Job {record.job!r} reset: its next run starts from the first item.")


@cli.command()
@click.option(
    "--dir",
    "workdir",
    type=click.Path(file_okay=False),
    default=None,
    help="Keep the demo's files (contacts.csv, crm.db) in this folder.",
)
@click.option("--count", default=10_000, show_default=True, help="Contacts to import.")
@click.option("--every", default=100, show_default=True, help="Checkpoint every N contacts.")
@click.option(
    "--crash-at",
    type=int,
    default=None,
    help="Contact at which the first run kills itself (default: about 62%).",
)
@store_option
def demo(
    workdir: str | None, count: int, every: int, crash_at: int | None, store_url: str | None
) -> None:
    """Import 10,000 contacts, crash with SIGKILL midway, resume, and verify.

    The checkpoint goes to the store (default sqlite:///.midway/state.db); the contacts
    go to a separate SQLite "CRM" in a temporary folder (or --dir).

    \b
    Example:
      midway demo
      midway demo --count 2000 --crash-at 1500 --dir demo-files
    """
    from midway import demo as demo_module

    if count < 10 or every < 1:
        raise click.UsageError("--count must be at least 10 and --every at least 1")
    if crash_at is not None and not 0 < crash_at <= count:
        raise click.UsageError(f"--crash-at must be between 1 and --count ({count})")
    ok = demo_module.run_demo(
        store_url=store_url or default_url(),
        workdir=workdir,
        count=count,
        every=every,
        crash_at=crash_at if crash_at is not None else int(count * 0.6237),
    )
    if not ok:
        sys.exit(1)


cli.add_command(ui)


def main() -> None:
    """Entry point: maps midway's errors to their exit codes with a one-paragraph message."""
    try:
        code = cli.main(prog_name="midway", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except MidwayError as exc:
        click.echo(f"midway: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
