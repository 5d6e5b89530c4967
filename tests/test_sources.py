"""Sources: items, keys, positions, and reopening at any position gives exactly the rest."""

from __future__ import annotations

import csv as stdlib_csv
import json
import os
import random
from pathlib import Path
from typing import Any

import pytest

from midway import SourceError, sources
from midway.sources import Source

Walked = list[tuple[Any, Any, Any]]


def walk(src: Source, position: Any = None) -> tuple[Walked, Any, list[int]]:
    """(item, key, position before it) for each item, the position after the last item, and
    the chunk sizes, reading the source the way the engine does."""
    out: Walked = []
    sizes: list[int] = []
    end = position
    cursor = src.open(position)
    try:
        for chunk in cursor:
            n = len(chunk.items)
            sizes.append(n)
            for i in range(n):
                out.append((chunk.items[i], chunk.key(i), chunk.position_before(i)))
            end = chunk.position_before(n)
    finally:
        cursor.close()
    return out, end, sizes


def items_of(src: Source, position: Any = None) -> list[Any]:
    return [item for item, _, _ in walk(src, position)[0]]


def assert_resumes_everywhere(src: Source) -> None:
    """Reopening at the position before item i yields items[i:], for every i, and the
    position after the last item yields nothing."""
    walked, end, _ = walk(src)
    items = [w[0] for w in walked]
    keys = [w[1] for w in walked]
    for i, (_, _, pos) in enumerate(walked):
        json.dumps(pos)  # positions go into checkpoints: they must be JSON
        rest, rest_end, _ = walk(src, pos)
        assert [w[0] for w in rest] == items[i:], f"reopened at {pos!r} (before item {i})"
        assert [w[1] for w in rest] == keys[i:], f"keys after reopening at {pos!r}"
        assert [w[2] for w in rest] == [w[2] for w in walked[i:]]
        assert rest_end == end
    assert items_of(src, end) == []


def dict_reader_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as f:
        return list(stdlib_csv.DictReader(f))


# -- sequence and iterable ----------------------------------------------------------------


def test_sequence_items_keys_positions() -> None:
    data = [f"item-{i}" for i in range(10)]
    src = sources.sequence(data)
    assert src.seekable
    assert src.total() == 10
    walked, end, _ = walk(src)
    assert [w[0] for w in walked] == data
    assert [w[1] for w in walked] == list(range(10))  # default key: 0-based index
    assert [w[2] for w in walked] == list(range(10))
    assert end == 10
    assert_resumes_everywhere(src)


def test_sequence_key_field_and_function() -> None:
    data = [{"id": f"a{i}", "n": i} for i in range(5)]
    assert [w[1] for w in walk(sources.sequence(data, key="id"))[0]] == [d["id"] for d in data]
    by_fn = sources.sequence(data, key=lambda d: d["n"] * 10)
    assert [w[1] for w in walk(by_fn)[0]] == [0, 10, 20, 30, 40]


def test_sequence_missing_key_field_is_a_failing_record() -> None:
    src = sources.sequence([{"id": 1}, {"other": 2}], key="id")
    cursor = src.open(None)
    chunk = next(iter(cursor))
    assert chunk.key(0) == 1
    assert chunk.errors == {1: "item 2 has no field 'id' to use as its key (its fields: 'other')"}
    assert chunk.key(1) == "item 2"


def test_sequence_range_and_large_chunks() -> None:
    src = sources.sequence(range(10_000))
    walked, end, sizes = walk(src)
    assert [w[0] for w in walked] == list(range(10_000))
    assert sum(sizes) == 10_000
    assert len(sizes) > 1, "a large sequence is handed out in several chunks"
    assert end == 10_000
    assert items_of(src, 9_999) == [9_999]
    assert items_of(src, 4_097) == list(range(4_097, 10_000))


def test_sequence_fingerprint_tracks_content() -> None:
    base = sources.sequence(list(range(100))).fingerprint()
    assert sources.sequence(list(range(100))).fingerprint() == base
    assert sources.sequence(list(range(101))).fingerprint() != base
    assert sources.sequence([*range(99), 1000]).fingerprint() != base


def test_sequence_rejects_a_foreign_position() -> None:
    with pytest.raises(SourceError, match="not an item number"):
        walk(sources.sequence([1, 2, 3]), {"offset": 10, "record": 1})


def test_iterable_items_keys_positions_and_replay() -> None:
    data = [chr(ord("a") + i) for i in range(12)]
    src = sources.iterable(data)
    assert not src.seekable
    walked, end, sizes = walk(src)
    assert [w[0] for w in walked] == data
    assert [w[1] for w in walked] == list(range(12))
    assert [w[2] for w in walked] == list(range(12))
    assert end == 12
    assert sizes[0] == 1, "a slow generator must not be read far ahead before the first item"
    assert sizes[:3] == [1, 2, 4]
    assert_resumes_everywhere(src)


