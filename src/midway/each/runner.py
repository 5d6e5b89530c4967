"""The job's handler: one command per record, with its argv, environment and input."""

from __future__ import annotations

import os
import signal
from typing import Any

from midway import Context, Job
from midway._model import jsonutil
from midway.each import child, leftovers
from midway.each.options import EachOptions
from midway.each.outcomes import CommandFailed, CommandInterrupted, describe_exit, show_argv
from midway.each.placeholders import Field, Template
from midway.each.records import Format, Record, RecordError, env_name
from midway.each.signals import SignalRelay

SHELL = "/bin/sh"
_ENV_PREFIXES = ("MIDWAY_FIELD_",)
_ENV_OWN = (
    "MIDWAY_RECORD",
    "MIDWAY_KEY",
    "MIDWAY_KEYS",
    "MIDWAY_JOB",
    "MIDWAY_IDEMPOTENCY_KEY",
    "MIDWAY_ATTEMPT",
    leftovers.TAG_ENV,
)


class Runner:
    """``handler(item, ctx)`` for the job: one command per record."""

    def __init__(
        self, template: Template, fmt: Format, options: EachOptions, job: Job | None = None
    ) -> None:
        self.template = template
        self.fmt = fmt
        self.options = options
        # what a dead runner of the job left running goes before a record runs again
        self.sweeper = leftovers.Sweeper(job.store_url, job.key) if job is not None else None
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

        if self.options.shell:
            return [SHELL, "-c", self.template.shell(lookup)]
        return self.template.argv(lookup)

    def job_env(self, ctx: Context) -> dict[str, str]:
        """The environment every command of the job gets, whatever its records."""
        env = dict(self.base_env)
        env["MIDWAY_JOB"] = ctx.job
        env["MIDWAY_ATTEMPT"] = str(ctx.attempt)
        if self.sweeper is not None:
            env[leftovers.TAG_ENV] = self.sweeper.tag
        return env

    def env_for(self, record: Record, ctx: Context) -> dict[str, str]:
        env = self.job_env(ctx)
        key = ctx.key
        env["MIDWAY_KEY"] = key if isinstance(key, str) else jsonutil.dumps(key)
        env["MIDWAY_IDEMPOTENCY_KEY"] = ctx.idempotency_key
        if self.options.use_env:
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
        self.before_command()
        record = self.fmt.record(item)
        argv = self.command_for(record)
        env = self.env_for(record, ctx)
        self.run_command(argv, env, record.stdin() if self.options.use_stdin else None)

    def before_command(self) -> None:
        self.relay.install()
        if self.sweeper is not None:
            self.sweeper.sweep()

    def run_command(self, argv: list[str], env: dict[str, str], data: bytes | None) -> None:
        """Run one command to its end; CommandFailed (or CommandInterrupted) unless it
        exits 0."""
        try:
            outcome = child.run(
                argv,
                stdin=data,
                env=env,
                children=self.children,
                passthrough=self.options.passthrough,
                timeout=self.options.timeout,
            )
        except OSError as exc:
            raise CommandFailed.not_started(argv, exc) from None
        except ValueError as exc:  # a NUL byte, which no argument or variable can hold
            raise RecordError(f"the record cannot be passed to a command: {exc}") from None
        if outcome.timed_out:
            raise CommandFailed(
                f"timed out after {self.options.timeout:g} s (its process group was killed)\n"
                f"command: {show_argv(argv)}",
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
