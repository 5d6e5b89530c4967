"""``run_each``: a command line made into a ``midway.Job`` and run, callable from Python.

Everything that can be checked is checked before the first command runs (the placeholders,
the input, the program, the fields); the job's params are the command (redacted) and the
input's absolute path, so a different command line is a different job."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from midway import Job, Retry, RunResult
from midway._model.redaction import redact_argv
from midway.each import placeholders
from midway.each.batches import BatchRunner
from midway.each.options import EachOptions
from midway.each.outcomes import CommandFailed
from midway.each.placeholders import Template
from midway.each.records import CsvFormat, Format, detect_format, env_name, open_format
from midway.each.runner import Runner
from midway.errors import ConfigError


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


def run_each(name: str, argv: list[str], path: Path, options: EachOptions) -> RunResult:
    """The command's work, callable from Python: raises as ``job.run`` does."""
    path = path.expanduser().absolute()
    template, fmt = prepare(
        argv, path, options.fmt_name, options.key, shell=options.shell, env=options.use_env
    )
    if options.batch is not None and options.use_env:
        raise ConfigError(
            "--env passes one record's fields, and --batch gives a command several records: "
            "use {field} placeholders (one argument per record) or --stdin instead"
        )
    # the params are kept in the store: a password in the command line is not
    params: dict[str, Any] = {"command": redact_argv(argv), "input": str(path)}
    if options.shell:
        params["shell"] = True
    job = EachJob(
        name,
        store=options.store,
        every=options.every,
        params=params,
        progress=options.progress,
        rate=options.rate,
        on_drift=options.on_drift,  # type: ignore[arg-type]  # checked by Job
        **job_options(
            options.jobs, options.retries, options.guarantee, options.max_failures, options.backoff
        ),
    )
    if options.batch is None:
        return job.run(fmt.source(), Runner(template, fmt, options, job).handle)
    batches = BatchRunner(template, fmt, options, job)
    return job.run(fmt.source(), batches.handle_batch, batch=options.batch)


class EachJob(Job):
    """The job of a command line: its messages name the command's options."""

    def option_text(self, name: str, value: str) -> str:
        return f"--{name.replace('_', '-')} {value}"
