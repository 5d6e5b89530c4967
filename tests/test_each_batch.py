"""``midway each --batch N``: one command for up to N records. Placeholders expand to one
argument per record, ``--stdin`` gets the records (CSV: the header once), a failed command
fails all its records, and a killed run resumes at a batch boundary, never splitting a
batch differently."""

from __future__ import annotations

import json
import math
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from midway.each import placeholders
from midway.each.placeholders import Field
from midway.each.records import CsvRecord, JsonRecord, LineRecord, stdin_of
from support.crashjob import pick_seed, reap_runners
from support.killer import kill_until_done
from test_each import ARGV_LOGGER, midway_each, show, write_jsonl

# Logs its arguments as one JSON list per line, and its stdin (if any) after them.
STDIN_LOGGER = [
    sys.executable,
    "-c",
    "import json, sys; open('calls.log', 'a').write("
    "json.dumps([sys.argv[1:], sys.stdin.read()]) + '\\n')",
]


def calls(path: Path) -> list[Any]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_an_argument_with_a_placeholder_becomes_one_per_record() -> None:
    t = placeholders.parse(["send", "--to={email}", "-v", "{}"])
    records = [{"email": "a@x", "whole": "A"}, {"email": "b@x", "whole": "B"}]

    def lookup(values: dict[str, str]) -> placeholders.Lookup:
        return lambda f: values["whole"] if f.name is None else values[f.name]

    lookups = [lookup(r) for r in records]
    assert t.argv_per_record(lookups) == ["send", "--to=a@x", "--to=b@x", "-v", "A", "B"]
    hostile = [lookup({"email": "; rm -rf x", "whole": "$(touch p)"}), lookups[0]]
    script = t.shell_per_record(hostile)
    assert script == "send --to='; rm -rf x' --to=a@x -v '$(touch p)' A"
    assert placeholders.parse(["{{}}", "{}"]).argv_per_record(lookups) == ["{}", "A", "B"]
    assert Field(None) in t.elements[3]


def test_stdin_of_a_batch() -> None:
    header = ["id", "name"]
    rows = [
        CsvRecord({"id": "1", "name": "a,b"}, header),
        CsvRecord({"id": "2", "name": "c"}, header),
    ]
    assert stdin_of(list(rows)) == b'id,name\n1,"a,b"\n2,c\n', "the header once"
    assert stdin_of([LineRecord("x"), LineRecord("y")]) == b"x\ny\n"
    assert stdin_of([JsonRecord('{"a": 1}', {"a": 1}), JsonRecord("[]", [])]) == b'{"a": 1}\n[]\n'


def test_one_command_per_batch_of_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    source = tmp_path / "in.txt"
    source.write_text("".join(f"r{i}\n" for i in range(25)), encoding="utf-8")
    proc = midway_each("lines", source, [*ARGV_LOGGER, "--", "{}"], "--batch", "10")
    assert proc.returncode == 0, proc.stderr
    logged = calls(tmp_path / "argv.log")
    assert logged == [
        ["--", *(f"r{i}" for i in range(0, 10))],
        ["--", *(f"r{i}" for i in range(10, 20))],
        ["--", *(f"r{i}" for i in range(20, 25))],
    ]


def test_csv_fields_and_stdin_with_the_header_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    source = tmp_path / "people.csv"
    source.write_text('email,name\na@x,Ann\nb@x,"Bo, Jr"\nc@x,Cy\n', encoding="utf-8")
    proc = midway_each(
        "csv", source, [*STDIN_LOGGER, "{email}"], "--batch", "2", "--stdin", "--key", "email"
    )
    assert proc.returncode == 0, proc.stderr
    assert calls(tmp_path / "calls.log") == [
        [["a@x", "b@x"], 'email,name\na@x,Ann\nb@x,"Bo, Jr"\n'],
        [["c@x"], "email,name\nc@x,Cy\n"],
    ]


def test_jsonl_stdin_is_the_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    source = write_jsonl(tmp_path / "in.jsonl", [{"n": 1}, {"n": 2}, {"n": 3}])
    proc = midway_each("jsonl", source, STDIN_LOGGER, "--batch", "3", "--stdin")
    assert proc.returncode == 0, proc.stderr
    assert calls(tmp_path / "calls.log") == [[[], '{"n": 1}\n{"n": 2}\n{"n": 3}\n']]


FAIL_ON_R13 = [
    "sh",
    "-c",
    'case " $* " in *" r13 "*) echo "refused $*"; echo oops >&2; exit 3;; esac',
    "sh",
    "{}",
]


