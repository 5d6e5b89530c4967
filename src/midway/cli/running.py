"""The commands that run work: ``worker`` (join a distributed job) and ``demo``."""

from __future__ import annotations

import os
import sys

import click

from midway.cli.options import store_option
from midway.errors import EXIT_FAILED, MidwayError
from midway.stores import default_url


@click.command()
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

    from midway._model.identity import WORKER_ENV
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


@click.command()
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
