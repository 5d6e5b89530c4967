"""The commands that change what the store holds of a job: ``reset``, ``retry``,
``resolve`` and ``note``."""

from __future__ import annotations

import sys

import click

from midway._model.identity import partition_of
from midway._model.jsonutil import JSONValue
from midway._model.ledger import DROP, FAILED, IN_DOUBT, RETRY, SKIPPED, ItemStatus
from midway._model.owner import Owner, hostname
from midway.cli.options import item_keys, store_option, user_name
from midway.cli.output import open_existing
from midway.stores import Store
from midway.views import overview


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
        if store.get_job(job) is None and _reset_partitions(store, job, yes):
            return
        record = overview.resolve(store, job)
        if not yes:
            if not sys.stdin.isatty():
                raise click.UsageError(
                    f"reset forgets everything about {record.job!r}; add --yes to confirm"
                )
            click.confirm(f"Forget job {record.job!r} and its checkpoint?", abort=True)
        store.reset(record.job, Owner.current())
        parts = [r.job for r in store.list_jobs() if partition_of(r.job) == record.job]
        for part in parts:  # a distributed job's partitions
            store.reset(part, Owner.current())
    finally:
        store.close()
    also = f" (and its {len(parts)} partitions)" if parts else ""
    click.echo(f"Job {record.job!r}{also} reset: its next run starts from the first item.")


def _change_items(
    store_url: str | None,
    job: str,
    *,
    statuses: tuple[ItemStatus, ...],
    keys: list[JSONValue] | None,
    error_type: str | None,
    to_status: ItemStatus,
    count_as: str | None,
) -> tuple[str, int]:
    """``retry`` and ``resolve``: the store's ``change_items`` on the job named ``job``;
    returns the job's key and how many items changed."""
    store = open_existing(store_url)
    try:
        record = overview.resolve(store, job)
        changed = store.change_items(
            record.job,
            Owner.current(),
            statuses=statuses,
            keys=keys,
            error_type=error_type,
            to_status=to_status,
            count_as=count_as,
        )
    finally:
        store.close()
    return record.job, len(changed)


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
    key, changed = _change_items(
        store_url,
        job,
        statuses=(SKIPPED,) if skipped else (FAILED,),
        keys=item_keys(keys) or None,
        error_type=error_type,
        to_status=RETRY,
        count_as="failed" if skipped else None,
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
    key, changed = _change_items(
        store_url,
        job,
        statuses=(IN_DOUBT,),
        keys=None if everything else item_keys(keys),
        error_type=None,
        to_status=DROP if decision == "done" else RETRY,
        count_as="succeeded" if decision == "done" else "failed",
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
        record = overview.resolve(store, job)
        store.add_note(record.job, text, author or f"{user_name()}@{hostname()}")
    finally:
        store.close()
    click.echo(f"Note added to {record.job!r}.")


def _reset_partitions(store: Store, job: str, yes: bool) -> bool:
    """``midway reset NAME`` of a distributed job: its partitions are the jobs to forget."""
    parts = [
        r.job
        for r in store.list_jobs()
        if (base := partition_of(r.job)) is not None and job in (base, r.name)
    ]
    if not parts and store.load_plan(job) is None:
        return False
    if not yes:
        raise click.UsageError(
            f"reset forgets the {len(parts)} partitions of {job!r}; add --yes to confirm"
        )
    for part in parts:
        store.reset(part, Owner.current())
    store.reset(job, Owner.current())  # and how it was split: the next run splits it anew
    click.echo(f"Job {job!r} and its {len(parts)} partitions reset: the next run starts afresh.")
    return True
