"""What each kind of store can do, for the scenarios that need to know.

The scenarios run on every store of the ``store_url`` fixture (``tests/conftest.py``) and
ask here what the store in hand can do, so a new backend only has to join both places:
its URL there, its capabilities here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StoreKind:
    name: str
    transactions: bool  # can hold the handler's writes: guarantee="exactly-once"
    commit_points: tuple[str, ...]  # the MIDWAY_FAULTS points inside its checkpoint write


SQLITE = StoreKind("sqlite", True, ("checkpoint.before_commit", "checkpoint.after_commit"))
FILE = StoreKind("file", False, ("file.before_rename",))
# A PostgreSQL store joins with its scheme: StoreKind("postgresql", True, (...)).
KINDS = {"sqlite": SQLITE, "file": FILE}


def kind_of(url: str) -> StoreKind:
    scheme = url.partition(":")[0].lower()
    try:
        return KINDS[scheme]
    except KeyError:
        raise ValueError(
            f"the fault suite does not know store {url!r}; add it to stores.py"
        ) from None
