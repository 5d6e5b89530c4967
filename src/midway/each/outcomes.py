"""How a command's end becomes its record's outcome: a failure the ledger keeps (with the
exit code and the tails of the output), or an interruption that is not the record's fault."""

from __future__ import annotations

import shlex
import signal

from midway._model.redaction import redact_argv, redact_text
from midway.each import child

__all__ = ["CommandFailed", "CommandInterrupted", "describe_exit", "show_argv"]


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
        lines = [f"{how}: {_clip(last, 200)}" if last else how, f"command: {show_argv(argv)}"]
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
        return cls(f"could not start {argv[0]!r}: {why}\ncommand: {show_argv(argv)}", argv=argv)


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


def show_argv(argv: list[str]) -> str:
    return _clip(shlex.join(redact_argv(argv)), 500)
