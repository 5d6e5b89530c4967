"""What a person may do to a job from the dashboard, each behind a confirmation page.

An action is a row of :data:`ACTIONS`. ``GET /jobs/<job>/<action>`` asks for confirmation
and ``POST`` there (with the CSRF token) does it. What it applies to comes with the request
as a :class:`Target`: ``key=<JSON>`` (one item) or ``all=1`` (every matching item) for the
ledger actions, ``text`` and ``author`` for a note. The ledger actions make the same store
calls as ``midway retry`` and ``midway resolve`` (:mod:`midway.ops.actions`, the Python API's
``job.retry`` / ``job.resolve``), so the dashboard, the command line and a script cannot
disagree about what a retry or a resolution means; on a distributed job they reach every
partition.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial

from midway._model.jsonutil import JSONValue
from midway._model.ledger import FAILED, IN_DOUBT, WAITING, ItemRecord, ItemStatus, matches
from midway._model.result import RunStatus
from midway.cli.options import item_keys
from midway.errors import EXIT_USAGE, MidwayError, RefusedError
from midway.ops import actions as ops
from midway.stores import Store
from midway.stores.approvals import decide, job_id_of, who
from midway.views import whole
from midway.views.models import ItemView, JobDetail

# A note travels in the confirmation page's address: 1,000 characters of any script stay
# within what the server reads of a request line (16 KiB) and of a form.
MAX_NOTE_CHARS = 1000
MAX_AUTHOR_CHARS = 80


class ActionInputError(MidwayError):
    """A dashboard form or link asked for something unclear (nothing was done)."""

    exit_code = EXIT_USAGE


@dataclass(frozen=True)
class Target:
    """What a confirmed action applies to. ``keys`` None: every item the action concerns."""

    keys: list[JSONValue] | None = None
    text: str = ""
    name: str = ""  # as typed into the note form (cleaned)
    author: str = ""  # what the note records: the name "via dashboard", or the default

    def fields(self) -> list[tuple[str, str]]:
        """The form fields that carry this target from the confirmation to the POST."""
        fields: list[tuple[str, str]] = []
        if self.keys is not None:
            fields += [("key", _key_text(key)) for key in self.keys]
        if self.text:
            fields.append(("text", self.text))
        if self.name:
            fields.append(("author", self.name))
        return fields


@dataclass(frozen=True)
class Action:
    name: str  # the URL segment: /jobs/<job>/<name>
    label: str  # the button that leads to the confirmation
    question: str  # the confirmation page's heading; {job}: the job's key, {what}: its target
    consequences: str  # what happens, said before it happens
    confirm: str  # the confirmation button
    done: str  # the notice afterwards: {job}, {count} (items changed), {s} and {them}
    perform: Callable[[Store, whole.Target, Target], int]  # returns how many items it changed
    # Why the action does not apply to this job now (given its ``job_detail``), or None.
    # The job page asks it to show or grey out the button; the POST asks it again.
    unavailable: Callable[[JobDetail], str | None]
    # Where the browser goes afterwards: "job" (its page) or "jobs" (the list).
    back_to: str = "job"
    # The ledger statuses it acts on: its target is ``key=...`` or ``all=1``, and the job
    # page offers it on each such item's row. Empty: the action is about the whole job.
    statuses: tuple[str, ...] = ()
    # The link on an item's row (for actions with ``statuses``).
    row_label: str = ""
    # Its target is a note: ``text`` and ``author`` (the job page has a form for it instead
    # of an entry in its list of actions).
    takes_note: bool = False

    def parse(self, params: Mapping[str, str], keys: list[str], default_author: str) -> Target:
        """The target named by a query (GET) or form (POST): ``keys`` are the ``key``
        values, in order. Raises :class:`ActionInputError` when it is unclear."""
        if self.statuses:
            return _item_target(keys, params.get("all") == "1")
        if self.takes_note:
            return _note_target(params.get("text", ""), params.get("author", ""), default_author)
        return Target()

    def describe(self, detail: JobDetail, target: Target) -> str:
        """The ``{what}`` of the question: ``item "c-17"``, ``all 3 failed items``."""
        if not self.statuses:
            return ""
        noun = " or ".join(s.replace("_", "-") for s in self.statuses)
        if target.keys is not None:
            return ", ".join(f"item {_key_text(k)}" for k in target.keys)
        count = len(concerned(self, detail, target))
        return f"all {count:,} {noun} item{'' if count == 1 else 's'}"


def offered(action: Action, detail: JobDetail) -> bool:
    """Whether the job page lists ``action`` at all: a ledger action only for a job that has
    such items (greyed out while a runner works), the note never (it has a form)."""
    if action.takes_note:
        return False
    return not action.statuses or any(item["status"] in action.statuses for item in detail.items)


def concerned(action: Action, detail: JobDetail, target: Target) -> list[ItemView]:
    """The ledger items (as ``job_detail`` lists them) that ``target`` picks for ``action``."""
    return [
        item
        for item in detail.items
        if item["status"] in action.statuses
        and matches(ItemRecord(item["key"], item["status"]), target.keys, None)
    ]


def target_unavailable(action: Action, detail: JobDetail, target: Target) -> str | None:
    """Why ``action`` cannot apply to ``target`` now, or None: the whole job's reason, else
    (for one item) that the item is no longer in a status the action concerns."""
    reason = action.unavailable(detail)
    if reason is not None or not action.statuses or target.keys is None:
        return reason
    if not concerned(action, detail, target):
        keys = ", ".join(_key_text(k) for k in target.keys)
        return (
            f"no {' or '.join(action.statuses)} item of this job has key {keys} now (it was "
            "handled already, or the job was reset); reload the job's page"
        )
    return None


def _key_text(key: JSONValue) -> str:
    return json.dumps(key, ensure_ascii=False)


def _item_target(keys: list[str], everything: bool) -> Target:
    if everything and keys:
        raise ActionInputError("name items by key, or all=1, not both")
    if everything:
        return Target(keys=None)
    if not keys:
        raise ActionInputError("say which items: key=<the item's key, as JSON> or all=1")
    return Target(keys=item_keys(keys))  # as `midway retry --key` reads them


def _one_line(text: str) -> str:
    """No control characters: an author's name is shown on one line wherever it goes."""
    return "".join(c for c in text if unicodedata.category(c)[0] != "C").strip()


