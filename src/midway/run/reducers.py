"""Declared reducers for ``ctx.state`` keys: how contributions combine.

``job.run(source, handler, state={"imported": midway.Sum(), "largest": midway.Max()})``
declares how each key combines, so the same handler gives the same final state with
``workers=1``, ``workers=N``, a resume and a distributed run:

* with ``workers=1`` the handler reads and writes the job's accumulated state, which starts
  at each reducer's ``start`` (``Sum``: 0, ``Append``: [], the others: None);
* with ``workers=N`` each item's handler sees its own contribution, starting at the same
  values, and midway combines it into the job's state as the item finishes; a key written
  without a reducer (and no ``merge=``) stops the job, since midway cannot know how to
  combine it;
* a distributed run combines the partitions' states the same way, in partition order.

``Last`` keeps the value of the item that comes last *in the input*, not the one that
finished last: with workers, the item's place is kept beside the state, in the checkpoint.
``Append`` keeps every item's values; with workers, in the order the items finished.

The declaration is saved with each checkpoint (``{"imported": "sum", ...}``); a run that
declares other reducers than the checkpoint it resumes from is refused.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from midway._model.jsonutil import JSONValue
from midway.errors import ConfigError, RefusedError


class Reducer:
    """A declared way of combining one ``ctx.state`` key."""

    name = ""
    expects = "any JSON value"
    """What a contribution to the key must be, as a message says it."""

    def start(self) -> JSONValue:
        """The key's value before any item, and what a worker's contribution starts at."""
        return None

    def combine(self, total: Any, part: Any) -> Any:
        raise NotImplementedError

    def accepts(self, value: object) -> bool:
        return True

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self)

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f"midway.{type(self).__name__}()"


def _number(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and (isinstance(value, int) or math.isfinite(value))
    )


class Sum(Reducer):
    """Numbers that add up (counts, totals); starts at 0."""

    name = "sum"
    expects = "a number"

    def start(self) -> JSONValue:
        return 0

    def combine(self, total: Any, part: Any) -> Any:
        return total + part

    def accepts(self, value: object) -> bool:
        return _number(value)


class Max(Reducer):
    """The largest value seen; None until the first."""

    name = "max"
    expects = "a number or a string (or None)"

    @staticmethod
    def wins(part: Any, total: Any) -> bool:
        return bool(part > total)

    def combine(self, total: Any, part: Any) -> Any:
        if part is None:
            return total
        return part if total is None or self.wins(part, total) else total

    def accepts(self, value: object) -> bool:
        return value is None or _number(value) or isinstance(value, str)


class Min(Max):
    """The smallest value seen; None until the first."""

    name = "min"

    @staticmethod
    def wins(part: Any, total: Any) -> bool:
        return bool(part < total)


class Last(Reducer):
    """The value of the last item in the input that set it; None until then."""

    name = "last"

    def combine(self, total: Any, part: Any) -> Any:
        return total if part is None else part


class Append(Reducer):
    """A list every item's values are appended to; starts empty."""

    name = "append"
    expects = "a list"

    def start(self) -> JSONValue:
        return []

    def combine(self, total: Any, part: Any) -> Any:
        total.extend(part)
        return total

    def accepts(self, value: object) -> bool:
        return isinstance(value, list)


REDUCERS: dict[str, type[Reducer]] = {r.name: r for r in (Sum, Max, Min, Last, Append)}
NAMES = "midway.Sum, midway.Max, midway.Min, midway.Last, midway.Append"
Reducers = dict[str, Reducer]


def split_state(initial: dict[str, Any] | None) -> tuple[dict[str, Any], Reducers]:
    """``state=`` as given: reducers become their start values, plain values stay."""
    if initial is None:
        return {}, {}
    if not isinstance(initial, dict):
        raise ConfigError(f"state= must be a dict, not {type(initial).__name__}")
    state: dict[str, Any] = {}
    reducers: Reducers = {}
    for key, value in initial.items():
        if isinstance(value, Reducer):
            if not isinstance(key, str):
                raise ConfigError(f"state key {key!r}: a key with a reducer must be a string")
            reducers[key] = value
            state[key] = value.start()
        elif isinstance(value, type) and issubclass(value, Reducer):
            raise ConfigError(
                f"state={{{key!r}: midway.{value.__name__}}}: give an instance, "
                f"midway.{value.__name__}()"
            )
        else:
            state[key] = value
    return state, reducers


def declaration(reducers: Reducers) -> dict[str, JSONValue]:
    """How the checkpoint records them: ``{"imported": "sum", ...}``."""
    return {key: reducer.name for key, reducer in sorted(reducers.items())}


def check_declaration(job_key: str, saved: object, reducers: Reducers) -> None:
    """A resume must combine keys the way the checkpoint's state was combined."""
    before = saved if isinstance(saved, dict) else {}
    now = declaration(reducers)
    if before == now:
        return
    import shlex  # for this message only: not for ``import midway``

    reset = f"midway reset {shlex.quote(job_key)} --yes"
    raise RefusedError(
        f"job {job_key!r} was checkpointed with the state reducers {_show(before)}, and this "
        f"run declares {_show(now)}: its saved state was combined the other way, so resuming "
        "would mix the two. Declare the same reducers in state= as before, or start over: "
        f"{reset}"
    )


def _show(declared: dict[str, Any]) -> str:
    if not declared:
        return "(none)"
    return (
        "{"
        + ", ".join(
            f"{k!r}: {REDUCERS[v]().__repr__() if v in REDUCERS else v}"
            for k, v in declared.items()
        )
        + "}"
    )


