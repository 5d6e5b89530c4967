"""The commands that change what the store holds of a job: ``reset``, ``retry``,
``resolve`` and ``note``."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Concatenate, ParamSpec

import click

from midway.cli.options import item_keys, store_option
from midway.cli.output import open_existing
from midway.ops import actions
from midway.stores import Store
from midway.views import whole
from midway.views.whole import Target

P = ParamSpec("P")


@click.command()
@click.argument("job")
@click.option("--yes", is_flag=True, help="Do it without asking.")
@store_option
def reset(job: str, yes: bool, store_url: str | None) -> None:
    """Forget a job: its checkpoint, item ledger, summary and run history.

    The next run starts from the first item. Refused while a runner holds the job.

    \b
    Example:
      midway reset import-contacts --yes
    """
    store = open_existing(store_url)
    try:
        target = whole.find(store, job)
        what = f"{target.key!r}" + (
            f" and its {len(target.parts)} partitions" if target.distributed else ""
        )
        if not yes:
            if not sys.stdin.isatty():
                raise click.UsageError(
                    f"reset forgets everything about {what}; add --yes to confirm"
                )
            click.confirm(f"Forget job {what} and its checkpoint?", abort=True)
        parts = actions.reset(store, target)
    finally:
        store.close()
    also = f" (and its {parts} partitions)" if parts else ""
    click.echo(f"Job {target.key!r}{also} reset: its next run starts from the first item.")


def _on_items(
    store_url: str | None,
    job: str,
    change: Callable[Concatenate[Store, Target, P], int],
    *args: P.args,
    **kwargs: P.kwargs,
) -> tuple[str, int]:
    """``retry`` and ``resolve``: ``change`` on the job named ``job`` (every partition of a
    distributed one); returns the job's key and how many items changed."""
    store = open_existing(store_url)
    try:
        target = whole.find(store, job)
        return target.key, change(store, target, *args, **kwargs)
    finally:
        store.close()


@click.command()
@click.argument("job")
@click.option("--key", "keys", multiple=True, metavar="KEY", help="Only this item (repeatable).")
@click.option(
    "--error",
    "error_type",
    metavar="TYPE",
    help="Only items that failed with this exception type, e.g. TimeoutError.",
)
@click.option("--skipped", is_flag=True, help="Put back skipped items instead of failed ones.")
@store_option
def retry(
    job: str, keys: tuple[str, ...], error_type: str | None, skipped: bool, store_url: str | None
) -> None:
    """Put failed items back: the next run of the job handles them, and only them.

    The next run finds each item again by its position where the source can seek
    (by one pass over the input where it cannot), then goes on where the job stood.

    \b
    Example:
      midway retry import-contacts
      midway retry import-contacts --error TimeoutError
      midway retry import-contacts --key 4711 --key 4712
    """
    key, changed = _on_items(
        store_url, job, actions.retry, item_keys(keys) or None, error_type, skipped=skipped
    )
    if not changed:
        click.echo(f"No {'skipped' if skipped else 'failed'} items of {key!r} match.")
        return
    click.echo(
        f"{changed:,} item(s) of {key!r} put back; run the job again to handle "
        "them (only them, if it had completed)."
    )


@click.command()
@click.argument("job")
@click.argument("keys", nargs=-1)
@click.option(
    "--done", "decision", flag_value="done", help="They took effect: count them as succeeded."
)
@click.option(
    "--retry", "decision", flag_value="retry", help="They did not: the next run handles them again."
)
@click.option("--all", "everything", is_flag=True, help="Every in-doubt item of the job.")
@store_option
def resolve(
    job: str, keys: tuple[str, ...], decision: str | None, everything: bool, store_url: str | None
) -> None:
    """Decide the fate of in-doubt items (at-most-once jobs), after checking by hand.

    An item is in doubt when a crash came while its handler ran: midway cannot know
    whether the e-mail went out. Look (the mail server's log, the payment provider),
    then say so.

    \b
    Example:
      midway resolve send-invoices 4711 --done
      midway resolve send-invoices --all --retry
    """
    if decision is None:
        raise click.UsageError("say --done (it took effect) or --retry (handle it again)")
    if not keys and not everything:
        raise click.UsageError("name the in-doubt items' KEYS, or --all")
    key, changed = _on_items(
        store_url,
        job,
        actions.resolve,
        None if everything else item_keys(keys),
        done=decision == "done",
    )
    if not changed:
        click.echo(f"No in-doubt items of {key!r} match.")
        return
    what = "counted as done" if decision == "done" else "put back for the next run"
    click.echo(f"{changed:,} in-doubt item(s) of {key!r} {what}.")


@click.command()
@click.argument("job")
@click.argument("text")
@click.option("--author", default=None, help="Who writes it (default: $USER@host).")
@store_option
def note(job: str, text: str, author: str | None, store_url: str | None) -> None:
    """Add a timestamped note to a job: who decided what, and why.

    `midway show` and `midway report` show the notes.

    \b
    Example:
      midway note import-contacts "paused for the CRM upgrade; resume after 18:00"
    """
    store = open_existing(store_url)
    try:
        target = whole.find(store, job)
        actions.note(store, target, text, author)
    finally:
        store.close()
    click.echo(f"Note added to {target.key!r}.")