def _note_target(text: str, author: str, default_author: str) -> Target:
    text = text.replace("\r\n", "\n").strip()
    if not text:
        raise ActionInputError("the note is empty; write what you decided and why")
    if len(text) > MAX_NOTE_CHARS:
        raise ActionInputError(
            f"the note has {len(text):,} characters; keep it under {MAX_NOTE_CHARS:,} "
            "(link to a longer text instead)"
        )
    name = _one_line(author)[:MAX_AUTHOR_CHARS]
    # Anyone who reaches the dashboard may type any name: the note says where it came from.
    author = f"{name} via dashboard" if name else default_author
    return Target(text=text, name=name, author=author)


# -- the actions ----------------------------------------------------------------------------


def _runner_at_work(detail: JobDetail) -> str | None:
    if detail.status == RunStatus.RUNNING:
        return (
            f"a runner ({detail.owner}) is working on this job now; stop it first "
            "(a crashed runner's lease expires on its own)"
        )
    return None


def _reset(store: Store, job: whole.Target, target: Target) -> int:
    ops.reset(store, job)
    return 0


RESET = Action(
    name="reset",
    label="Reset…",
    question="Forget job {job}?",
    consequences=(
        "This forgets the job's checkpoint, its failed, skipped and in-doubt items, its "
        "summary and its run history. Its next run starts from the first item. The data the "
        "job already wrote elsewhere is not touched."
    ),
    confirm="Forget this job",
    done="Job {job} reset: its next run starts from the first item.",
    perform=_reset,
    unavailable=_runner_at_work,
    back_to="jobs",
)


def _ledger_action(
    status: ItemStatus,
    change: Callable[[Store, whole.Target, list[JSONValue] | None], int],
    *,
    name: str,
    label: str,
    question: str,
    consequences: str,
    confirm: str,
    done: str,
    row_label: str,
) -> Action:
    """An action on the job's ``status`` items: ``change`` is the call of ``midway retry``
    / ``midway resolve``, available while no runner works and the job has such items."""
    statuses = (status,)

    def unavailable(detail: JobDetail) -> str | None:
        busy = _runner_at_work(detail)
        if busy is not None:
            return busy
        if not any(item["status"] in statuses for item in detail.items):
            return f"the job has no {' or '.join(s.replace('_', '-') for s in statuses)} items"
        return None

    def perform(store: Store, job: whole.Target, target: Target) -> int:
        changed = change(store, job, target.keys)
        if not changed:
            raise RefusedError(
                f"nothing changed: job {job.key!r} has no {' or '.join(statuses)} "
                "item now (someone handled it already?); reload the job's page"
            )
        return changed

    return Action(
        name=name,
        label=label,
        question=question,
        consequences=consequences,
        confirm=confirm,
        done=done,
        perform=perform,
        unavailable=unavailable,
        statuses=statuses,
        row_label=row_label,
    )


