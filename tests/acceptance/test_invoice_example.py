"""The invoice example from the command line: 500 invoices validated, those above 10,000
wait for a person; `midway approve` (one with --reject) decides; the next run books the
approved ones, not the rejected one, and handles nothing else."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "validate_invoices.py"
ABOVE_LIMIT = [f"INV-{n:04d}" for n in range(37, 501, 37)]  # every 37th: see make_invoices
INVALID = [f"INV-{n:04d}" for n in range(97, 501, 97)]


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def midway(*args: str, cwd: Path, store: str) -> subprocess.CompletedProcess[str]:
    return run("-m", "midway", *args, "--store", store, cwd=cwd)


def booked(folder: Path) -> list[str]:
    lines = (folder / "booked.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["id"] for line in lines]


def test_invoices_round_trip_from_the_command_line(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'state.db'}"
    first = run(
        str(EXAMPLE), "invoices.csv", "--make-invoices", "500", "--store", store, cwd=tmp_path
    )
    assert first.returncode == 4, first.stderr
    assert f"{len(ABOVE_LIMIT)} waiting for a person" in first.stdout
    assert "midway approve validate-invoices" in first.stderr
    shown = json.loads(
        midway("show", "validate-invoices", "--json", cwd=tmp_path, store=store).stdout
    )
    assert shown["status"] == "waiting"
    questions = {item["key"]: item for item in shown["waiting_items"]}
    assert sorted(questions) == ABOVE_LIMIT
    assert questions["INV-0037"]["question"].startswith("book INV-0037 for 14,847.50 USD")
    assert questions["INV-0037"]["data"]["customer"] == "Bolt & Co"
    assert set(booked(tmp_path)).isdisjoint(ABOVE_LIMIT)

    rejected, approved = ABOVE_LIMIT[2], ABOVE_LIMIT[:2] + ABOVE_LIMIT[3:8]
    still_waiting = ABOVE_LIMIT[8:]
    ok = midway("approve", "validate-invoices", *approved, cwd=tmp_path, store=store)
    assert ok.returncode == 0, ok.stderr
    no = midway(
        "approve",
        "validate-invoices",
        rejected,
        "--reject",
        "--note",
        "not our supplier",
        cwd=tmp_path,
        store=store,
    )
    assert no.returncode == 0, no.stderr
    unknown = midway("approve", "validate-invoices", "INV-0001", cwd=tmp_path, store=store)
    assert unknown.returncode == 2
    assert "INV-0001" in unknown.stderr

    before = booked(tmp_path)
    second = run(str(EXAMPLE), "invoices.csv", "--store", store, cwd=tmp_path)
    assert second.returncode == 4, second.stderr  # five still wait
    new = booked(tmp_path)[len(before) :]
    assert sorted(new) == sorted(approved)  # only the approved ones, each once
    assert f"{len(still_waiting)} waiting for a person" in second.stdout
    assert "1 rejected" in second.stdout

    assert (
        midway("approve", "validate-invoices", "--all", cwd=tmp_path, store=store).returncode == 0
    )
    third = run(str(EXAMPLE), "invoices.csv", "--store", store, cwd=tmp_path)
    assert third.returncode == 0, third.stderr
    assert third.stdout.startswith("completed:")
    assert f"{500 - len(INVALID) - 1:,} booked" in third.stdout
    everything = booked(tmp_path)
    assert len(everything) == len(set(everything)) == 500 - len(INVALID) - 1
    assert rejected not in everything

    report = midway("report", "validate-invoices", cwd=tmp_path, store=store).stdout
    assert 'rejected 1 waiting item(s): "INV-0111" (not our supplier)' in report
