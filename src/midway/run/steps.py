"""``ctx.step``: results of an item's steps, kept until the item is done."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from midway._model import jsonutil
from midway._model.jsonutil import JSONValue
from midway._model.ledger import STEPS, ItemRecord, drop
from midway.errors import ConfigError


class StepRecords:
    """The finished steps of the items not yet done, by the item's key (as JSON)."""

    def __init__(self) -> None:
        self.results: dict[str, dict[str, JSONValue]] = {}
        self.touched: set[str] = set()
        """Items whose steps ran or were read since the last checkpoint."""

    def load(self, name: str, steps: dict[str, JSONValue]) -> None:
        self.results[name] = dict(steps)

    def run(
        self,
        name: str,
        fn: Callable[..., Any],
        call: tuple[tuple[Any, ...], Any],
        item: tuple[JSONValue, JSONValue, int],
        store: Callable[[list[ItemRecord]], None],
    ) -> Any:
        """Step ``name`` of the item (``key, position, attempt``): its stored result, or
        ``fn(*args, **kwargs)`` run now and stored with ``store``."""
        key, position, attempt = item
        item_name = jsonutil.dumps(key)
        done = self.results.get(item_name)
        if done is not None and name in done:
            self.touched.add(item_name)
            return done[name]
        args, kwargs = call
        result = fn(*args, **kwargs)
        try:
            jsonutil.dumps(result)
        except (TypeError, ValueError, RecursionError):
            raise ConfigError(
                f"ctx.step({name!r}) returned a {type(result).__name__}, which is not JSON; "
                "a step's result is stored so that a retry can reuse it: return JSON "
                "(dict, list, str, number, bool or None)"
            ) from None
        steps = self.results.setdefault(item_name, {})
        steps[name] = result
        self.touched.add(item_name)
        record = ItemRecord(
            key,
            STEPS,
            attempts=attempt,
            position=position,
            updated_at=time.time(),
            steps=dict(steps),
        )
        store([record])
        return result

    def pop(self, name: str) -> dict[str, JSONValue]:
        """The item has an outcome: its steps go with its record."""
        self.touched.discard(name)
        return self.results.pop(name, {})

    def get(self, name: str) -> dict[str, JSONValue]:
        return self.results.get(name, {})

    def __contains__(self, name: str) -> bool:
        return name in self.results

    def finished(self) -> list[ItemRecord]:
        """Between slices no item is in hand: the steps of items touched since the last
        checkpoint belong to finished items, and go."""
        if not self.touched:
            return []
        gone = [drop(json_key(name)) for name in self.touched]
        for name in self.touched:
            self.results.pop(name, None)
        self.touched.clear()
        return gone


def json_key(name: str) -> JSONValue:
    value: JSONValue = json.loads(name)
    return value