def check_values(state: dict[str, Any], reducers: Reducers, where: str) -> None:
    """Every reduced key holds what its reducer combines, or a ``ConfigError`` naming it."""
    for key, reducer in reducers.items():
        value = state.get(key, reducer.start())
        if not reducer.accepts(value):
            raise ConfigError(
                f"ctx.state[{key!r}] is {value!r} ({type(value).__name__}) {where}, but its "
                f"reducer {reducer!r} combines {reducer.expects}: store {reducer.expects} "
                "under that key, or declare another reducer for it"
            )


def undeclared_message(key: str, reducers: Reducers, workers: int) -> str:
    declared = ", ".join(f"{k!r}: {r!r}" for k, r in reducers.items()) or "none"
    return (
        f"the handler wrote ctx.state[{key!r}], which has no reducer (declared: {declared}). "
        f"With workers={workers}, each item's handler sees only its own contribution, so "
        "midway cannot know how to combine them (adding would turn a maximum into a sum). "
        f"Declare one in the initial state, e.g. job.run(source, handler, state={{{key!r}: "
        f"midway.Max()}}) to keep the largest or midway.Sum() to add up (all: {NAMES}), or "
        "pass Job(..., merge=fn(state, contribution)). The job stopped at this "
        "item; it is handled again on the next run"
    )


class Combiner:
    """Combines contributions into a job's state by the declared reducers, keeping for each
    ``Last`` key the place in the input of the item its value came from (``last_at``)."""

    def __init__(self, reducers: Reducers) -> None:
        self.reducers = reducers
        self.last_at: dict[str, int] = {}
        self.seen = 0  # items of the input before the watermark (with workers)

    def resume(self, job_key: str, extra: dict[str, Any], state: dict[str, Any], done: int) -> None:
        """From a checkpoint: the same declaration, values the reducers can combine, and
        where the ``Last`` values came from. ``done``: the items counted, for a checkpoint
        that did not record ``seen`` (a run without workers has no items above its
        position)."""
        check_declaration(job_key, extra.get("reducers"), self.reducers)
        check_values(state, self.reducers, "in the checkpoint it resumes from")
        last_at = extra.get("last_at")
        if isinstance(last_at, dict):
            self.last_at = {k: v for k, v in last_at.items() if isinstance(v, int)}
        seen = extra.get("seen")
        self.seen = seen if isinstance(seen, int) and not isinstance(seen, bool) else done

    def extra(self, state: dict[str, Any], parallel: bool) -> dict[str, JSONValue]:
        """What a checkpoint records beside the state (which is checked first)."""
        if not self.reducers:
            return {}
        check_values(state, self.reducers, "at a checkpoint")
        extra: dict[str, JSONValue] = {"reducers": declaration(self.reducers)}
        if parallel:
            extra["seen"] = self.seen
            extra["last_at"] = dict(self.last_at)
        return extra

    def seed(self) -> dict[str, Any]:
        """A new contribution: each reduced key at its start value."""
        return {key: reducer.start() for key, reducer in self.reducers.items()}

    def combine(self, state: dict[str, Any], part: dict[str, Any], at: int) -> None:
        """``part`` (checked by :meth:`refuse`) into ``state``; ``at``: the item's place."""
        for key, reducer in self.reducers.items():
            value = part.get(key)
            if isinstance(reducer, Last):
                if value is not None and at >= self.last_at.get(key, -1):
                    state[key] = value
                    self.last_at[key] = at
                continue
            if key not in state:
                state[key] = reducer.start()
            state[key] = reducer.combine(state[key], value if key in part else reducer.start())

    def take(
        self,
        state: dict[str, Any],
        part: dict[str, Any],
        at: int,
        merge: Callable[[dict[str, Any], dict[str, Any]], Any] | None,
        workers: int,
    ) -> str | None:
        """One finished unit's contribution into ``state``: declared keys by their
        reducers, the others by ``merge``. Returns why it cannot be (the job stops), or
        None once it is combined."""
        reducers = self.reducers
        problem = self.refuse(part)
        others = {k: v for k, v in part.items() if k not in reducers}
        if problem is None and others and merge is None:
            problem = undeclared_message(next(iter(others)), reducers, workers)
        if problem is not None:
            return problem
        if reducers:
            self.combine(state, part, at)
        if others and merge is not None:
            merge(state, others)
        return None

    def refuse(self, part: dict[str, Any]) -> str | None:
        """Why ``part`` cannot be combined (a reduced key holding what its reducer does not
        combine), or None."""
        for key, reducer in self.reducers.items():
            if key in part and not reducer.accepts(part[key]):
                value = part[key]
                return (
                    f"ctx.state[{key!r}] was set to {value!r} ({type(value).__name__}), but "
                    f"its reducer {reducer!r} combines {reducer.expects}; the job stopped "
                    "at this item, which is handled again on the next run"
                )
        return None


def merge_partitions(states: list[dict[str, Any]], reducers: Reducers, rest: Any) -> dict[str, Any]:
    """The partitions' final states, in partition order, combined into the whole job's:
    reduced keys by their reducers, the other keys by ``rest(state, part)``."""
    whole: dict[str, Any] = {key: reducer.start() for key, reducer in reducers.items()}
    for index, part in enumerate(states):
        check_values(part, reducers, f"in partition {index}")
        for key, reducer in reducers.items():
            if key in part:
                whole[key] = reducer.combine(whole[key], part[key])
        others = {k: v for k, v in part.items() if k not in reducers}
        if others:
            rest(whole, others)
    return whole


__all__ = ["Append", "Last", "Max", "Min", "Reducer", "Sum"]
