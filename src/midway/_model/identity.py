"""What makes two runs the same job: its name and its params."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from midway._model import jsonutil
from midway.errors import ConfigError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:+-]{0,199}$")
_PART = re.compile(r"^p\d+of\d+$")

WORKER_ENV = "MIDWAY_WORKER"
"""Set to ``1`` by ``midway worker``: every ``job.run`` in its script runs one partition
after another of a distributed job."""


def worker_mode() -> bool:
    """Under ``midway worker`` (:data:`WORKER_ENV`): every ``job.run`` runs distributed."""
    return os.environ.get(WORKER_ENV) == "1"


def partition_of(key: str) -> str | None:
    """The whole job's key for a partition's key (``spread~p03of16``: ``spread``), else None."""
    base, sep, part = key.rpartition("~")
    return base if sep and _PART.match(part) else None


def partition_key(base: str, index: int, count: int) -> str:
    """The key of partition ``index`` of ``count`` of the job ``base``: ``spread~p03of16``."""
    width = len(str(count - 1))
    return f"{base}~p{index:0{width}d}of{count}"


@dataclass(frozen=True)
class JobId:
    """``key`` is the name alone for a job without params, else ``name@`` + 8 hex digits."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    part: str = ""
    """For one partition of a distributed job: ``p03of16``; its key ends ``~p03of16``."""

    @property
    def base_key(self) -> str:
        """The key of the whole job (a partition's key without its ``~part``)."""
        if not self.params:
            return self.name
        import hashlib  # not at the top: it loads OpenSSL, slow for ``import midway``

        digest = hashlib.sha256(jsonutil.canonical(self.params).encode()).hexdigest()
        return f"{self.name}@{digest[:8]}"

    @property
    def key(self) -> str:
        return f"{self.base_key}~{self.part}" if self.part else self.base_key

    def partition(self, index: int, count: int) -> JobId:
        part = partition_key("", index, count).lstrip("~")
        return JobId(self.name, self.params, part)

    def idempotency_key(self, item_key: Any) -> str:
        """Stable for this job and item across runs and machines (for APIs that deduplicate)."""
        import hashlib

        text = jsonutil.canonical([self.name, self.params, item_key])
        return "midway-" + hashlib.sha256(text.encode()).hexdigest()[:32]


def make_job_id(name: str, params: dict[str, Any] | None) -> JobId:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(
            f"job name {name!r} is not usable: use 1-200 letters, digits and . _ : + - "
            "(starting with a letter or digit), e.g. 'import-contacts'"
        )
    params = dict(params or {})
    try:
        jsonutil.canonical(params)
    except (TypeError, ValueError) as exc:
        found = jsonutil.find_unserializable(params, "params")
        where = f"{found[0]} is a {found[1]}" if found else str(exc)
        raise ConfigError(
            f"params of job {name!r} must be JSON ({where}); pass strings, numbers, lists, dicts"
        ) from None
    return JobId(name, params)