RETRY_FAILED = _ledger_action(
    FAILED,
    ops.retry,
    name="retry",
    label="Retry failed items…",
    question="Retry {what} of job {job}?",
    consequences=(
        "The items are put back (status retry): the next run of the job handles them again, "
        "and only them if the job had completed. Nothing runs now; start the job's command "
        "again when you are ready (as `midway retry` does)."
    ),
    confirm="Put them back",
    done="{count} failed item{s} of job {job} put back: the job's next run handles {them}.",
    row_label="Retry…",
)

RESOLVE_DONE = _ledger_action(
    IN_DOUBT,
    ops.resolve,  # done=True
    name="resolve-done",
    label="Resolve in-doubt items: they took effect…",
    question="Count {what} of job {job} as done?",
    consequences=(
        "A crash came while these items' handlers ran, so midway cannot know whether they "
        "took effect. Say so only after checking (the mail server's log, the payment "
        "provider): they then count as succeeded and are never handled again (as `midway "
        "resolve --done` does)."
    ),
    confirm="They took effect: count them as done",
    done="{count} in-doubt item{s} of job {job} counted as done.",
    row_label="Done…",
)

RESOLVE_RETRY = _ledger_action(
    IN_DOUBT,
    partial(ops.resolve, done=False),
    name="resolve-retry",
    label="Resolve in-doubt items: they did not…",
    question="Handle {what} of job {job} again?",
    consequences=(
        "Say so only after checking that they did not take effect: the next run of the job "
        "runs their handlers again (as `midway resolve --retry` does). If one did take "
        "effect, it happens twice."
    ),
    confirm="They did not: handle them again",
    done="{count} in-doubt item{s} of job {job} put back for the next run.",
    row_label="Retry…",
)


def _decision(approved: bool, **words: str) -> Action:
    """Approve or reject items waiting for a person (``ctx.approval``): the decision
    ``midway approve`` records, with "<name> via dashboard" as who decided."""
    statuses = (ItemStatus.WAITING,)

    def unavailable(detail: JobDetail) -> str | None:
        busy = _runner_at_work(detail)
        if busy is None and not any(item["status"] == WAITING for item in detail.items):
            return "the job has no items waiting for a decision"
        return busy

    def perform(store: Store, job: whole.Target, target: Target) -> int:
        record = job.record
        if record is None:  # ctx.approval is refused in distributed runs
            raise RefusedError("a distributed job has no items waiting for a decision")
        decided = decide(
            store,
            job_id_of(record),
            target.keys,
            approved=approved,
            by=f"{who()} via dashboard",
        )
        if not decided:
            raise RefusedError(
                f"nothing decided: job {record.job!r} has no item waiting now (someone "
                "decided already?); reload the job's page"
            )
        return len(decided)

    return Action(
        perform=perform,
        unavailable=unavailable,
        statuses=statuses,
        **words,  # type: ignore[arg-type]
    )


APPROVE = _decision(
    True,
    name="approve",
    label="Approve waiting items…",
    question="Approve {what} of job {job}?",
    consequences=(
        "Each item's question (in the table) is answered yes. Nothing runs now: the next run "
        "of the job hands them back to its handler, whose `ctx.approval` then returns True "
        "(as `midway approve` does)."
    ),
    confirm="Approve",
    done="{count} item{s} of job {job} approved: the job's next run hands {them} back.",
    row_label="Approve…",
)

REJECT = _decision(
    False,
    name="reject",
    label="Reject waiting items…",
    question="Reject {what} of job {job}?",
    consequences=(
        "Each item's question (in the table) is answered no. The next run of the job hands "
        "them back to its handler, whose `ctx.approval` then returns False (as `midway "
        "approve --reject` does)."
    ),
    confirm="Reject",
    done="{count} item{s} of job {job} rejected: the job's next run hands {them} back.",
    row_label="Reject…",
)


def _note(store: Store, job: whole.Target, target: Target) -> int:
    ops.note(store, job, target.text, target.author)
    return 0


NOTE = Action(
    name="note",
    label="Add note…",
    question="Add this note to job {job}?",
    consequences=(
        "Notes stay with the job until it is reset; the job page, `midway show` and "
        "`midway report` show them with their author and time."
    ),
    confirm="Add the note",
    done="Note added to job {job}.",
    perform=_note,
    unavailable=lambda detail: None,  # a note is welcome at any time, even mid-run
    takes_note=True,
)

ACTIONS: dict[str, Action] = {
    action.name: action
    for action in (RETRY_FAILED, RESOLVE_DONE, RESOLVE_RETRY, APPROVE, REJECT, NOTE, RESET)
}


def notice(action: Action, job: str, count: int) -> str:
    """The line shown after ``action`` changed ``count`` items of ``job``."""
    one = count == 1
    return action.done.format(
        job=job, count=f"{count:,}", s="" if one else "s", them="it" if one else "them"
    )
