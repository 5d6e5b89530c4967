"""A record that cannot be read becomes a failing item, and the records after it come through
with the right positions: a malformed row never ends the run."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from midway import SourceError, sources
from midway.sources import Malformed, Source
from test_sources import assert_resumes_everywhere, items_of, walk


def errors_of(src: Source, position: Any = None) -> dict[int, str]:
    """Every chunk's errors, by index in the whole walk."""
    found: dict[int, str] = {}
    seen = 0
    cursor = src.open(position)
    try:
        for chunk in cursor:
            errors = chunk.errors
            if errors is not None:
                assert errors, "a chunk without errors says None, not {}"
                for index, message in errors.items():
                    assert isinstance(chunk.items[index], Malformed)
                    found[seen + index] = message
            seen += len(chunk.items)
    finally:
        cursor.close()
    return found


def test_clean_chunks_say_errors_none(tmp_path: Path) -> None:
    path = tmp_path / "clean.jsonl"
    path.write_text("".join(f'{{"n": {i}}}\n' for i in range(3000)), encoding="utf-8")
    cursor = sources.jsonl(path).open(None)
    chunks = list(cursor)
    cursor.close()
    assert len(chunks) > 1
    assert all(chunk.errors is None for chunk in chunks)
    numbers = sources.sequence([1, 2, 3]).open(None)
    assert all(chunk.errors is None for chunk in numbers)


def test_csv_wrong_width_row_fails_alone(tmp_path: Path) -> None:
    path = tmp_path / "w.csv"
    body = b"a,b\n1,2\n3,4,5\n6,7\n"
    path.write_bytes(body)
    src = sources.csv(path, key="a")
    walked, end, _ = walk(src)
    items = [w[0] for w in walked]
    assert items[0] == {"a": "1", "b": "2"}
    assert items[2] == {"a": "6", "b": "7"}
    bad = items[1]
    assert isinstance(bad, Malformed)
    assert (bad.record, bad.offset) == (2, body.index(b"3,4,5"))
    assert bad.text == "3,4,5"
    errors = errors_of(src)
    assert list(errors) == [1]
    assert errors[1] == "w.csv: record 2 (byte 8) has 3 fields where the header has 2"
    assert str(bad) == errors[1]
    # The key of a malformed row cannot come from its fields: it is named by its number.
    assert [w[1] for w in walked] == ["1", "record 2", "6"]
    assert [w[2]["record"] for w in walked] == [0, 1, 2]
    assert end == {"offset": len(body), "record": 3}
    assert_resumes_everywhere(src)


def test_csv_default_keys_stay_record_numbers(tmp_path: Path) -> None:
    path = tmp_path / "w.csv"
    path.write_bytes(b"a,b\n1,2\n3\n4,5\n")
    walked, _, _ = walk(sources.csv(path))
    assert [w[1] for w in walked] == [1, 2, 3]


