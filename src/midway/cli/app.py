"""The ``midway`` command: thin; it parses, calls the library, and prints.

Exit codes: 0 done; 1 failed (also: a file that cannot be read or written, or an
unexpected error, each shown as one line; MIDWAY_DEBUG=1 shows the traceback); 2 bad usage;
3 refused (lease held, input drift, corrupt store); 130 / 143 stopped by a signal with a
checkpoint written; and by convention 4 (``errors.EXIT_WAITING``) from a job's own script
whose run ended with items waiting for ``midway approve``. No error prints a traceback,
except a worker script's own.
"""

from __future__ import annotations

import os
import sys

import click

from midway.cli import approve, ledger, metrics, reading, running
from midway.console import FORMAT_VARIABLE, LOG_FORMATS, printable
from midway.each.command import each_command
from midway.errors import EXIT_FAILED, MidwayError
from midway.web.command import ui


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="midway", prog_name="midway")
@click.option(
    "--log-format",
    type=click.Choice(LOG_FORMATS),
    default=None,
    help="How runs log to stderr: plain sentences (the default), or one JSON object per "
    f"event (the same as {FORMAT_VARIABLE}=json).",
)
def cli(log_format: str | None) -> None:
    """Resumable item-by-item jobs: checkpoints that survive kill -9.

    \b
    Try it:   midway demo
    Then:     midway status
    """
    if log_format is not None:  # for this process and the ones it starts (midway each)
        os.environ[FORMAT_VARIABLE] = log_format


for command in (
    reading.status,
    reading.show,
    reading.failed,
    reading.report,
    metrics.metrics,
    ledger.reset,
    ledger.retry,
    ledger.resolve,
    ledger.note,
    approve.approve,
    running.worker,
    running.demo,
    each_command,
    ui,
):
    cli.add_command(command)


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
