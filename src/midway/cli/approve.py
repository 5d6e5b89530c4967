"""``midway approve``: a person's decision on items waiting for one (``ctx.approval``)."""

from __future__ import annotations

import click

from midway.cli.options import item_keys, store_option
from midway.cli.output import open_existing
from midway.stores.approvals import decide, job_id_of
from midway.views import overview


@click.command()
@click.argument("job")
@click.argument("keys", nargs=-1)
@click.option("--reject", is_flag=True, help="Say no: ctx.approval returns False.")
@click.option("--all", "everything", is_flag=True, help="Every waiting item of the job.")
@click.option("--note", metavar="TEXT", default=None, help="Why: kept with the decision.")
@store_option
def approve(
    job: str,
    keys: tuple[str, ...],
    reject: bool,
    everything: bool,
    note: str | None,
    store_url: str | None,
) -> None:
    """Decide items waiting for a person (ctx.approval): yes, or no with --reject.

    The decision is kept with who made it and when (`midway report` shows it); the
    next run of the job hands each decided item back to its handler, whose
    ctx.approval(...) then returns True (or False with --reject). Refused while the
    job runs: decide between runs.

    \b
    Example:
      midway show validate-invoices          # the questions
      midway approve validate-invoices INV-0042 INV-0077
      midway approve validate-invoices INV-0101 --reject --note "duplicate"
      midway approve validate-invoices --all
    """
    if not keys and not everything:
        raise click.UsageError("name the waiting items' KEYS, or --all")
    if keys and everything:
        raise click.UsageError("name KEYS or give --all, not both")
    store = open_existing(store_url)
    try:
        record = overview.resolve(store, job)
        decided = decide(
            store,
            job_id_of(record),
            None if everything else item_keys(keys),
            approved=not reject,
            note=note,
        )
    finally:
        store.close()
    if not decided:
        click.echo(f"No item of {record.job!r} waits for a decision.")
        return
    verb = "rejected" if reject else "approved"
    click.echo(
        f"{len(decided):,} item(s) of {record.job!r} {verb}; run the job again to hand "
        "them back to its handler."
    )
