"""What a person may do to a job from the dashboard, each behind a confirmation page.

An action is a row of :data:`ACTIONS`: the job page offers a button for each one that applies,
``GET /jobs/<job>/<action>`` asks for confirmation, and ``POST`` there (with the CSRF token)
does it. New actions (retry failed items, resolve in-doubt items, add a note) join the table
once the store can do them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from midway.owner import Owner
from midway.stores import JobRecord, Store


@dataclass(frozen=True)
class Action:
    name: str  # the URL segment: /jobs/<job>/<name>
    label: str  # the button that leads to the confirmation
    question: str  # the confirmation page's heading; {job} is the job's key
    consequences: str  # what happens, said before it happens
    confirm: str  # the confirmation button
    done: str  # the notice afterwards; {job} is the job's key
    perform: Callable[[Store, JobRecord], None]
    # Why the action does not apply to this job now (given its ``job_summary``), or None.
    # The job page asks it to show or grey out the button; the POST asks it again.
    unavailable: Callable[[dict[str, Any]], str | None]
    # Where the browser goes afterwards: "job" (its page) or "jobs" (the list).
    back_to: str = "job"


def _reset(store: Store, record: JobRecord) -> None:
    store.reset(record.job, Owner.current())


def _reset_unavailable(detail: dict[str, Any]) -> str | None:
    if detail["status"] == "running":
        return (
            f"a runner ({detail['owner']}) is working on this job now; stop it first "
            "(a crashed runner's lease expires on its own)"
        )
    return None


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
    unavailable=_reset_unavailable,
    back_to="jobs",
)

ACTIONS: dict[str, Action] = {action.name: action for action in (RESET,)}
