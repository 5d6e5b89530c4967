"""A CSV record that never ends: a quote left open reads on to the end of the file, a runaway
or huge record grows past ``max_record_bytes``. Either is a failing record naming its line
and byte, the lines it took in are read again as records, and the job never says
``completed`` with rows left unread."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import pytest

import midway
from midway import ConfigError, SourceError, sources
from test_sources import assert_resumes_everywhere, items_of
from test_sources_malformed import errors_of


def people(path: Path, rows: int = 1000, bad: dict[int, str] | None = None) -> Path:
    lines = ["id,name"] + [f"{i},p{i}" for i in range(rows)]
    for i, text in (bad or {}).items():
        lines[i + 1] = text
    data = ("\n".join(lines) + "\n").encode()
    if path.suffix == ".gz":
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def run(path: Path, tmp_path: Path, name: str, **options: Any) -> tuple[Any, list[Any], list[str]]:
    handled: list[Any] = []
    failed: list[str] = []
    job = midway.Job(
        name,
        store=f"sqlite:///{tmp_path / 's.db'}",
        progress=False,
        max_failures=5,
        on_item_failed=lambda record, exc: failed.append(record.error or ""),
    )
    result = job.run(sources.csv(path, key="id", **options), lambda row, ctx: handled.append(row))
    return result, handled, failed


def test_unclosed_quote_fails_its_record_and_the_rest_is_read(tmp_path: Path) -> None:
    """The issue's case: row 500 opens a quote it never closes. midway used to read the
    rest of the file into that row and end "completed" with 500 of 1,000 rows."""
    path = people(tmp_path / "people.csv", bad={500: '500,"unterminated'})
    result, handled, failed = run(path, tmp_path, "quote")
    assert result.status == "completed_with_failures"
    assert (result.succeeded, result.failed) == (999, 1)
    assert [row["id"] for row in handled] == [str(i) for i in range(1000) if i != 500]
    at = path.read_bytes().index(b'500,"')
    assert failed == [
        f"SourceError: people.csv: record 501 (line 502, byte {at:,}) has a quoted field that "
        "is not closed before the end of the file; close the quote (or fix the quoting) and "
        "run again"
    ]


def test_unclosed_quote_stops_a_job_without_a_failure_policy(tmp_path: Path) -> None:
    path = people(tmp_path / "people.csv", bad={500: '500,"unterminated'})
    job = midway.Job("strict", store=f"sqlite:///{tmp_path / 's.db'}", progress=False)
    handled: list[Any] = []
    with pytest.raises(SourceError, match=r"record 501 \(line 502, .*not closed"):
        job.run(sources.csv(path, key="id"), lambda row, ctx: handled.append(row))
    assert len(handled) == 500
    info = job.info()
    assert info is not None
    assert info.status != "completed"


def test_a_5_mb_field_is_read_and_max_record_bytes_bounds_a_record(tmp_path: Path) -> None:
    """A 5 MB field used to fail with "field larger than field limit (131072)"."""
    path = tmp_path / "big.csv"
    path.write_text("id,data\n1,x\n2," + "y" * 5_000_000 + "\n3,z\n", encoding="utf-8")
    result, handled, _ = run(path, tmp_path, "big")
    assert result.status == "completed"
    assert [len(row["data"]) for row in handled] == [1, 5_000_000, 1]

    result, handled, failed = run(path, tmp_path, "bounded", max_record_bytes=1_000_000)
    assert (result.succeeded, result.failed) == (2, 1)
    assert [row["id"] for row in handled] == ["1", "3"]
    assert len(failed) == 1
    assert (
        "big.csv: record 2 (line 3, byte 12) is longer than max_record_bytes=1,000,000"
        in (failed[0])
    )
    assert "pass max_record_bytes= a larger size" in failed[0]


def test_runaway_records_keep_positions_right(tmp_path: Path) -> None:
    """Reopened before any record, the reader yields the same records: the failing ones
    (line and byte named) included."""
    path = people(tmp_path / "p.csv", rows=40, bad={7: '7,"open', 37: '37,"again'})
    src = sources.csv(path, max_record_bytes=64)
    assert_resumes_everywhere(src)
    errors = errors_of(src)
    assert sorted(errors) == [7, 37]
    assert "record 8 (line 9, byte" in errors[7]
    assert "longer than max_record_bytes=64" in errors[7]
    assert "not closed before the end of the file" in errors[37]
    assert [row["id"] for row in items_of(src) if isinstance(row, dict)] == [
        str(i) for i in range(40) if i not in (7, 37)
    ]


def test_a_quoted_newline_at_the_end_of_the_file_is_still_a_record(tmp_path: Path) -> None:
    path = tmp_path / "ok.csv"
    path.write_text('id,note\n1,"two\nlines"\n2,"last\none"', encoding="utf-8")
    assert items_of(sources.csv(path)) == [
        {"id": "1", "note": "two\nlines"},
        {"id": "2", "note": "last\none"},
    ]


def test_gzip_unclosed_quote_is_a_failing_record(tmp_path: Path) -> None:
    path = people(tmp_path / "people.csv.gz", bad={500: '500,"unterminated'})
    result, _, failed = run(path, tmp_path, "gz")
    assert result.status == "completed_with_failures"
    assert (result.succeeded, result.failed) == (500, 1)
    assert "record 501 (byte" in failed[0]
    assert "not read again in a compressed file" in failed[0]


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_max_record_bytes_must_be_a_positive_number(bad: Any) -> None:
    with pytest.raises(ConfigError, match="max_record_bytes="):
        sources.csv("x.csv", max_record_bytes=bad)


@pytest.mark.parametrize("tolerant", [True, False])
def test_with_workers_an_unreadable_record_never_reaches_the_handler(
    tmp_path: Path, tolerant: bool
) -> None:
    """With workers=4 the placeholder of an unreadable record used to be handed to the
    handler and counted as succeeded: the job said completed."""
    bad = {50: "50,p50,extra", 120: '120,"unterminated'}
    path = people(tmp_path / "people.csv", rows=300, bad=bad)
    handled: list[Any] = []
    options: dict[str, Any] = {"max_failures": 3} if tolerant else {}
    job = midway.Job(
        "workers", store=f"sqlite:///{tmp_path / 's.db'}", workers=4, progress=False, **options
    )
    src = sources.csv(path, key="id")
    if tolerant:
        result = job.run(src, lambda row, ctx: handled.append(row))
        assert (result.status, result.succeeded, result.failed) == (
            "completed_with_failures",
            298,
            2,
        )
    else:
        with pytest.raises(SourceError, match=r"record 51 \(byte [0-9,]+\) has 3 fields"):
            job.run(src, lambda row, ctx: handled.append(row))
    assert all(isinstance(row, dict) for row in handled)
    assert {"50", "120"}.isdisjoint(row["id"] for row in handled)