def test_a_failed_command_fails_all_its_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    source = tmp_path / "in.txt"
    source.write_text("".join(f"r{i}\n" for i in range(30)), encoding="utf-8")
    store = f"sqlite:///{tmp_path / 'state.db'}"
    proc = midway_each(
        "fails", source, FAIL_ON_R13, "--batch", "10", "--max-failures", "0.5", store=store
    )
    assert proc.returncode == 1, proc.stderr
    detail = show("fails", store)
    assert (detail["succeeded"], detail["failed"]) == (20, 10)
    failed = {item["key"]: item["error"] for item in detail["items"]}
    assert set(failed) == set(range(11, 21)), "the records of the failed command, by line"
    for error in failed.values():
        assert "exit code 3" in error or "exit status 3" in error, error
        assert "refused r10 r11" in error, error
        assert "oops" in error, error

    stopped = midway_each("stops", source, FAIL_ON_R13, "--batch", "10", store=store)
    assert stopped.returncode == 1
    assert "a record failed" in stopped.stderr
    assert show("stops", store)["succeeded"] == 10, "without --max-failures it stops there"


def test_a_record_missing_a_field_fails_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    source = write_jsonl(tmp_path / "in.jsonl", [{"n": 1}, {"m": 2}, {"n": 3}])
    store = f"sqlite:///{tmp_path / 'state.db'}"
    proc = midway_each(
        "field", source, [*ARGV_LOGGER, "{n}"], "--batch", "3", "--max-failures", "1", store=store
    )
    assert proc.returncode == 1, proc.stderr
    assert calls(tmp_path / "argv.log") == [["1", "3"]]
    detail = show("field", store)
    assert [(i["key"], i["status"]) for i in detail["items"]] == [(2, "failed")]
    assert "no field 'n'" in detail["items"][0]["error"]


def test_env_with_batch_is_refused(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [{"n": 1}])
    proc = midway_each("env", source, ["true"], "--batch", "3", "--env")
    assert proc.returncode == 2
    assert "--env passes one record's fields" in proc.stderr


# Logs each record with the batch it came in (its first record), one line per record.
BATCH_LOG = [
    "sh",
    "-c",
    'for r in "$@"; do echo "$1 $r" >> "$MIDWAY_LOG"; done; sleep 0.002',
    "sh",
    "{}",
]


def test_killed_batches_resume_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    n, size = 600, 7
    source = tmp_path / "in.txt"
    source.write_text("".join(f"{i}\n" for i in range(n)), encoding="utf-8")
    log = tmp_path / "handled.log"
    store = f"sqlite:///{tmp_path / 'state.db'}"
    argv = [sys.executable, "-m", "midway", "each", "kill", "--input", str(source)]
    argv += ["--store", store, "--batch", str(size), "--every", "20", "--", *BATCH_LOG]
    monkeypatch.setenv("MIDWAY_LOG", str(log))
    try:
        report = kill_until_done(
            argv, seed=pick_seed(), cwd=tmp_path, kills=4, log=log, after=(30, 100)
        )
    finally:
        reap_runners()
    why = report.describe()
    assert report.kills == 4, why
    assert report.last.returncode == 0, why
    pairs = [line.split() for line in log.read_text().splitlines()]
    handled = Counter(int(record) for _, record in pairs)
    assert set(handled) == set(range(n)), f"records lost\n{why}"
    for first, record in pairs:  # a batch is always the same records: cut where it resumed
        assert int(first) % size == 0, f"batch starting at {first}\n{why}"
        assert int(first) <= int(record) < int(first) + size, why
    # A kill costs one interval (--every 20, rounded up to whole batches of 7), plus the
    # batches run while the store was writing (max_lag 0.05 s, a command >= 0.002 s), plus
    # the batch in hand (see test_each_resume.rework_bound).
    per_lag = math.ceil(0.05 / 0.002)
    bound = 21 + (per_lag + math.ceil(per_lag / 2) + 1) * size
    again = sum(handled.values()) - n
    assert again <= 4 * bound, f"{again} records run again\n{why}"


def test_a_failing_command_is_retried_whole_and_never_split(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    source = tmp_path / "in.txt"
    source.write_text("".join(f"r{i}\n" for i in range(8)), encoding="utf-8")
    store = f"sqlite:///{tmp_path / 'state.db'}"
    # fails once per batch (a marker file per first record), then succeeds
    flaky = [
        "sh",
        "-c",
        'echo "$*" >> calls.log; [ -e "ok-$1" ] && exit 0; touch "ok-$1"; exit 1',
        "sh",
        "{}",
    ]
    options = ["--batch", "4", "--retries", "1", "--retry-backoff", "0"]
    proc = midway_each("flaky", source, flaky, *options, store=store)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "calls.log").read_text().splitlines() == [
        "r0 r1 r2 r3",
        "r0 r1 r2 r3",
        "r4 r5 r6 r7",
        "r4 r5 r6 r7",
    ]
    always = ["sh", "-c", 'echo "$*" >> always.log; exit 5', "sh", "{}"]
    proc = midway_each("always", source, always, *options, "--max-failures", "100", store=store)
    assert proc.returncode == 1, proc.stderr
    assert (tmp_path / "always.log").read_text().splitlines() == [
        "r0 r1 r2 r3",
        "r0 r1 r2 r3",
        "r4 r5 r6 r7",
        "r4 r5 r6 r7",
    ], "tried twice each, whole: a command that fails is not split to find a culprit"
    detail = show("always", store)
    assert detail["failed"] == 8
    assert all(
        "exit code 5" in item["error"] or "status 5" in item["error"] for item in detail["items"]
    )