def test_csv_invalid_utf8_fails_that_row_only(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    body = b'id,name\n1,ok\n2,caf\xe9\n3,"multi\nline \xff"\n4,fine\n'
    path.write_bytes(body)
    src = sources.csv(path, key="id")
    walked, _, _ = walk(src)
    items = [w[0] for w in walked]
    assert items[0] == {"id": "1", "name": "ok"}
    assert items[3] == {"id": "4", "name": "fine"}
    errors = errors_of(src)
    e9, ff = body.index(b"\xe9"), body.index(b"\xff")
    assert errors == {
        1: f"bad.csv: record 2 (byte {body.index(b'2,caf')}) has invalid utf-8 at byte {e9}",
        2: f"bad.csv: record 3 (byte {body.index(b'3,')}) has invalid utf-8 at byte {ff}",
    }
    assert items[1].text == "2,caf\ufffd"
    assert_resumes_everywhere(src)


def test_csv_reader_error_fails_that_row_only(tmp_path: Path) -> None:
    """A row csv.reader refuses (here: strict=True and text after a closing quote); the
    next row still reads. (A huge field is bounded by max_record_bytes: see
    test_sources_csv_runaway.py.)"""
    path = tmp_path / "strict.csv"
    body = b'id,v\n1,a\n2,"x"y\n3,c\n'
    path.write_bytes(body)
    src = sources.csv(path, key="id", strict=True)
    walked, end, _ = walk(src)
    assert walked[0][0] == {"id": "1", "v": "a"}
    assert walked[2][0] == {"id": "3", "v": "c"}
    assert isinstance(walked[1][0], Malformed)
    (message,) = errors_of(src).values()
    assert message.startswith(f"strict.csv: record 2 (byte {body.index(b'2,')}) is not valid CSV:")
    assert walked[2][2]["offset"] == body.index(b"3,c")
    assert end == {"offset": len(body), "record": 3}


def test_csv_bad_header_encoding_is_still_a_source_error(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_bytes(b"id,n\xe4me\n1,x\n")
    with pytest.raises(SourceError, match="the header row has invalid utf-8 at byte 4"):
        sources.csv(path).fingerprint()


def test_jsonl_bad_lines_fail_alone(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    good = '{"a": 1}\n{"a": 2}\n'
    body = good + '{"a": 3\n\n{"a": 4}\nnot json\n{"a": 5}\n'
    path.write_text(body, encoding="utf-8")
    src = sources.jsonl(path, key="a")
    walked, _, _ = walk(src)
    items = [w[0] for w in walked]
    assert [i for i in items if not isinstance(i, Malformed)] == [{"a": n} for n in (1, 2, 4, 5)]
    errors = errors_of(src)
    assert sorted(errors) == [2, 4]
    assert errors[2].startswith(f"bad.jsonl: record 3 (byte {len(good)}) cannot be read: ")
    assert errors[4].startswith(
        f"bad.jsonl: record 5 (byte {body.index('not json')}) cannot be read: Expecting value"
    )
    assert items[2].text == '{"a": 3'
    assert [w[1] for w in walked] == [1, 2, "record 3", 4, "record 5", 5]
    assert [w[2]["record"] for w in walked] == [0, 1, 2, 3, 4, 5]
    assert_resumes_everywhere(src)


def test_jsonl_invalid_utf8_fails_that_line_only(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    body = b'{"a": "x"}\n{"a": "\xff\xfe"}\n{"a": "z"}\n'
    path.write_bytes(body)
    src = sources.jsonl(path)
    assert items_of(src)[2] == {"a": "z"}
    ff = body.index(b"\xff")
    assert errors_of(src) == {1: f"bad.jsonl: record 2 (byte 11) has invalid utf-8 at byte {ff}"}


def test_lines_invalid_utf8_fails_that_line_only(tmp_path: Path) -> None:
    path = tmp_path / "l.txt"
    path.write_bytes(b"ok\nfine\nbro\xc3ken\nlast\n")
    src = sources.lines(path)
    items = items_of(src)
    assert items[:2] == ["ok", "fine"]
    assert items[3] == "last"
    assert errors_of(src) == {2: "l.txt: record 3 (byte 8) has invalid utf-8 at byte 11"}
    assert_resumes_everywhere(src)


def test_errors_are_indexed_per_chunk(tmp_path: Path) -> None:
    """Bad records on both sides of a chunk boundary: each chunk names its own indices,
    and every good record after them is delivered with its right position."""
    path = tmp_path / "many.jsonl"
    bad = {5, 1023, 1024, 2047, 2500}
    lines = [("{broken" if i in bad else json.dumps({"i": i})) for i in range(3000)]
    body = "".join(f"{line}\n" for line in lines)
    path.write_text(body, encoding="utf-8")
    src = sources.jsonl(path)
    walked, _, sizes = walk(src)
    assert sizes[0] == 1024
    assert len(walked) == 3000
    assert set(errors_of(src)) == bad
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line) + 1)
    assert [w[2]["offset"] for w in walked] == starts[:-1]
    good = [w[0] for w in walked if not isinstance(w[0], Malformed)]
    assert good == [{"i": i} for i in range(3000) if i not in bad]
    cursor = src.open(None)
    chunks = list(cursor)
    cursor.close()
    assert set(chunks[0].errors or {}) == {5, 1023}
    assert set(chunks[1].errors or {}) == {0, 1023}
    assert set(chunks[2].errors or {}) == {2500 - 2048}
    rest = items_of(src, walked[1024][2])
    assert isinstance(rest[0], Malformed)
    assert rest[0].record == 1025


def test_gzip_malformed_rows_fail_alone(tmp_path: Path) -> None:
    path = tmp_path / "w.csv.gz"
    path.write_bytes(gzip.compress(b"a,b\n1,2\n3,4,5\n6,\xff\n7,8\n"))
    src = sources.csv(path, key="a")
    items = items_of(src)
    assert items[0] == {"a": "1", "b": "2"}
    assert items[3] == {"a": "7", "b": "8"}
    assert sorted(errors_of(src)) == [1, 2]
    walked, _, _ = walk(src)
    rest = items_of(src, walked[2][2])
    assert isinstance(rest[0], Malformed)
    assert rest[1] == {"a": "7", "b": "8"}