def test_iterable_generator_reopened_at_a_position_skips_what_was_done() -> None:
    def gen() -> Any:
        yield from ({"email": f"u{i}@example.com"} for i in range(20))

    walked, _, _ = walk(sources.iterable(gen(), key="email"))
    assert [w[1] for w in walked] == [f"u{i}@example.com" for i in range(20)]
    for cut in (0, 1, 7, 19, 20):
        rest = items_of(sources.iterable(gen(), key="email"), cut)
        assert rest == [{"email": f"u{i}@example.com"} for i in range(cut, 20)], cut
    assert items_of(sources.iterable(gen()), 25) == []  # past the end: nothing, no error


def test_iterable_fingerprint_is_the_given_version() -> None:
    assert sources.iterable([], version="v1").fingerprint() != (
        sources.iterable([], version="v2").fingerprint()
    )
    assert sources.iterable([], total=7).total() == 7
    assert sources.iterable([]).total() is None


# -- CSV ----------------------------------------------------------------------------------

TRICKY_ROWS = [
    {"id": "1", "name": "Smith, John", "note": 'He said "hi"'},
    {"id": "2", "name": "Zürich", "note": "line one\nline two"},
    {"id": "3", "name": "東京", "note": ""},
    {"id": "4", "name": "emoji 🎉", "note": "crlf\r\ninside"},
    {"id": "5", "name": '"quoted"', "note": ",,,"},
    {"id": "6", "name": "Ærøskøbing", "note": "trailing"},
]


def write_tricky_csv(path: Path, *, bom: bool, crlf: bool, blank_lines: bool) -> None:
    """A CSV with quoted commas, quotes, embedded newlines, non-ASCII and optional extras."""
    eol = "\r\n" if crlf else "\n"
    with path.open("w", newline="", encoding="utf-8") as f:
        if bom:
            f.write("\ufeff")
        writer = stdlib_csv.DictWriter(f, fieldnames=["id", "name", "note"], lineterminator=eol)
        writer.writeheader()
        for i, row in enumerate(TRICKY_ROWS):
            writer.writerow(row)
            if blank_lines and i in (1, 3):
                f.write(eol)
        if blank_lines:
            f.write(eol)


@pytest.mark.parametrize("bom", [False, True], ids=["nobom", "bom"])
@pytest.mark.parametrize("crlf", [False, True], ids=["lf", "crlf"])
@pytest.mark.parametrize("blank_lines", [False, True], ids=["dense", "blanks"])
def test_csv_tricky_file_matches_dictreader(
    tmp_path: Path, bom: bool, crlf: bool, blank_lines: bool
) -> None:
    path = tmp_path / "tricky.csv"
    write_tricky_csv(path, bom=bom, crlf=crlf, blank_lines=blank_lines)
    expected = dict_reader_rows(path)
    assert expected == TRICKY_ROWS  # the file says what we meant it to
    src = sources.csv(path)
    walked, _, _ = walk(src)
    assert [w[0] for w in walked] == expected
    assert [w[1] for w in walked] == [1, 2, 3, 4, 5, 6]  # default key: 1-based record number
    for i, (_, _, pos) in enumerate(walked):
        assert pos["record"] == i
        assert isinstance(pos["offset"], int)
    assert [w[1] for w in walk(sources.csv(path, key="id"))[0]] == ["1", "2", "3", "4", "5", "6"]
    assert_resumes_everywhere(src)
    assert_resumes_everywhere(sources.csv(path, key="id"))


def test_csv_without_final_newline(tmp_path: Path) -> None:
    path = tmp_path / "nofinal.csv"
    path.write_bytes(b'a,b\n1,"x,y"\n2,z')
    src = sources.csv(path, key="a")
    assert items_of(src) == [{"a": "1", "b": "x,y"}, {"a": "2", "b": "z"}]
    assert_resumes_everywhere(src)


def test_csv_fmtparams_pass_through(tmp_path: Path) -> None:
    path = tmp_path / "semi.csv"
    path.write_text("a;b\n1;x,y\n2;z\n", encoding="utf-8")
    assert items_of(sources.csv(path, delimiter=";")) == [
        {"a": "1", "b": "x,y"},
        {"a": "2", "b": "z"},
    ]


