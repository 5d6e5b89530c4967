"""examples/kubernetes/job.yaml, run without a cluster: N ``midway worker`` processes with
the environment the manifest gives its pods (the names read from the manifest, so that this
test breaks if they drift), one SIGKILLed mid-partition as a lost pod is; the others take its
partition over once its lease expires, and ``midway status`` names each holder
``<pod>#<index>``."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from midway.stores import open_store
from midway.views import overview
from support.crashjob import pick_seed
from support.killer import LineCounter

yaml = pytest.importorskip("yaml")

MANIFEST = Path(__file__).resolve().parents[2] / "examples" / "kubernetes" / "job.yaml"
N, EVERY, PODS = 1200, 20, 3
SCRIPT = (
    textwrap.dedent(
        """
    import json, os, sys, time
    import midway

    log = os.open(os.environ["CALLS_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)


    def handle(item, ctx):
        os.write(log, f"{item} {os.getpid()}\\n".encode())
        time.sleep(0.004)
        ctx.state["count"] = ctx.state.get("count", 0) + 1
        ctx.state["sum"] = ctx.state.get("sum", 0) + item


    def main():
        # the store: $MIDWAY_STORE, from the manifest's Secret
        job = midway.Job("import-contacts", partitions=6, every=EVERY, max_lag=0,
                         lease_ttl=1.0, progress=False)
        result = job.run(range(N), handle)
        print(json.dumps({"status": result.status, "processed": result.processed,
                          "state": result.state}))
    """
    )
    .replace("EVERY", str(EVERY))
    .replace("range(N)", f"range({N})")
)


def manifest_worker() -> dict[str, Any]:
    """The Job's container: its command and env, as the manifest gives them."""
    documents = [d for d in yaml.safe_load_all(MANIFEST.read_text(encoding="utf-8")) if d]
    job = next(d for d in documents if d["kind"] == "Job")
    assert job["spec"]["completionMode"] == "Indexed"
    assert "backoffLimitPerIndex" in job["spec"]
    secret = next(d for d in documents if d["kind"] == "Secret")
    container = job["spec"]["template"]["spec"]["containers"][0]
    refs = [e["valueFrom"].get("secretKeyRef", {}).get("name") for e in container["env"]]
    assert secret["metadata"]["name"] in refs  # the store URL comes from the Secret
    return {"command": container["command"], "env": [e["name"] for e in container["env"]]}


def pod_env(names: list[str], index: int, store_url: str) -> dict[str, str]:
    """What Kubernetes puts in pod ``index``'s environment for each name of the manifest."""
    values = {
        "MIDWAY_STORE": store_url,
        "JOB_COMPLETION_INDEX": str(index),
        "HOSTNAME": f"import-contacts-{index}-x{index}k2p",
    }
    unknown = set(names) - set(values)
    assert not unknown, f"the manifest sets {unknown}: say here what a pod gets for them"
    return {name: values[name] for name in names}


@pytest.fixture
def pods() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def owners(store_url: str) -> set[str]:
    store = open_store(store_url)
    try:
        rows = [row.to_json() for row in overview.status_rows(store)]
    finally:
        store.close()
    return {r["owner"] for r in rows if r.get("partition_of") == "import-contacts" and r["owner"]}


def test_indexed_job_workers_survive_a_lost_pod_and_show_their_names(
    postgresql_url: str, tmp_path: Path, pods: list[subprocess.Popen[bytes]]
) -> None:
    seed = pick_seed()
    kill_at = random.Random(seed).randrange(150, 600)
    why = f"seed {seed}: kill at item {kill_at}"
    worker = manifest_worker()
    assert worker["command"][:2] == ["midway", "worker"], worker
    script = tmp_path / "import_contacts.py"
    script.write_text(SCRIPT, encoding="utf-8")
    log = tmp_path / "calls.log"
    counter = LineCounter(log)
    target = worker["command"][2].replace("import_contacts.py", str(script))
    for index in range(PODS):
        env = {**os.environ, "CALLS_LOG": str(log)}
        env.pop("MIDWAY_STORE", None)
        env.update(pod_env(worker["env"], index, postgresql_url))
        pods.append(
            subprocess.Popen(
                [sys.executable, "-m", "midway", "worker", target],
                env=env,
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        )
    deadline = time.monotonic() + 60
    while counter.count() < kill_at:
        assert time.monotonic() < deadline, why
        time.sleep(0.005)
    held = owners(postgresql_url)  # `midway status`: which pod holds which partition
    assert held, why
    assert all("#" in owner and owner.startswith("import-contacts-") for owner in held), held
    victim_pid = int(log.read_text().splitlines()[-1].split()[1])
    victim = next(p for p in pods if p.pid == victim_pid)
    victim.kill()
    victim.wait()

    items = list(range(N))
    for proc in pods:
        if proc is victim:
            continue
        out, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, (err.decode()[-2000:], why)
        result = json.loads(out.decode().strip().splitlines()[-1])
        assert result["status"] == "completed", (result, why)
        assert result["processed"] == N, (result, why)
        assert result["state"] == {"count": N, "sum": sum(items)}, (result, why)
    calls = Counter(int(line.split()[0]) for line in log.read_text().splitlines())
    assert set(calls) == set(items), why
    extra = sum(calls.values()) - N
    print(f"kubernetes: {extra} calls redone after killing the pod with pid {victim_pid} ({why})")
    assert extra <= 2 * EVERY, (extra, why)
