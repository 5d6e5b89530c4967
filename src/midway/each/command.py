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

import os
import shlex
import shutil
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import click

from midway._model import jsonutil
from midway._model.redaction import redact_argv, redact_text
from midway._model.result import RunResult
from midway.cli.options import store_option
from midway.console import printable, say
from midway.each import child, leftovers, placeholders
from midway.each.placeholders import Field, Template
from midway.each.records import (
    FORMATS,
    CsvFormat,
    Format,
    Record,
    RecordError,
    detect_format,
    env_name,
    open_format,
)
from midway.errors import ConfigError, Stopped
from midway.job import Job
from midway.run.context import Context
from midway.run.failures import Retry

SHELL = "/bin/sh"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_ENV_PREFIXES = ("MIDWAY_FIELD_",)
_ENV_OWN = (
    "MIDWAY_RECORD",
    "MIDWAY_KEY",
    "MIDWAY_JOB",
    "MIDWAY_IDEMPOTENCY_KEY",
    "MIDWAY_ATTEMPT",
    leftovers.TAG_ENV,
)

__all__ = ["CommandFailed", "CommandInterrupted", "RecordError", "each_command"]


class CommandFailed(Exception):
    """The command exited non-zero (or could not start) for one record: an item failure.

    The message starts with a one-line summary (the exit code and the last line of stderr)
    and carries the command and the tails of its stderr and stdout, so that the failure
    ledger keeps them for ``midway show``."""

    def __init__(
        self,
        message: str,
        *,
        argv: list[str] | None = None,
        returncode: int | None = None,
        stdout_tail: str = "",
        stderr_tail: str = "",
    ) -> None:
        super().__init__(message)
        self.argv = argv or []
        self.returncode = returncode
        self.stdout_tail = stdout_tail
        self.stderr_tail = stderr_tail

    @classmethod
    def from_outcome(cls, argv: list[str], outcome: child.Outcome) -> CommandFailed:
        out, err = _decode(outcome.stdout_tail), _decode(outcome.stderr_tail)
        how = describe_exit(outcome.returncode)
        last = next((line.strip() for line in reversed(err.splitlines()) if line.strip()), "")
        lines = [f"{how}: {_clip(last, 200)}" if last else how, f"command: {_show(argv)}"]
        for label, text in (("stderr", err), ("stdout", out)):
            if text:
                lines.append(f"{label} (last {child.TAIL_BYTES // 1024} KiB):")
                lines.append(text.rstrip("\n"))
        return cls(
            redact_text("\n".join(lines)),  # it is kept in the store and shown
            argv=argv,
            returncode=outcome.returncode,
            stdout_tail=out,
            stderr_tail=err,
        )

    @classmethod
    def not_started(cls, argv: list[str], exc: OSError) -> CommandFailed:
        why = exc.strerror or str(exc)
        return cls(f"could not start {argv[0]!r}: {why}\ncommand: {_show(argv)}", argv=argv)


class CommandInterrupted(BaseException):
    """The command in hand ended badly after midway was told to stop: not the record's
    fault. A BaseException, like KeyboardInterrupt, so that no failure policy counts it:
    the record is not done, and runs again on resume."""

    def __init__(self, message: str, *, signal_number: int) -> None:
        super().__init__(message)
        self.signal_number = signal_number


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name}"
    return f"exit code {returncode}"


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _show(argv: list[str]) -> str:
    return _clip(shlex.join(redact_argv(argv)), 500)


# -- signals ------------------------------------------------------------------------------


class SignalRelay:
    """Sits in front of the engine's SIGINT / SIGTERM handler while a run is on.

    It notes that a stop was asked for (so a command that then fails is *interrupted*, not
    failed), and passes a second signal on to the running commands before the engine exits
    at once. Installed from the handler on the main thread (the engine installs its own
    handler when the run starts, and restores the previous one when it ends, which also
    removes this one); elsewhere it stays out of the way."""

    def __init__(self, children: child.Children) -> None:
        self._children = children
        self._inner: dict[int, Any] = {}
        self.received: int | None = None
        self.count = 0

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in STOP_SIGNALS:
            current = signal.getsignal(signum)
            if current != self._on_signal:
                self._inner[signum] = current
                signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        self.received = signum
        if self.count > 1:
            self._children.signal_all(signum)
        inner = self._inner.get(signum)
        if callable(inner):
            inner(signum, frame)
        elif inner != signal.SIG_IGN:  # the default action: do what the signal would do
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)


# -- the handler --------------------------------------------------------------------------