def test_csv_position_offset_points_at_the_record(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    body = b'id,v\n1,"a\nb"\n2,c\n'
    path.write_bytes(body)
    walked, end, _ = walk(sources.csv(path))
    assert walked[0][2] == {"offset": body.index(b"1,"), "record": 0}
    assert walked[1][2] == {"offset": body.index(b"2,"), "record": 1}
    assert end == {"offset": len(body), "record": 2}


def test_csv_empty_file_is_a_source_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(SourceError, match="empty"):
        items_of(sources.csv(path))


def test_csv_fingerprint_changes_with_the_file(tmp_path: Path) -> None:
    path = tmp_path / "fp.csv"
    path.write_text("id,name\n1,ann\n2,bob\n", encoding="utf-8")
    st = path.stat()
    src = sources.csv(path, key="id")
    base = src.fingerprint()
    assert base["header"] == ["id", "name"]
    assert src.fingerprint() == base, "an unchanged file keeps its fingerprint"

    # Same size and same mtime, different content: the head hash still shows the edit.
    path.write_text("id,name\n1,amy\n2,bob\n", encoding="utf-8")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    same_size = src.fingerprint()
    assert same_size["size"] == base["size"]
    assert same_size["mtime_ns"] == base["mtime_ns"]
    assert same_size != base
    assert same_size["head_sha256"] != base["head_sha256"]

    # A row appended: the size changes.
    path.write_text("id,name\n1,ann\n2,bob\n3,cy\n", encoding="utf-8")
    grown = src.fingerprint()
    assert grown["size"] != base["size"]

    # Another header (the key column kept: without it the source refuses, see
    # test_refusals_sources.py).
    path.write_text("id,NAME\n1,ann\n2,bob\n", encoding="utf-8")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    renamed = src.fingerprint()
    assert renamed["header"] == ["id", "NAME"]
    assert renamed != base

    # Only touched: the mtime changes the fingerprint too (cheap, and on the safe side).
    path.write_text("id,name\n1,ann\n2,bob\n", encoding="utf-8")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    assert src.fingerprint()["mtime_ns"] != base["mtime_ns"]


def test_csv_missing_file(tmp_path: Path) -> None:
    src = sources.csv(tmp_path / "nope.csv")
    with pytest.raises(SourceError, match="does not exist"):
        src.fingerprint()
    with pytest.raises(SourceError, match="does not exist"):
        src.open(None)


def test_csv_rejects_a_foreign_position(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("a\n1\n", encoding="utf-8")
    with pytest.raises(SourceError, match="not a file position"):
        sources.csv(path).open(17)


# -- JSON lines and lines -----------------------------------------------------------------


def test_jsonl_items_keys_positions(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    records = [{"id": f"k{i}", "v": [i, "ü", None]} for i in range(7)]
    text = "\n".join(json.dumps(r, ensure_ascii=False) for r in records[:4])
    text += "\n\n   \n" + "\r\n".join(json.dumps(r) for r in records[4:]) + "\n"
    path.write_text(text, encoding="utf-8")
    src = sources.jsonl(path)
    walked, _, _ = walk(src)
    assert [w[0] for w in walked] == records  # blank lines are skipped
    assert [w[1] for w in walked] == list(range(1, 8))
    assert [w[1] for w in walk(sources.jsonl(path, key="id"))[0]] == [r["id"] for r in records]
    assert_resumes_everywhere(src)
    assert_resumes_everywhere(sources.jsonl(path, key="id"))


def test_jsonl_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        sources.jsonl(tmp_path / "missing.jsonl").open(None)
    with pytest.raises(SourceError, match="does not exist"):
        sources.lines(tmp_path / "missing.txt").fingerprint()


def test_jsonl_fingerprint_changes_with_the_file(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    path.write_text('{"a": 1}\n', encoding="utf-8")
    src = sources.jsonl(path)
    base = src.fingerprint()
    assert src.fingerprint() == base
    path.write_text('{"a": 1}\n{"a": 2}\n', encoding="utf-8")
    assert src.fingerprint() != base


def test_lines_keeps_blank_lines_and_strips_endings(tmp_path: Path) -> None:
    path = tmp_path / "l.txt"
    path.write_bytes("first\r\n\nthird ü\nlast".encode())
    src = sources.lines(path)
    walked, end, _ = walk(src)
    assert [w[0] for w in walked] == ["first", "", "third ü", "last"]
    assert [w[1] for w in walked] == [1, 2, 3, 4]
    assert end == {"offset": path.stat().st_size, "record": 4}
    assert_resumes_everywhere(src)


def test_file_sources_hand_out_several_chunks(tmp_path: Path) -> None:
    path = tmp_path / "many.txt"
    path.write_text("".join(f"line {i}\n" for i in range(2_500)), encoding="utf-8")
    walked, _, sizes = walk(sources.lines(path))
    assert len(walked) == 2_500
    assert len(sizes) > 1
    cut = walked[1_500][2]
    assert items_of(sources.lines(path), cut) == [f"line {i}" for i in range(1_500, 2_500)]


# -- the shared data set ------------------------------------------------------------------


def test_world_cities_matches_dictreader_and_resumes_anywhere(world_cities: Path) -> None:
    expected = dict_reader_rows(world_cities)
    assert len(expected) == 34_032
    src = sources.csv(world_cities, key="geonameid")
    walked, end, _ = walk(src)
    items = [w[0] for w in walked]
    assert len(items) == 34_032
    assert items == expected
    assert [w[1] for w in walked] == [row["geonameid"] for row in expected]
    assert end == {"offset": world_cities.stat().st_size, "record": 34_032}

    seed = random.randrange(1 << 30)
    print(f"world-cities resume seed: {seed}")
    rng = random.Random(seed)
    cuts = [0, 1, 1023, 1024, 1025, 34_031, *rng.sample(range(34_032), 6)]
    for cut in cuts:
        rest, rest_end, _ = walk(sources.csv(world_cities, key="geonameid"), walked[cut][2])
        assert [w[0] for w in rest] == items[cut:], f"seed {seed}, cut {cut}"
        assert [w[1] for w in rest] == [w[1] for w in walked[cut:]], f"seed {seed}, cut {cut}"
        assert rest_end == end, f"seed {seed}, cut {cut}"
