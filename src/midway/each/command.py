"""``midway each``: run a command once per record of a file, resumably, without writing Python.

The command line becomes a ``midway.Job`` whose params are the command and the input's
absolute path (so a different command is a different job) and whose handler runs the
command for one record. Everything else is the engine's: the checkpoints, the resume after
a crash, the lease, the progress bar, the stop on SIGINT / SIGTERM.

Decisions worth knowing:

- Arguments go to the program as an argv list; no shell sees them unless ``--shell``, and
  then every value is quoted (see ``placeholders``).
- A command's output is captured; the last 4 KiB of stdout and of stderr go into the error
  of a command that fails (so ``midway show`` keeps them), and are dropped when it succeeds.
  ``--output`` also copies the output through, as it comes.
- The command's stdin is empty (``/dev/null``) unless ``--stdin`` feeds it the record.
- A stop signal (Ctrl-C, SIGTERM) lets the command in hand finish (it runs in a process
  group of its own, so a Ctrl-C at the terminal does not reach it), then midway saves a
  checkpoint and exits 130 / 143. A second signal is passed on to the running command and
  midway exits at once; the record in hand runs again on resume.
- A non-zero exit is an item failure (:class:`CommandFailed`), as is a record the command
  cannot be given (:class:`~midway.each.records.RecordError`); neither is a ``MidwayError``.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import click

from midway import RunResult
from midway._model.printable import printable
from midway.cli.options import store_option
from midway.console import say
from midway.each.launch import run_each
from midway.each.options import EachOptions
from midway.each.outcomes import CommandFailed, CommandInterrupted
from midway.each.records import FORMATS, RecordError
from midway.errors import Stopped

__all__ = ["each_command"]


HELP = """Run COMMAND once per record of FILE, resumably. Put -- before COMMAND.

\b
Records: the lines of a text file, the rows of a CSV file (with a header), or the
objects of a JSON-lines file; --format, else the extension (.csv, .jsonl / .ndjson,
anything else: lines). Blank lines are not records.

\b
Placeholders, in any argument of COMMAND:
  {}        the whole record: the line; for CSV the row as one CSV record
  {field}   a CSV column, or a JSON field (a.b for a nested one; non-strings as JSON)
  {{ }}     literal braces
A record without a field its command needs fails with a clear error.

Each argument stays one argument whatever the values hold: no shell is involved. With
--shell, the arguments are joined into one /bin/sh script and every value is quoted for
the shell. A placeholder must stay a plain argument: it is refused inside quotes, as the
command itself, as the code of eval, trap, source, sh -c and the like (also behind env,
sudo, xargs ...), in a variable that is then run, or piped into a shell. A program of
yours that runs its arguments as code is still yours to guard: pass values with --env.

--stdin feeds the record to the command's input (CSV: the header and the row); otherwise
its input is empty. --env adds MIDWAY_RECORD and MIDWAY_FIELD_<NAME> (upper case, other
characters as _). Always set: MIDWAY_JOB, MIDWAY_KEY (--key's value, else the record
number), MIDWAY_IDEMPOTENCY_KEY (stable per record, for APIs that deduplicate) and
MIDWAY_ATTEMPT.

--batch N runs one command for up to N records, as xargs -n N does: an argument with
a placeholder becomes one argument per record ({} one per record, --to={email} one
--to= per record), --stdin gets the records one after the other (CSV: the header once),
and MIDWAY_KEYS lists their keys (JSON) instead of MIDWAY_KEY. A batch is checkpointed
as one: after a crash its command runs again whole, with the same records. A failed
command fails all its records; a record without a field the command needs fails alone.

A non-zero exit fails the record; its exit code and the last 4 KiB of its stderr and
stdout are kept for `midway show NAME`. The output of commands that succeed is dropped,
unless --output copies it through.

Kill it, run the same command line again: it resumes at its last checkpoint (every
--every records, or 10 s); the commands since then run again, so make them idempotent
(--guarantee at-most-once runs none twice). Ctrl-C or SIGTERM lets the command in hand
finish, saves a checkpoint and exits 130 / 143; a second one is passed on to the
command and exits at once. The job is NAME plus the command and FILE: a changed
command line starts a new job. If midway itself is killed, its commands die with it (Linux),
and the next run stops what they started before it runs their records again.

Exit codes: 0 all records done; 1 a record failed; 2 bad usage; 3 refused (the job is
running elsewhere, or FILE changed since the checkpoint); 130 / 143 stopped.

\b
Example:
  midway each fetch --input urls.txt -- curl -fsS -o /dev/null {}
  midway each mail --input people.csv --key email -- ./send.sh {email} {name}
  midway each thumbs --input photos.jsonl -j 4 -- convert {path} -resize 200 {out}
  midway each import --input orders.jsonl --stdin --env -- ./import-order.py
  midway each sizes --input files.txt --shell -- wc -c {} '>>' sizes.txt
  midway each zip --input logs.txt --batch 50 -- gzip -k {}
