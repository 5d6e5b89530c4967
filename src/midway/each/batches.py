"""``midway each --batch N``: one command for up to N records, as ``xargs -n N`` does.

The records come from the engine as one batch (``job.run(..., batch=N)``), so a batch is
checkpointed as one and, after a crash, its command runs again whole or not at all. In the
command, an argument with a placeholder becomes one argument per record (``{}`` one per
record, ``--to={email}`` one ``--to=`` per record); ``--stdin`` gets the records one after
the other (CSV: the header once). A record the command cannot be given (a missing field, a
line that is not JSON) fails alone and is left out of the command. A command that fails
fails all its records, with its exit code and output; under ``--max-failures`` they are
recorded and the job goes on, without it the job stops there, as it does for one record.
"""

from __future__ import annotations

from typing import Any

from midway import Context
from midway._model import jsonutil
from midway._model.jsonutil import JSONValue
from midway.each.outcomes import CommandFailed
from midway.each.placeholders import Lookup
from midway.each.records import Record, RecordError, stdin_of
from midway.each.runner import SHELL, Runner


class BatchRunner(Runner):
    """``handler(items, ctx)`` for the job: one command per batch of records."""

    def handle_batch(self, items: list[Any], ctx: Context) -> None:
        self.before_command()
        keys: list[JSONValue] = []
        records: list[Record] = []
        lookups: list[Lookup] = []
        for key, item in zip(ctx.keys, items, strict=True):
            try:
                record = self.fmt.record(item)
                lookup = self.lookup_for(record)
            except RecordError as exc:
                if self.options.max_failures is None:
                    raise  # the job stops at it, as it would for one record
                ctx.fail(key, exc)
                continue
            keys.append(key)
            records.append(record)
            lookups.append(lookup)
        if not records:
            return
        argv = self.command_per_record(lookups)
        env = self.job_env(ctx)
        env["MIDWAY_KEYS"] = jsonutil.dumps(keys)
        data = stdin_of(records) if self.options.use_stdin else None
        try:
            self.run_command(argv, env, data)
        except CommandFailed as exc:
            if self.options.max_failures is None or ctx.attempt <= (self.options.retries or 0):
                raise  # a try is left (--retries), or the job stops here
            for key in keys:  # not split to find a culprit: the command ran for all of them
                ctx.fail(key, exc)

    def lookup_for(self, record: Record) -> Lookup:
        """The record's values for the command's placeholders, read now: a record without
        a field the command needs is a RecordError before anything runs."""
        values = {name: record.field(name) for name in self.template.fields}
        whole = record.whole()
        return lambda field: whole if field.name is None else values[field.name]

    def command_per_record(self, lookups: list[Lookup]) -> list[str]:
        if self.options.shell:
            return [SHELL, "-c", self.template.shell_per_record(lookups)]
        return self.template.argv_per_record(lookups)


__all__ = ["BatchRunner"]