class Runner:
    """``handler(item, ctx)`` for the job: one command per record."""

    def __init__(
        self,
        template: Template,
        fmt: Format,
        *,
        shell: bool,
        use_stdin: bool,
        use_env: bool,
        passthrough: bool,
        timeout: float | None = None,
        job: Job | None = None,
    ) -> None:
        self.template = template
        self.timeout = timeout
        # what a dead runner of the job left running goes before a record runs again
        self.sweeper = leftovers.Sweeper(job.store_url, job.key) if job is not None else None
        self.fmt = fmt
        self.shell = shell
        self.use_stdin = use_stdin
        self.use_env = use_env
        self.passthrough = passthrough
        self.children = child.Children()
        self.relay = SignalRelay(self.children)
        self.base_env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(_ENV_PREFIXES) and name not in _ENV_OWN
        }

    def command_for(self, record: Record) -> list[str]:
        """The argv that runs for ``record`` (RecordError when a field is missing)."""

        def lookup(field: Field) -> str:
            return record.whole() if field.name is None else record.field(field.name)

        if self.shell:
            return [SHELL, "-c", self.template.shell(lookup)]
        return self.template.argv(lookup)

    def env_for(self, record: Record, ctx: Context) -> dict[str, str]:
        env = dict(self.base_env)
        key = ctx.key
        env["MIDWAY_JOB"] = ctx.job
        env["MIDWAY_KEY"] = key if isinstance(key, str) else jsonutil.dumps(key)
        env["MIDWAY_IDEMPOTENCY_KEY"] = ctx.idempotency_key
        env["MIDWAY_ATTEMPT"] = str(ctx.attempt)
        if self.sweeper is not None:
            env[leftovers.TAG_ENV] = self.sweeper.tag
        if self.use_env:
            env["MIDWAY_RECORD"] = record.whole()
            names: dict[str, str] = {}
            for field, value in record.fields().items():
                name = env_name(field)
                if name in names:
                    raise RecordError(
                        f"fields {names[name]!r} and {field!r} would both be ${name}; rename "
                        "one, or pass the record with --stdin"
                    )
                names[name] = field
                env[name] = value
        return env

    def handle(self, item: Any, ctx: Context) -> None:
        self.relay.install()
        if self.sweeper is not None:
            self.sweeper.sweep()
        record = self.fmt.record(item)
        argv = self.command_for(record)
        env = self.env_for(record, ctx)
        data = record.stdin() if self.use_stdin else None
        try:
            outcome = child.run(
                argv,
                stdin=data,
                env=env,
                children=self.children,
                passthrough=self.passthrough,
                timeout=self.timeout,
            )
        except OSError as exc:
            raise CommandFailed.not_started(argv, exc) from None
        except ValueError as exc:  # a NUL byte, which no argument or variable can hold
            raise RecordError(f"the record cannot be passed to a command: {exc}") from None
        if outcome.timed_out:
            raise CommandFailed(
                f"timed out after {self.timeout:g} s (its process group was killed)\n"
                f"command: {_show(argv)}",
                argv=argv,
                returncode=outcome.returncode,
            )
        if outcome.returncode:
            stop = self.relay.received
            if stop is not None:
                raise CommandInterrupted(
                    f"the command ({describe_exit(outcome.returncode)}) was cut short by "
                    f"{signal.Signals(stop).name}; its record runs again when resumed",
                    signal_number=stop,
                )
            raise CommandFailed.from_outcome(argv, outcome)


# -- the job ------------------------------------------------------------------------------


def job_options(
    jobs: int | None,
    retries: int | None,
    guarantee: str,
    max_failures: int | float | None = None,
    backoff: float = 0.5,
) -> dict[str, Any]:
    """``workers=``, ``retry=``, ``guarantee=`` and ``max_failures=`` for Job."""
    options: dict[str, Any] = {"guarantee": guarantee}
    if jobs is not None and jobs > 1:
        options["workers"] = jobs
    if retries:
        # Only a command that ran and failed is retried; a record missing a field stays so.
        options["retry"] = Retry(attempts=retries + 1, on=(CommandFailed,), backoff=backoff)
    if max_failures is not None:
        options["max_failures"] = max_failures
    return options


def prepare(
    argv: list[str], path: Path, fmt_name: str | None, key: str | None, *, shell: bool, env: bool
) -> tuple[Template, Format]:
    """Check everything that can be checked before the first command runs."""
    template = placeholders.parse(argv)
    if not path.is_file():
        raise ConfigError(
            f"--input {path} is not a regular file: midway reads records by seeking in the "
            "file (that is how it resumes), so save the input to a file first"
        )
    fmt = open_format(path, fmt_name or detect_format(path), key)
    fmt.check_fields(template.fields, "the command")
    if shell:
        placeholders.check_shell_safe(template)
    else:
        _check_program(template)
    clashes = fmt.env_clashes() if env and isinstance(fmt, CsvFormat) else []
    if clashes:
        first, second = clashes[0]
        raise ConfigError(
            f"--env: columns {first!r} and {second!r} would both be ${env_name(first)}; "
            "use {column} placeholders or --stdin instead"
        )
    return template, fmt


