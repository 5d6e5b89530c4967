"""Prometheus metrics: ``midway metrics`` and the dashboard's ``/metrics``, read with
``prometheus_client``'s own parser, against a job held at a known item in a real process,
after it was SIGKILLed there, and after the run that resumed it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

import midway
from midway._model.checkpoint import Checkpoint
from midway.stores import open_store
from support.itemjob import ItemJob, ItemSpec
from support.uiserver import serve

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
LABELS = {"job", "outcome", "status", "state"}


def parse(text: str) -> Samples:
    """Every sample of the text by (name, labels), through prometheus_client's parser."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            assert set(sample.labels) <= LABELS, sample  # never an item's key
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def cli_metrics(store: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "midway", "metrics", "--store", store],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
        check=False,
    )


def scrape(store: str) -> Samples:
    result = cli_metrics(store)
    assert result.returncode == 0, result.stderr
    return parse(result.stdout)


def value(samples: Samples, name: str, job: str, **labels: str) -> float | None:
    return samples.get((name, frozenset({"job": job, **labels}.items())))


def checkpoint_of(store_url: str, job: str) -> Checkpoint | None:
    store = open_store(store_url)
    try:
        record = store.get_job(job)
        return None if record is None else record.checkpoint
    finally:
        store.close()


def scrape_steady(store: str, job: str) -> tuple[Checkpoint, Samples]:
    """The job's checkpoint and a scrape taken while it stayed the same."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        before = checkpoint_of(store, job)
        samples = scrape(store)
        after = checkpoint_of(store, job)
        if before is not None and after is not None and before.version == after.version:
            time.sleep(0.3)  # a commit in flight lands, then the next look is steady
            if (checkpoint_of(store, job) or before).version == after.version:
                return after, samples
        time.sleep(0.05)
    raise AssertionError(f"no steady checkpoint of {job} in 30 s")


def items(samples: Samples, job: str) -> dict[str, float | None]:
    outcomes = ("succeeded", "failed", "skipped", "in_doubt")
    return {o: value(samples, "midway_items_total", job, outcome=o) for o in outcomes}


def test_metrics_follow_a_job_while_it_runs_after_a_kill_and_after_the_resume(
    tmp_path: Path,
) -> None:
    store = f"sqlite:///{tmp_path / 'state.db'}"
    spec = ItemSpec(store=store, n=40, every=5, refuse=[3, 11, 30], hold=[23], max_failures=10)
    job = ItemJob(tmp_path / "job", spec)
    job.hold(23)
    proc = job.start()
    try:
        job.wait_for(0, 22)
        # The checkpoint the held run left on disk: after item 4, 9, 14 or 19 (group
        # commit skips a checkpoint due while the one before is still being written).
        saved, samples = scrape_steady(store, job.key)
        processed = saved.counters.processed
        assert processed in (5, 10, 15, 20)
        refused = len([i for i in spec.refuse if i < processed])
        assert items(samples, job.key) == {
            "succeeded": processed - refused,
            "failed": refused,
            "skipped": 0,
            "in_doubt": 0,
        }
        assert value(samples, "midway_checkpoints_total", job.key) == saved.version
        assert value(samples, "midway_job_running", job.key) == 1
        assert value(samples, "midway_job_items_remaining", job.key) == 40 - processed
        assert value(samples, "midway_job_progress_ratio", job.key) == processed / 40
        assert (value(samples, "midway_lease_expires_in_seconds", job.key) or 0) > 0
        assert (value(samples, "midway_checkpoint_age_seconds", job.key) or -1) >= 0
        assert value(samples, "midway_runs_total", job.key, status="running") == 1

        with serve(store) as served:
            refused = httpx.get(served.url + "metrics")
            assert refused.status_code == 401
            assert "midway_items_total" not in refused.text
            response = httpx.get(served.url + "metrics", headers=served.auth)
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
            served_samples = parse(response.text)
        assert items(served_samples, job.key) == items(samples, job.key)
        assert value(served_samples, "midway_checkpoints_total", job.key) == saved.version

        proc.kill()  # SIGKILL, held at item 23
        proc.communicate()
    finally:
        job.stop_all()
    job.release(23)

    killed = scrape(store)
    assert items(killed, job.key) == items(samples, job.key)
    assert value(killed, "midway_job_running", job.key) == 0

    finished = job.run()
    assert finished.returncode == 0, finished.stderr
    assert job.handled(1)[0] == processed, "the resumed run starts at the checkpoint"
    done = scrape(store)
    assert items(done, job.key) == {"succeeded": 37, "failed": 3, "skipped": 0, "in_doubt": 0}
    assert value(done, "midway_job_running", job.key) == 0
    assert value(done, "midway_job_progress_ratio", job.key) == 1
    assert value(done, "midway_runs_total", job.key, status="crashed") == 1
    assert value(done, "midway_runs_total", job.key, status="completed_with_failures") == 1
    assert value(done, "midway_checkpoints_total", job.key) is None  # the checkpoint is gone


def test_a_distributed_job_shows_its_partitions_and_counts_each_item_once(
    tmp_path: Path,
) -> None:
    store = f"sqlite:///{tmp_path / 'state.db'}"
    job = midway.Job("spread", store=store, partitions=3, quiet=True)
    job.run(range(30), lambda item, ctx: None, distributed=True)
    samples = scrape(store)
    assert value(samples, "midway_partitions", "spread", state="completed") == 3
    assert value(samples, "midway_items_total", "spread", outcome="succeeded") is None
    succeeded = [
        v
        for (name, labels), v in samples.items()
        if name == "midway_items_total" and ("outcome", "succeeded") in labels
    ]
    assert len(succeeded) == 3
    assert sum(succeeded) == 30


def test_no_store_yet_prints_no_job_and_a_missing_client_names_the_extra(
    tmp_path: Path,
) -> None:
    empty = cli_metrics(f"sqlite:///{tmp_path / 'none.db'}")
    assert empty.returncode == 0, empty.stderr
    assert "midway_items_total{" not in empty.stdout
    assert not (tmp_path / "none.db").exists()
    blocker = tmp_path / "blocker" / "prometheus_client"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('not installed')\n")
    missing = cli_metrics(f"sqlite:///{tmp_path / 'none.db'}", PYTHONPATH=str(blocker.parent))
    assert missing.returncode == 2  # ConfigError, as `midway ui` without its extra
    assert "pip install 'midway[ui]'" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_the_grafana_dashboard_plots_only_metrics_midway_serves(tmp_path: Path) -> None:
    dashboard = Path(__file__).resolve().parents[1] / "examples" / "grafana"
    text = (dashboard / "midway-dashboard.json").read_text(encoding="utf-8")
    exprs = [t["expr"] for p in json.loads(text)["panels"] for t in p["targets"]]
    plotted = {name for expr in exprs for name in re.findall(r"midway_\w+", expr)}
    served = cli_metrics(f"sqlite:///{tmp_path / 'none.db'}").stdout
    exposed = set(re.findall(r"^# TYPE (\S+)", served, re.MULTILINE))
    assert plotted
    assert plotted <= exposed, plotted - exposed
