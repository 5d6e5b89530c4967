"""``midway metrics``: every job of a store in the Prometheus text format, to stdout."""

from __future__ import annotations

import click

from midway.cli.options import store_option
from midway.cli.output import open_existing
from midway.errors import StoreNotFound
from midway.views.metrics import metrics_text, prometheus


@click.command()
@store_option
def metrics(store_url: str | None) -> None:
    """Print every job's metrics in the Prometheus text format.

    The same text the dashboard serves at /metrics: for node_exporter's textfile collector
    or a push gateway. A store not made yet prints no job. Needs prometheus_client
    (pip install 'midway[ui]').

    \b
    Example:
      midway metrics > /var/lib/node_exporter/midway.prom
      midway metrics --store sqlite:///jobs.db | curl --data-binary @- \\
          http://pushgateway:9091/metrics/job/midway
    """
    prometheus()  # a missing extra is named before the store is opened
    try:
        store = open_existing(store_url)
    except StoreNotFound:
        click.echo(metrics_text(None), nl=False)
        return
    try:
        text = metrics_text(store)
    finally:
        store.close()
    click.echo(text, nl=False)