"""


@click.command("each", help=HELP, no_args_is_help=True, context_settings={"show_default": True})
@click.argument("name")
@click.argument(
    "command", nargs=-1, required=True, type=click.UNPROCESSED, metavar="-- COMMAND [ARGS]..."
)
@click.option(
    "--input",
    "input_path",
    required=True,
    metavar="FILE",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The records: a text, CSV or JSON-lines file.",
)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    metavar="N",
    help="Run N commands at a time (default 1).",
)
@click.option(
    "--batch",
    type=click.IntRange(min=1),
    metavar="N",
    help="Run one command for up to N records (as xargs -n N): an argument with a "
    "placeholder becomes one argument per record, --stdin gets the records one after the "
    "other (CSV: the header once). A failed command fails all its records.",
)
@click.option(
    "--retries",
    type=click.IntRange(min=0),
    metavar="K",
    help="Run a failing command up to K more times before the record fails.",
)
@click.option(
    "--retry-backoff",
    "backoff",
    type=click.FloatRange(min=0),
    default=0.5,
    metavar="SECONDS",
    help="First wait before a retry; it doubles with each try (with jitter).",
)
@click.option(
    "--max-failures",
    type=str,
    metavar="N|F",
    help="Record failed records and go on, stopping once more than N (a count) or F (a "
    "fraction, e.g. 0.05) have failed; `midway retry NAME` puts them back.",
)
@click.option(
    "--guarantee",
    type=click.Choice(["at-least-once", "at-most-once"]),
    default="at-least-once",
    help="at-most-once: no command ever runs twice for a record; one cut short by a crash "
    "is reported in doubt.",
)
@click.option(
    "--format",
    "fmt_name",
    type=click.Choice(FORMATS),
    help="How to read FILE (default: from its extension).",
)
@click.option("--key", metavar="FIELD", help="The field that identifies a record (CSV / JSONL).")
@click.option("--stdin", "use_stdin", is_flag=True, help="Feed the record to the command's stdin.")
@click.option("--env", "use_env", is_flag=True, help="Pass the fields as MIDWAY_FIELD_* variables.")
@click.option("--shell", is_flag=True, help="Run COMMAND with /bin/sh -c, values quoted.")
@click.option(
    "--output",
    "passthrough",
    is_flag=True,
    help="Copy each command's stdout / stderr through as it comes (no progress bar then; "
    "default: output is kept only for failures).",
)
@click.option(
    "--every",
    type=click.IntRange(min=1),
    default=100,
    metavar="N",
    help="Checkpoint every N records (and every 10 s).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Kill a command (its whole process group) that runs longer; its record fails with "
    "'timed out after N s' (and is retried with --retries).",
)
@click.option(
    "--rate",
    metavar="N/s|N/m",
    help="Start at most this many commands a second (50/s) or minute (600/m).",
)
@click.option(
    "--on-drift",
    type=click.Choice(["refuse", "restart", "continue"]),
    default="refuse",
    help="When FILE changed since the checkpoint: refuse, restart from the first record, "
    "or continue at the saved position anyway.",
)
@store_option
def each_command(
    name: str,
    command: tuple[str, ...],
    input_path: Path,
    max_failures: str | None,
    store_url: str | None,
    **options: Any,
) -> None:
    # the commands' output and a redrawn bar would garble each other on a terminal
    progress = False if options["passthrough"] and sys.stderr.isatty() else None
    settings = EachOptions(
        max_failures=_tolerance(max_failures), store=store_url, progress=progress, **options
    )
    try:
        result = run_each(name, list(command), input_path, settings)
    except Stopped as exc:  # the engine said where it stopped and how to resume
        raise SystemExit(exc.code) from None
    except CommandInterrupted as exc:
        say(str(exc))
        raise SystemExit(128 + exc.signal_number) from None
    except (CommandFailed, RecordError) as exc:
        _report_failure(exc)
        raise SystemExit(1) from None
    if result.failed or result.in_doubt:
        _report_unfinished(result)
        raise SystemExit(1)


def _tolerance(text: str | None) -> int | float | None:
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise click.BadParameter(
            f"{text!r}: give a count (10) or a fraction (0.05)", param_hint="--max-failures"
        ) from None


def _report_failure(exc: Exception) -> None:
    """A record failed and the job stopped there (the engine's note says where)."""
    first, _, rest = str(exc).partition("\n")
    lines = [f"midway: a record failed: {first}"]
    lines.extend(f"  {line}" for line in rest.splitlines())
    lines.extend(getattr(exc, "__notes__", []))
    click.echo(printable("\n".join(lines), lines=True), err=True)


def _report_unfinished(result: RunResult) -> None:
    parts = []
    if result.failed:
        parts.append(f"{result.failed:,} failed")
    if result.in_doubt:
        parts.append(f"{result.in_doubt:,} in doubt")
    say(
        f"job {result.job!r} finished, but {' and '.join(parts)} of {result.processed:,} "
        f"records: `midway show {shlex.quote(result.job)}` lists them with their errors"
    )
