"""Distributed jobs from the command line: ``midway worker``, a distributed job as one job
in ``midway status`` and ``midway show`` (its partitions inside), and ``midway reset``
forgetting its partitions and how it was split."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from midway.stores import open_store
from test_cli import invoke, midway_cli

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import midway

    ACCOUNTS = {"acme": list(range(30)), "globex": list(range(100, 120)),
                "initech": list(range(200, 205))}
    if os.environ.get("EXTRA_ACCOUNT"):
        ACCOUNTS["umbrella"] = [900, 901]
    FAIL_AT = int(os.environ.get("FAIL_AT", "-1"))


    def handle(item, ctx):
        if item == FAIL_AT:
            raise ValueError(f"invoice {item} has no customer")
        ctx.state["sum"] = ctx.state.get("sum", 0) + item
        ctx.state.setdefault("keys", []).append(ctx.key)


    def main():
        job = midway.Job("invoices", store=os.environ["STORE"], progress=False, every=5)
        result = job.run(midway.sources.shards(ACCOUNTS), handle)
        print(json.dumps({"status": result.status, "processed": result.processed,
                          "state": result.state}))


    if __name__ == "__main__":
        main()
    """
)
ITEMS = [*range(30), *range(100, 120), *range(200, 205)]


def worker(
    tmp_path: Path, store_url: str, target: str = ":main", **env: str
) -> tuple[int, str, str]:
    script = tmp_path / "invoices.py"
    script.write_text(SCRIPT, encoding="utf-8")
    result = midway_cli(
        "worker",
        f"{script}{target}",
        env={**os.environ, "STORE": store_url, **env},
        cwd=tmp_path,
    )
    return result.returncode, result.stdout, result.stderr


@pytest.mark.parametrize("target", [":main", ""], ids=["function", "script"])
def test_a_worker_runs_every_shard_and_returns_the_whole_result(
    tmp_path: Path, store_url: str, target: str
) -> None:
    code, out, err = worker(tmp_path, store_url, target)
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["status"] == "completed"
    assert result["processed"] == len(ITEMS)
    assert result["state"]["sum"] == sum(ITEMS)
    keys = sorted(result["state"]["keys"])
    assert keys == sorted(
        [f"acme/{i}" for i in range(30)]
        + [f"globex/{i}" for i in range(20)]
        + [f"initech/{i}" for i in range(5)]
    )


def test_status_shows_the_whole_job_with_its_partitions(tmp_path: Path, store_url: str) -> None:
    code, _, err = worker(tmp_path, store_url, FAIL_AT="202")
    assert code == 1, err
    assert "invoice 202 has no customer" in err
    rows = json.loads(invoke("status", "--json", "--store", store_url).stdout)
    assert [r["job"] for r in rows] == ["invoices"]  # one entry: the partitions are inside
    whole = rows[0]
    assert whole["partition_of"] is None
    parts = whole["partitions"]
    assert [p["job"] for p in parts] == [f"invoices~p{i}of3" for i in range(3)]
    assert [p["index"] for p in parts] == [0, 1, 2]
    assert whole["processed"] == sum(p["processed"] for p in parts)
    failed = [p for p in parts if p["status"] == "failed"]
    # 200 and 201 were done, but their state changes since the last checkpoint cannot be
    # told from the failed item's, so that checkpoint (none yet) stands.
    assert len(failed) == 1, parts
    assert failed[0]["processed"] == 0, parts
    assert whole["status"] == "failed"
    assert whole["workers"] == []  # nobody holds a partition now
    table = invoke("status", "--store", store_url).stdout
    assert "invoices" in table
    assert "~p" in table
    assert "partitions done" in table

    shown = json.loads(invoke("show", "invoices", "--json", "--store", store_url).stdout)
    assert shown["job"] == "invoices"
    assert len(shown["partitions"]) == 3
    alone = invoke("show", failed[0]["job"], "--json", "--store", store_url)
    assert json.loads(alone.stdout)["status"] == "failed"

    # The bad invoice fixed, the next worker finishes what is left.
    code, out, err = worker(tmp_path, store_url)
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["processed"] == len(ITEMS)
    rows = json.loads(invoke("status", "--json", "--store", store_url).stdout)
    assert rows[0]["status"] == "completed"
    assert [p["status"] for p in rows[0]["partitions"]] == ["completed"] * 3


def test_reset_forgets_the_partitions_and_the_plan(tmp_path: Path, store_url: str) -> None:
    assert worker(tmp_path, store_url)[0] == 0
    store = open_store(store_url)
    try:
        assert store.load_plan("invoices") is not None
    finally:
        store.close()
    # Completed, a distributed job stays so: a new shard list is another input.
    code, _, err = worker(tmp_path, store_url, EXTRA_ACCOUNT="1")
    assert code == 3, err
    assert "was split into 3 partitions" in err
    assert "midway reset invoices --yes" in err
    refused = invoke("reset", "invoices", "--store", store_url)
    assert refused.exit_code == 2
    assert "add --yes" in refused.output
    reset = invoke("reset", "invoices", "--yes", "--store", store_url)
    assert reset.exit_code == 0
    assert "3 partitions" in reset.stdout
    store = open_store(store_url)
    try:
        assert store.load_plan("invoices") is None
        assert store.list_jobs() == []
    finally:
        store.close()
    code, out, err = worker(tmp_path, store_url, EXTRA_ACCOUNT="1")
    assert code == 0, err
    assert json.loads(out.strip().splitlines()[-1])["processed"] == len(ITEMS) + 2


def test_worker_usage_errors(tmp_path: Path) -> None:
    missing = midway_cli("worker", str(tmp_path / "nope.py"))
    assert missing.returncode == 2
    assert "is not a file" in missing.stderr
    script = tmp_path / "s.py"
    script.write_text("x = 1\n", encoding="utf-8")
    nofn = midway_cli("worker", f"{script}:main")
    assert nofn.returncode == 2
    assert "has no function 'main'" in nofn.stderr
