"""What ``midway each`` is told besides its name, command and input: one frozen record,
filled in by the click command (see ``midway each --help`` for each option) and read by the
job (``launch``) and the handler (``runner``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EachOptions:
    fmt_name: str | None = None
    key: str | None = None
    jobs: int | None = None
    retries: int | None = None
    guarantee: str = "at-least-once"
    max_failures: int | float | None = None
    backoff: float = 0.5
    use_stdin: bool = False
    use_env: bool = False
    shell: bool = False
    passthrough: bool = False
    every: int = 100
    store: str | None = None
    progress: bool | None = None
    timeout: float | None = None
    rate: str | None = None
    on_drift: str = "refuse"
    batch: int | None = None