def _check_program(template: Template) -> None:
    program = template.literal_head()
    if not program:
        return  # the program itself comes from the record
    if "/" in program:
        if not (os.path.isfile(program) and os.access(program, os.X_OK)):
            raise ConfigError(f"the command {program!r} is not an executable file")
    elif shutil.which(program) is None:
        raise ConfigError(
            f"the command {program!r} is not on PATH; check the spelling, give its full path, "
            "or use --shell for a shell built-in or a pipeline"
        )


def run_each(
    name: str,
    argv: list[str],
    path: Path,
    *,
    fmt_name: str | None = None,
    key: str | None = None,
    jobs: int | None = None,
    retries: int | None = None,
    guarantee: str = "at-least-once",
    max_failures: int | float | None = None,
    backoff: float = 0.5,
    use_stdin: bool = False,
    use_env: bool = False,
    shell: bool = False,
    passthrough: bool = False,
    every: int = 100,
    store: str | None = None,
    progress: bool | None = None,
    timeout: float | None = None,
    rate: str | None = None,
    on_drift: str = "refuse",
) -> RunResult:
    """The command's work, callable from Python: raises as ``job.run`` does."""
    path = path.expanduser().absolute()
    template, fmt = prepare(argv, path, fmt_name, key, shell=shell, env=use_env)
    # the params are kept in the store: a password in the command line is not
    params: dict[str, Any] = {"command": redact_argv(argv), "input": str(path)}
    if shell:
        params["shell"] = True
    job = EachJob(
        name,
        store=store,
        every=every,
        params=params,
        progress=progress,
        rate=rate,
        on_drift=on_drift,  # type: ignore[arg-type]  # checked by Job
        **job_options(jobs, retries, guarantee, max_failures, backoff),
    )
    runner = Runner(
        template,
        fmt,
        shell=shell,
        use_stdin=use_stdin,
        use_env=use_env,
        passthrough=passthrough,
        timeout=timeout,
        job=job,
    )
    return job.run(fmt.source(), runner.handle)


class EachJob(Job):
    """The job of a command line: its messages name the command's options."""

    def option_text(self, name: str, value: str) -> str:
        return f"--{name.replace('_', '-')} {value}"


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
"""


@click.command("each", help=HELP, no_args_is_help=True)
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
    default=None,
    metavar="N",
    help="Run N commands at a time (default 1).",
)
@click.option(
    "--retries",
    type=click.IntRange(min=0),
    default=None,
    metavar="K",
    help="Run a failing command up to K more times before the record fails.",
)
@click.option(
    "--retry-backoff",
    "backoff",
    type=click.FloatRange(min=0),
    default=0.5,
    show_default=True,
    metavar="SECONDS",
    help="First wait before a retry; it doubles with each try (with jitter).",
)
@click.option(
    "--max-failures",
    type=str,
    default=None,
    metavar="N|F",
    help="Record failed records and go on, stopping once more than N (a count) or F (a "
    "fraction, e.g. 0.05) have failed; `midway retry NAME` puts them back.",
)
@click.option(
    "--guarantee",
    type=click.Choice(["at-least-once", "at-most-once"]),
    default="at-least-once",
    show_default=True,
    help="at-most-once: no command ever runs twice for a record; one cut short by a crash "
    "is reported in doubt.",
)
@click.option(
    "--format",
    "fmt_name",
    type=click.Choice(FORMATS),
    default=None,
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
    show_default=True,
    metavar="N",
    help="Checkpoint every N records (and every 10 s).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
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
    show_default=True,
    help="When FILE changed since the checkpoint: refuse, restart from the first record, "
    "or continue at the saved position anyway.",
)
@store_option
def each_command(
    name: str,
    command: tuple[str, ...],
    input_path: Path,
    jobs: int | None,
    retries: int | None,
    backoff: float,
    max_failures: str | None,
    guarantee: str,
    fmt_name: str | None,
    key: str | None,
    use_stdin: bool,
    use_env: bool,
    shell: bool,
    passthrough: bool,
    every: int,
    timeout: float | None,
    rate: str | None,
    on_drift: str,
    store_url: str | None,
) -> None:
    try:
        result = run_each(
            name,
            list(command),
            input_path,
            fmt_name=fmt_name,
            key=key,
            jobs=jobs,
            retries=retries,
            guarantee=guarantee,
            max_failures=_tolerance(max_failures),
            backoff=backoff,
            use_stdin=use_stdin,
            use_env=use_env,
            shell=shell,
            passthrough=passthrough,
            every=every,
            store=store_url,
            timeout=timeout,
            rate=rate,
            on_drift=on_drift,
            # the commands' output and a redrawn bar would garble each other on a terminal
            progress=False if passthrough and sys.stderr.isatty() else None,
        )
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
