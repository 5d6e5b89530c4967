"""Properties of checkpoints: any JSON state survives the round trip, through JSON text and
through the SQLite store, and a non-JSON value anywhere is named by its exact path."""

from __future__ import annotations

import datetime
import decimal
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from midway import StateNotSerializable
from midway._model.checkpoint import COUNTER_NAMES, Checkpoint, Counters
from midway._model.identity import JobId
from midway._model.jsonutil import dumps, dumps_state
from midway._model.owner import Owner
from midway.stores import open_store

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=25,
)
STATES = st.dictionaries(st.text(max_size=10), JSON_VALUES, max_size=6)
COUNTS = st.integers(min_value=0, max_value=2**53)
TIMES = st.floats(min_value=0, max_value=4e9, allow_nan=False, allow_infinity=False)

COUNTERS = st.builds(Counters, COUNTS, COUNTS, COUNTS, COUNTS, COUNTS)
CHECKPOINTS = st.builds(
    Checkpoint,
    job=st.from_regex(r"[a-z][a-z0-9-]{0,15}", fullmatch=True),
    version=st.integers(min_value=0, max_value=2**53),
    run_id=st.text(min_size=1, max_size=32),
    position=JSON_VALUES,
    counters=COUNTERS,
    state=STATES,
    fingerprint=st.dictionaries(st.text(max_size=10), JSON_VALUES, max_size=5),
    total=st.none() | COUNTS,
    started_at=TIMES,
    updated_at=TIMES,
    extra=st.dictionaries(st.text(max_size=10), JSON_VALUES, max_size=3),
)


@settings(max_examples=50)
@given(CHECKPOINTS)
def test_checkpoint_round_trips_through_json_text(cp: Checkpoint) -> None:
    text = dumps(cp.to_json())
    back = Checkpoint.from_json(json.loads(text), "test")
    assert back == cp


@given(COUNTERS)
def test_processed_is_the_sum_of_outcomes(counters: Counters) -> None:
    assert counters.processed == sum(counters.as_dict().values())
    assert counters.processed == (
        counters.succeeded
        + counters.failed
        + counters.skipped
        + counters.in_doubt
        + counters.waiting
    )
    # waiting is left out while no item waits: the shape of every other job stays as it was
    assert set(counters.as_dict()) | {"waiting"} == set(COUNTER_NAMES)
    assert Counters.from_dict(counters.as_dict()) == counters
    assert counters.copy() == counters
    assert counters.copy() is not counters


# -- a non-JSON value, anywhere, is named by its path ---------------------------------------

BAD_VALUES: list[Callable[[], Any]] = [
    set,
    object,
    lambda: datetime.datetime(2024, 1, 2, 3, 4, 5),
    lambda: decimal.Decimal("1.5"),
    lambda: b"bytes",
    lambda: math.nan,
    lambda: math.inf,
    lambda: complex(1, 2),
]

# A path into a nested structure: dict keys (str) or list indexes.
STEPS = st.lists(
    st.one_of(
        st.text(max_size=6).map(lambda k: ("key", k)), st.integers(0, 3).map(lambda i: ("index", i))
    ),
    min_size=0,
    max_size=5,
)


def plant(steps: list[tuple[str, Any]], bad: Any, filler: Any) -> tuple[Any, str]:
    """A JSON structure with ``bad`` at the end of ``steps``, and the path that names it."""
    value = bad
    path = ""
    for kind, step in reversed(steps):
        if kind == "key":
            value = {"before": filler, step: value} if step != "before" else {step: value}
            path = f"[{step!r}]" + path
        else:
            value = [filler] * step + [value, filler]
            path = f"[{step}]" + path
    return value, path


@settings(max_examples=100)
@given(
    top=st.text(max_size=8),
    steps=STEPS,
    bad_index=st.integers(0, len(BAD_VALUES) - 1),
    filler=JSON_VALUES,
    others=STATES,
)
def test_state_not_serializable_names_the_exact_path(
    top: str, steps: list[tuple[str, Any]], bad_index: int, filler: Any, others: dict[str, Any]
) -> None:
    bad = BAD_VALUES[bad_index]()
    nested, tail = plant(steps, bad, filler)
    state = {k: v for k, v in others.items() if k != top}
    state[top] = nested
    expected = f"ctx.state[{top!r}]{tail}"
    with pytest.raises(StateNotSerializable) as info:
        dumps_state(state)
    assert info.value.path == expected, (state, expected)
    assert expected in str(info.value)
    assert info.value.exit_code == 1


NON_STRING_KEYS = [1, 2.5, True, None]


@pytest.mark.parametrize("key", NON_STRING_KEYS, ids=repr)
def test_non_string_key_is_named(key: Any) -> None:
    """json.dumps would quietly save {1: x} as {"1": x}: the resumed state would differ."""
    with pytest.raises(StateNotSerializable) as info:
        dumps_state({"counts": {key: "one"}})
    assert info.value.path == f"ctx.state['counts'][{key!r}]"
    assert "key" in str(info.value)


def test_tuple_key_is_named() -> None:
    with pytest.raises(StateNotSerializable) as info:
        dumps_state({"pairs": {(1, 2): "one"}})
    assert info.value.path == "ctx.state['pairs'][(1, 2)]"


def test_circular_state_is_a_state_error() -> None:
    state: dict[str, Any] = {"items": []}
    state["items"].append(state)
    with pytest.raises(StateNotSerializable) as info:
        dumps_state(state)
    assert info.value.path.startswith("ctx.state['items'][0]")


@settings(max_examples=50)
@given(STATES)
def test_dumps_state_accepts_any_json_state(state: dict[str, Any]) -> None:
    assert json.loads(dumps_state(state)) == state


# -- through the SQLite store -------------------------------------------------------------


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(state=STATES, position=JSON_VALUES, counters=COUNTERS, version=st.integers(1, 2**53))
def test_sqlite_store_returns_what_was_written(
    tmp_path: Path, state: dict[str, Any], position: Any, counters: Counters, version: int
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'props.db'}", durable=False)
    try:
        job = JobId("props")
        lease = store.acquire_lease(job, Owner.current(), 5.0)
        cp = Checkpoint(
            job=job.key,
            version=version,
            run_id="r",
            position=position,
            counters=counters,
            state=state,
            fingerprint={"kind": "test", "state_keys": sorted(state)},
            total=None,
            started_at=1.5,
            updated_at=2.5,
        )
        store.write_checkpoint(lease, cp)
        store.release_lease(lease)
        assert store.load_checkpoint(job.key) == cp
    finally:
        store.close()
