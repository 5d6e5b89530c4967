"""The items ``midway retry`` put back and those ``midway approve`` decided: handled one by
one before anything else."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from midway._model import approval, jsonutil
from midway._model.jsonutil import JSONValue
from midway._model.ledger import ItemRecord, ItemStatus, drop
from midway.errors import MidwayError
from midway.run.commits import Commits
from midway.run.itemflow import IN_DOUBT_AFTER_CRASH, ItemFlow
from midway.run.runstate import RunState


class RetryPass:
    """The queue of items put back, and how they are found again in the input."""

    def __init__(self, run: RunState, flow: ItemFlow, commits: Commits) -> None:
        self.run = run
        self.flow = flow
        self.commits = commits
        self.queue: list[ItemRecord] = []

    def walk(self, handler: Callable[[Any, Any], Any]) -> None:
        """Handle every item in the queue (a stop ends the pass)."""
        queue, self.queue = self.queue, []
        if not queue:
            return
        run, flow = self.run, self.flow
        decided = sum(r.status == ItemStatus.DECIDED for r in queue)
        if decided < len(queue):
            flow.say_item(f"retrying {len(queue) - decided:,} item(s) put back by `midway retry`")
        if decided:
            flow.say_item(f"handing back {decided:,} item(s) decided by `midway approve`")
        found = self.find_items(queue)
        for record in queue:
            if run.stop_requested:
                return
            hit = found.get(jsonutil.dumps(record.key))
            if hit is None:
                flow.say_item(
                    f"item {jsonutil.dumps(record.key)} is not in {run.source.describe()} any "
                    "more: left in the ledger as it was"
                )
                continue
            if not self.one(record, hit, handler):
                return
            self.commits.checkpoint(wait=True)

    def one(self, record: ItemRecord, hit: tuple[Any, JSONValue], handler: Any) -> bool:
        """The item again; False when a stop came while it waited to retry (still put back)."""
        item, position = hit
        key = record.key
        counters, flow = self.run.counters, self.flow
        if self.killed_in_hand_back(record):  # after the mark that counted it as succeeded
            why = IN_DOUBT_AFTER_CRASH
            flow.record_outcome(key, ItemStatus.IN_DOUBT, None, 1, position, item, why)
            return True
        # counted as failed (put back) or waiting (decided) until now
        was = "waiting" if record.status == ItemStatus.DECIDED else "failed"
        setattr(counters, was, max(getattr(counters, was) - 1, 0))
        counters.succeeded += 1  # as the bare loop counts; record_outcome moves it if need be
        flow.retry_key, flow.retry_status = key, ItemStatus(record.status)
        flow.retry_position = position
        flow.paused_item = False
        try:
            flow.run_one(item, key, position, handler)
        except BaseException:
            setattr(counters, was, getattr(counters, was) + 1)
            counters.succeeded -= 1
            raise
        finally:
            flow.retry_key, flow.retry_status, flow.retry_position = None, None, None
        if flow.paused_item:
            setattr(counters, was, getattr(counters, was) + 1)
            counters.succeeded -= 1
            return False
        if not any(r.key == key and r.status != ItemStatus.DROP for r in self.run.pending):
            self.run.pending.append(drop(key))  # it succeeded: its record goes
        return True

    def killed_in_hand_back(self, record: ItemRecord) -> bool:
        """A decided item an at-most-once run handed back, killed in its handler."""
        return (
            record.status == ItemStatus.DECIDED
            and self.flow.guarantee.marks_started
            and approval.handed_back(record.steps)
        )

    def find_items(self, queue: list[ItemRecord]) -> dict[str, tuple[Any, JSONValue]]:
        """The items to retry, by key: straight at their position where the source can
        seek, else by one pass over the input."""
        found: dict[str, tuple[Any, JSONValue]] = {}
        wanted = {jsonutil.dumps(r.key): r for r in queue}
        source = self.run.source
        if source.seekable:
            for name, record in wanted.items():
                hit = self.item_at(record.position)
                if hit is not None and jsonutil.dumps(hit[0]) == name:
                    found[name] = (hit[1], record.position)
            if len(found) == len(wanted):
                return found
        cursor = source.open(None)
        try:
            for chunk in cursor:
                for i, item in enumerate(chunk.items):
                    name = jsonutil.dumps(chunk.key(i))
                    if name in wanted and name not in found:
                        found[name] = (item, chunk.position_before(i))
                if len(found) == len(wanted):
                    break
        finally:
            cursor.close()
        return found

    def item_at(self, position: JSONValue) -> tuple[JSONValue, Any] | None:
        try:
            cursor = self.run.source.open(position)
        except MidwayError:
            return None
        try:
            for chunk in cursor:
                if chunk.items:
                    return chunk.key(0), chunk.items[0]
        finally:
            cursor.close()
        return None
