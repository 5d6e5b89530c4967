"""The ``midway`` command: thin; it parses, calls the library, and prints.

Exit codes: 0 done; 1 failed (also: a file that cannot be read or written, or an
unexpected error, each shown as one line; MIDWAY_DEBUG=1 shows the traceback); 2 bad usage;
3 refused (lease held, input drift, corrupt store); 130 / 143 stopped by a signal with a
checkpoint written. No error prints a traceback, except a worker script's own.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from midway._model.identity import partition_of
from midway._model.jsonutil import JSONValue
from midway._model.ledger import DROP, FAILED, IN_DOUBT, RETRY, SKIPPED
from midway._model.owner import Owner, describe_age, iso
from midway._model.redaction import redact_url
from midway.console import printable
from midway.each.command import each_command
from midway.errors import EXIT_FAILED, MidwayError, StoreNotFound
from midway.stores import Store, absolute_url, default_url, open_store
from midway.views import overview
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
        help="Store URL (default: $MIDWAY_STORE, else the nearest .midway/state.db at or above "
        "the working directory).",
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


def _cell(value: str) -> Text:
    """Text from the store in a table: no rich markup read in it, its controls escaped."""
    return Text(printable(value))


def _safe(value: str) -> str:
    """Text from the store inside a rich markup string."""
    return escape(printable(value))


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

    A distributed job shows as one row for the whole job (how many of its partitions are
    done, how many workers hold the others), then a row per partition with the worker
    holding it and when that worker's lease runs out unless its heartbeat renews it.

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
        _print_json(rows)
        return
    console = _console()
    if not rows:
        console.print(f"No jobs in {_safe(store.url)} yet. Run one, or try: midway demo")
        return
    table = Table(title=f"midway jobs in {_safe(store.url)}", title_justify="left")
    for column in ("job", "status", "progress", "failed", "checkpoint", "rate", "ETA", "owner"):
        table.add_column(column, justify="right" if column in ("failed", "rate") else "left")
    for row in rows:
        table.add_row(*_status_cells(row))
    console.print(table)


def _status_cells(row: dict[str, Any]) -> list[Text | str]:
    status = row["status"]
    style = STATUS_STYLE.get(status, "")
    total = row["total"]
    progress = f"{row['processed']:,}"
    if total:
        progress += f" / {total:,} ({100 * row['processed'] / total:.0f}%)"
    age = row["checkpoint_age_seconds"]
    rate = row["rate_per_second"]
    eta = row["eta_seconds"]
    job, owner = row["job"], row["owner"] or ""
    if row["partition_of"]:  # under its whole job's row
        job = "  ~" + job.rpartition("~")[2]
        expires = row["lease_expires_in_seconds"]
        if expires is not None and owner:
            owner += f" (lease {expires:.0f} s)" if expires >= 1 else " (lease ending)"
        elif expires is not None and status == "crashed":
            owner = f"lease expired {-expires:,.0f} s ago" if expires < 0 else "worker gone"
    if "partitions" in row:
        parts = row["partitions"]
        done = parts.get("completed", 0) + parts.get("completed_with_failures", 0)
        checkpoint = f"{done}/{parts['planned']} partitions done"
        workers = row["workers"]
        owner = f"{len(workers)} worker{'s' * (len(workers) != 1)}" if workers else ""
    else:
        checkpoint = f"#{row['checkpoint']} {describe_age(age)}" if age is not None else "none"
    return [
        _cell(job),
        f"[{style}]{status}[/]" if style else _cell(status),
        progress,
        f"{row['failed']:,}" if row["failed"] else "",
        checkpoint,
        f"{rate:,.0f}/s" if rate else "",
        f"{eta:,.0f} s" if eta is not None else "",
        _cell(owner),
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
    console.print(f"[bold]{_safe(detail['job'])}[/]  [{style}]{_safe(detail['status'])}[/]")
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
    command = detail["resume_command"]
    if detail["checkpoint"] is not None and command:
        lines.append(("resume", f"run the same command again: {command}"))
        if detail["resume_note"]:
            lines.append(("", detail["resume_note"]))
    for label, value in lines:
        console.print(f"  [dim]{label:>10}[/]  {_safe(value)}", markup=True)
    if detail["items"]:
        items = Table(title="items needing attention", title_justify="left")
        for column in ("key", "status", "attempts", "when", "error"):
            items.add_column(column)
        for item in detail["items"][:50]:
            items.add_row(
                _cell(json.dumps(item["key"])),
                _cell(item["status"]),
                str(item["attempts"]),
                _cell(item["updated_at"] or ""),
                _cell(_clip(item["error"] or "", 100)),
            )
        if len(detail["items"]) > 50:
            console.print(
                f"  ... and {len(detail['items']) - 50:,} more: "
                f"midway failed {_safe(detail['job'])} --export FILE (or show --json)"
            )
        console.print(items)
        statuses = {item["status"] for item in detail["items"]}
        if "failed" in statuses:
            console.print(f"  retry the failed items with: midway retry {_safe(detail['job'])}")
        if "in_doubt" in statuses:
            console.print(
                f"  in doubt: check whether they took effect, then: midway resolve "
                f"{_safe(detail['job'])} KEY... --done (or --retry)"
            )
    if detail["notes"]:
        console.print("[bold]notes[/]")
        for entry in detail["notes"]:
            console.print(
                printable(f"  {entry['at']}  {entry['author']}: {entry['text']}"), markup=False
            )
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
                _cell(run["started_at"] or ""),
                _cell(run["status"]),
                _cell(f"{run['host']}:{run['pid']}"),
                done,
                _cell(_clip(run["message"] or "", 80)),
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
        if store.get_job(job) is None and _reset_partitions(store, job, yes):
            return
        record = overview.resolve(store, job)
        if not yes:
            if not sys.stdin.isatty():
                raise click.UsageError(
                    f"reset forgets everything about {record.job!r}; add --yes to confirm"
                )
            click.confirm(f"Forget job {record.job!r} and its checkpoint?", abort=True)
        store.reset(record.job, Owner.current())
        parts = [r.job for r in store.list_jobs() if partition_of(r.job) == record.job]
        for part in parts:  # a distributed job's partitions
            store.reset(part, Owner.current())
    finally:
        store.close()
    also = f" (and its {len(parts)} partitions)" if parts else ""
    click.echo(f"Job {record.job!r}{also} reset: its next run starts from the first item.")


def _keys(values: tuple[str, ...]) -> list[JSONValue]:
    """Keys as typed: ``42`` matches an item keyed 42 or "42"; JSON for anything else."""
    keys: list[JSONValue] = []
    for value in values:
        try:
            keys.append(json.loads(value))
        except ValueError:
            keys.append(value)
    return keys


@cli.command()
@click.argument("job")
@click.option(
    "--export",
    "export",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the items to this file as JSON Lines (- for standard output).",
)
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
    store = _open(store_url)
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
        _print_json(rows)
        return
    if not rows:
        click.echo(f"Job {record.job!r} has no failed items.")
        return
    table = Table(title=f"failed items of {_safe(record.job)}", title_justify="left")
    for column in ("key", "status", "attempts", "when", "error"):
        table.add_column(column)
    for item in items:
        table.add_row(
            _cell(json.dumps(item.key)),
            _cell(item.status),
            str(item.attempts),
            iso(item.updated_at) or "",
            _cell(_clip(item.error or "", 100)),
        )
    _console().print(table)


@cli.command()
@click.argument("job")
@click.option("--key", "keys", multiple=True, metavar="KEY", help="Only this item (repeatable).")
@click.option(
    "--error",
    "error_type",
    metavar="TYPE",
    help="Only items that failed with this exception type, e.g. TimeoutError.",
)
@click.option("--skipped", is_flag=True, help="Put back skipped items instead of failed ones.")
@store_option
def retry(
    job: str, keys: tuple[str, ...], error_type: str | None, skipped: bool, store_url: str | None
) -> None:
    """Put failed items back: the next run of the job handles them, and only them.

    The next run finds each item again by its position where the source can seek
    (by one pass over the input where it cannot), then goes on where the job stood.

    \b
    Example:
      midway retry import-contacts
      midway retry import-contacts --error TimeoutError
      midway retry import-contacts --key 4711 --key 4712
    """
    store = _open(store_url)
    try:
        record = overview.resolve(store, job)
        changed = store.change_items(
            record.job,
            Owner.current(),
            statuses=(SKIPPED,) if skipped else (FAILED,),
            keys=_keys(keys) or None,
            error_type=error_type,
            to_status=RETRY,
            count_as="failed" if skipped else None,
        )
    finally:
        store.close()
    if not changed:
        click.echo(f"No {'skipped' if skipped else 'failed'} items of {record.job!r} match.")
        return
    click.echo(
        f"{len(changed):,} item(s) of {record.job!r} put back; run the job again to handle "
        "them (only them, if it had completed)."
    )


@cli.command()
@click.argument("job")
@click.argument("keys", nargs=-1)
@click.option(
    "--done", "decision", flag_value="done", help="They took effect: count them as succeeded."
)
@click.option(
    "--retry", "decision", flag_value="retry", help="They did not: the next run handles them again."
)
@click.option("--all", "everything", is_flag=True, help="Every in-doubt item of the job.")
@store_option
def resolve(
    job: str, keys: tuple[str, ...], decision: str | None, everything: bool, store_url: str | None
) -> None:
    """Decide the fate of in-doubt items (at-most-once jobs), after checking by hand.

    An item is in doubt when a crash came while its handler ran: midway cannot know
    whether the e-mail went out. Look (the mail server's log, the payment provider),
    then say so.

    \b
    Example:
      midway resolve send-invoices 4711 --done
      midway resolve send-invoices --all --retry
    """
    if decision is None:
        raise click.UsageError("say --done (it took effect) or --retry (handle it again)")
    if not keys and not everything:
        raise click.UsageError("name the in-doubt items' KEYS, or --all")
    store = _open(store_url)
    try:
        record = overview.resolve(store, job)
        changed = store.change_items(
            record.job,
            Owner.current(),
            statuses=(IN_DOUBT,),
            keys=None if everything else _keys(keys),
            error_type=None,
            to_status=DROP if decision == "done" else RETRY,
            count_as="succeeded" if decision == "done" else "failed",
        )
    finally:
        store.close()
    if not changed:
        click.echo(f"No in-doubt items of {record.job!r} match.")
        return
    what = "counted as done" if decision == "done" else "put back for the next run"
    click.echo(f"{len(changed):,} in-doubt item(s) of {record.job!r} {what}.")


@cli.command()
@click.argument("job")
@click.argument("text")
@click.option("--author", default=None, help="Who writes it (default: $USER@host).")
@store_option
def note(job: str, text: str, author: str | None, store_url: str | None) -> None:
    """Add a timestamped note to a job: who decided what, and why.

    `midway show` and `midway report` show the notes.

    \b
    Example:
      midway note import-contacts "paused for the CRM upgrade; resume after 18:00"
    """
    store = _open(store_url)
    try:
        record = overview.resolve(store, job)
        store.add_note(record.job, text, author or _author())
    finally:
        store.close()
    click.echo(f"Note added to {record.job!r}.")


@cli.command()
@click.argument("job")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["md", "html", "json"]),
    default="md",
    show_default=True,
    help="Markdown, a self-contained HTML page, or JSON.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write to this file instead of standard output.",
)
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

    store = _open(store_url)
    try:
        data = report_module.gather(store, overview.resolve(store, job))
    finally:
        store.close()
    if fmt == "json":
        text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    elif fmt == "html":
        text = report_module.html_page(data)
    else:
        text = report_module.markdown(data)
    if output is None:
        click.echo(text, nl=False)
        return
    with open(output, "w", encoding="utf-8") as out:
        out.write(text)
    click.echo(f"report on {data['job']!r} written to {output}", err=True)


@cli.command()
@click.argument("target", metavar="SCRIPT[:FUNCTION]")
def worker(target: str) -> None:
    """Join a distributed job: run SCRIPT (or call its FUNCTION) as one more worker.

    Every `job.run(...)` in it runs distributed: the worker takes partitions no live
    runner holds (and those whose runner stopped renewing its lease), until every
    partition of the job has completed. Start as many as you like, on any machines that
    share the job's store (postgresql:// for several machines).

    \b
    Example:
      midway worker send_invoices.py            # runs the script
      midway worker send_invoices.py:main       # calls main()
    """
    import runpy
    import traceback

    from midway.distributed.worker import WORKER_ENV
    from midway.stores import location

    script, _, function = target.partition(":")
    if not os.path.isfile(script):
        raise click.UsageError(f"{script!r} is not a file: give the job's script, SCRIPT.py")
    os.environ[WORKER_ENV] = "1"
    sys.argv = [script]
    location.use_script(script)  # the script's default store, as when it runs by itself
    try:
        if not function:
            runpy.run_path(script, run_name="__main__")
            return
        names = runpy.run_path(script, run_name="__midway_worker__")
        fn = names.get(function)
        if not callable(fn):
            raise click.UsageError(f"{script} has no function {function!r}")
        fn()
    except (MidwayError, click.ClickException):
        raise
    except Exception:  # the script's own error: its traceback, as Python would show it
        traceback.print_exc()
        sys.exit(EXIT_FAILED)


def _reset_partitions(store: Store, job: str, yes: bool) -> bool:
    """``midway reset NAME`` of a distributed job: its partitions are the jobs to forget."""
    parts = [
        r.job
        for r in store.list_jobs()
        if (base := partition_of(r.job)) is not None and job in (base, r.name)
    ]
    if not parts and store.load_plan(job) is None:
        return False
    if not yes:
        raise click.UsageError(
            f"reset forgets the {len(parts)} partitions of {job!r}; add --yes to confirm"
        )
    for part in parts:
        store.reset(part, Owner.current())
    store.reset(job, Owner.current())  # and how it was split: the next run splits it anew
    click.echo(f"Job {job!r} and its {len(parts)} partitions reset: the next run starts afresh.")
    return True


def _author() -> str:
    import getpass

    from midway._model.owner import hostname

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "someone"
    return f"{user}@{hostname()}"


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
    from midway.cli import demo as demo_module

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


cli.add_command(each_command)
cli.add_command(ui)


def main() -> None:
    """Entry point: every error is a message and an exit code, never a traceback.

    midway's errors exit with their ``exit_code`` (2 bad usage, 3 refused, else 1); a file
    that cannot be opened or written (OSError) and anything unexpected exit 1 with one line
    (``MIDWAY_DEBUG=1`` shows the traceback of an unexpected one). ``Stopped`` exits 130 / 143.
    """
    from midway.stores import location

    location.use_working_directory()  # the default store: found from where the user is
    try:
        code = cli.main(prog_name="midway", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except MidwayError as exc:
        click.echo(f"midway: error: {printable(str(exc), lines=True)}", err=True)
        sys.exit(exc.exit_code)
    except OSError as exc:
        click.echo(f"midway: error: {describe_os_error(exc)}", err=True)
        sys.exit(EXIT_FAILED)
    except Exception as exc:  # a bug in midway: one line, the traceback on request
        if os.environ.get("MIDWAY_DEBUG"):
            raise
        click.echo(
            f"midway: error: unexpected {type(exc).__name__}: {exc}. This is a bug in midway: "
            "run again with MIDWAY_DEBUG=1 to see the traceback, and report it",
            err=True,
        )
        sys.exit(EXIT_FAILED)
    sys.exit(code if isinstance(code, int) else 0)


def describe_os_error(exc: OSError) -> str:
    """``cannot use /missing/x.html: No such file or directory; check ...`` on one line."""
    why = exc.strerror or str(exc)
    if exc.filename is None:
        return f"{why}; check the paths and permissions given on the command line"
    return (
        f"cannot use {exc.filename}: {why}; check that the path is right, that its folder "
        "exists, and that you may write there"
    )
