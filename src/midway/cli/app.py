"""The ``midway`` command: thin; it parses, calls the library, and prints.

Exit codes: 0 done; 1 failed (also: a file that cannot be read or written, or an
unexpected error, each shown as one line; MIDWAY_DEBUG=1 shows the traceback); 2 bad usage;
3 refused (lease held, input drift, corrupt store); 130 / 143 stopped by a signal with a
checkpoint written; and by convention 4 (``errors.EXIT_WAITING``) from a job's own script
whose run ended with items waiting for ``midway approve``. No error prints a traceback,
except a worker script's own.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Mapping

import click

from midway._model.logformat import FORMAT_VARIABLE, LOG_FORMATS
from midway.errors import EXIT_FAILED, MidwayError

COMMANDS: Mapping[str, tuple[str, str]] = {
    "approve": (
        "midway.cli.approve:approve",
        "Decide items waiting for a person (ctx.approval): yes, or no with --reject.",
    ),
    "demo": (
        "midway.cli.running:demo",
        "Import 10,000 contacts, crash with SIGKILL midway, resume, and verify.",
    ),
    "each": (
        "midway.each.command:each_command",
        "Run COMMAND once per record of FILE, resumably. Put -- before COMMAND.",
    ),
    "failed": (
        "midway.cli.reading:failed",
        "The items that failed: key, error, attempts, when, and the item itself.",
    ),
    "metrics": (
        "midway.cli.metrics:metrics",
        "Print every job's metrics in the Prometheus text format.",
    ),
    "note": (
        "midway.cli.ledger:note",
        "Add a timestamped note to a job: who decided what, and why.",
    ),
    "report": (
        "midway.cli.reading:report",
        "The handoff document of JOB, or (--all) the status report of every job.",
    ),
    "reset": (
        "midway.cli.ledger:reset",
        "Forget a job: its checkpoint, item ledger, summary and run history.",
    ),
    "resolve": (
        "midway.cli.ledger:resolve",
        "Decide the fate of in-doubt items (at-most-once jobs), after checking by hand.",
    ),
    "retry": (
        "midway.cli.ledger:retry",
        "Put failed items back: the next run of the job handles them, and only them.",
    ),
    "show": (
        "midway.cli.reading:show",
        "One job: checkpoint, counters, state, failed / in-doubt items and runs.",
    ),
    "status": (
        "midway.cli.status:status",
        "Every job: state, progress, last checkpoint age, rate and ETA.",
    ),
    "ui": (
        "midway.web.command:ui",
        "Serve a dashboard of the store's jobs: live progress, each job's details, throughput "
        "chart and report; retry failed items, resolve in-doubt ones, add notes, reset.",
    ),
    "worker": (
        "midway.cli.running:worker",
        "Join a distributed job: run SCRIPT (or call its FUNCTION) as one more worker.",
    ),
}
"""Each command: where it is defined (``module:name``) and the first paragraph of its help,
which ``midway --help`` shows without importing the module (tests/test_startup.py checks
that it is the command's own)."""


class LazyGroup(click.Group):
    """A group whose commands are imported when one is run or its own help is asked for:
    ``midway --help`` lists them from :data:`COMMANDS`, so starting is not slowed by every
    command's imports (rich, the views, the dashboard's, ``midway each``'s)."""

    def __init__(self, *args: object, lazy: Mapping[str, tuple[str, str]], **kwargs: object):
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            module, _, name = self.lazy[cmd_name][0].partition(":")
            self.add_command(getattr(importlib.import_module(module), name), cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """As click's, a command not yet imported standing in by the help in the table."""
        shown = [
            (name, self.commands.get(name) or click.Command(name, help=self.lazy[name][1]))
            for name in self.list_commands(ctx)
        ]
        shown = [(name, command) for name, command in shown if not command.hidden]
        limit = formatter.width - 6 - max((len(name) for name, _ in shown), default=0)
        rows = [(name, command.get_short_help_str(limit)) for name, command in shown]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
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
        from midway._model.printable import printable

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
