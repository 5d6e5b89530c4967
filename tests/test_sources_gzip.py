"""``.gz`` inputs: the same items and positions as the plain file, resumable anywhere, and
O(1) to resume in a file of many gzip members."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path
from typing import Any

import pytest

import midway
from midway import SourceError, sources
from midway.sources import Source
from test_sources import items_of, walk, write_tricky_csv


def gzip_copy(plain: Path, *, members: int = 1, pad: bool = False) -> Path:
    """``plain`` compressed next to it, as one gzip member or as several (split on lines)."""
    data = plain.read_bytes()
    lines = data.splitlines(keepends=True)
    per = max(1, -(-len(lines) // members))
    parts = [b"".join(lines[i : i + per]) for i in range(0, len(lines), per)] or [b""]
    out = plain.with_name(plain.name + ".gz")
    with out.open("wb") as f:
        for part in parts:
            f.write(gzip.compress(part, mtime=0))
            if pad:
                f.write(b"\0" * 7)
    return out


def plain(position: dict[str, Any]) -> dict[str, Any]:
    """A gzip position without its anchor: what it shares with the plain file's."""
    return {k: v for k, v in position.items() if k != "gzip"}


def plain_positions(src: Source) -> list[Any]:
    return [plain(pos) for _, _, pos in walk(src)[0]]


def assert_resumes_everywhere(src: Source) -> None:
    """Reopening at the position before item i yields items[i:] with the same keys, offsets
    and record numbers. (The anchor may differ: a resumed reader may know of a later member
    to anchor at, and has read a different amount of compressed input.)"""
    walked, end, _ = walk(src)
    for i, (_, _, pos) in enumerate(walked):
        json.dumps(pos)
        member, member_offset, read = pos["gzip"]
        assert member_offset <= pos["offset"]
        assert 0 <= member <= read
        rest, rest_end, _ = walk(src, pos)
        assert [w[:2] for w in rest] == [w[:2] for w in walked[i:]], f"reopened at {pos!r}"
        assert [plain(w[2]) for w in rest] == [plain(w[2]) for w in walked[i:]]
        assert plain(rest_end) == plain(end)
    assert items_of(src, end) == []


@pytest.mark.parametrize("members", [1, 3])
def test_csv_gz_matches_the_plain_file(tmp_path: Path, members: int) -> None:
    plain = tmp_path / "t.csv"
    write_tricky_csv(plain, bom=True, crlf=True, blank_lines=True)
    packed = gzip_copy(plain, members=members)
    a, b = sources.csv(plain, key="id"), sources.csv(packed, key="id")
    walked_a, end_a, _ = walk(a)
    walked_b, end_b, _ = walk(b)
    assert [w[0] for w in walked_b] == [w[0] for w in walked_a]
    assert [w[1] for w in walked_b] == [w[1] for w in walked_a]
    # Positions are uncompressed offsets: the plain file's, plus the gzip anchor.
    assert plain_positions(b) == [w[2] for w in walked_a]
    assert all("gzip" in w[2] for w in walked_b)
    assert {k: v for k, v in end_b.items() if k != "gzip"} == end_a
    assert_resumes_everywhere(b)


def test_jsonl_and_lines_gz(tmp_path: Path) -> None:
    plain = tmp_path / "r.jsonl"
    plain.write_text(
        "".join(json.dumps({"id": i, "ü": "x" * (i % 7)}) + "\n" for i in range(50)) + "\n",
        encoding="utf-8",
    )
    packed = gzip_copy(plain, members=4, pad=True)
    assert items_of(sources.jsonl(packed, key="id")) == items_of(sources.jsonl(plain))
    assert_resumes_everywhere(sources.jsonl(packed, key="id"))
    text = tmp_path / "l.txt"
    text.write_bytes(b"one\r\n\ntwo\nthree")
    packed_text = gzip_copy(text)
    assert items_of(sources.lines(packed_text)) == ["one", "", "two", "three"]
    assert_resumes_everywhere(sources.lines(packed_text))


def test_world_cities_gz_resumes_anywhere(world_cities: Path, tmp_path: Path) -> None:
    packed = tmp_path / "world-cities.csv.gz"
    packed.write_bytes(gzip.compress(world_cities.read_bytes()))
    plain_src = sources.csv(world_cities, key="geonameid")
    src = sources.csv(packed, key="geonameid")
    walked, end, _ = walk(src)
    items = [w[0] for w in walked]
    assert items == items_of(plain_src)
    assert end["offset"] == world_cities.stat().st_size
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    for cut in [0, 1024, 34_031, *rng.sample(range(34_032), 4)]:
        rest, rest_end, _ = walk(src, walked[cut][2])
        assert [w[0] for w in rest] == items[cut:], f"seed {seed}, cut {cut}"
        assert rest_end == end


def test_many_members_resume_from_their_own_member(tmp_path: Path) -> None:
    """With many members the anchor is the member's start: resuming never reads the members
    before it. Shown by wrecking an early member: a resume from a later position still works,
    and the same position without its anchor (decompress from the start) cannot."""
    plain = tmp_path / "m.txt"
    plain.write_text("".join(f"line {i:05d}\n" for i in range(6000)), encoding="utf-8")
    packed = gzip_copy(plain, members=12)
    src = sources.lines(packed)
    walked, _, _ = walk(src)
    anchors = {tuple(w[2]["gzip"][:2]) for w in walked}
    assert len(anchors) > 3, "chunks in later members anchor there, not at the file's start"
    position = walked[5000][2]
    member, member_offset, _ = position["gzip"]
    assert member > 0
    assert member_offset <= position["offset"] < member_offset + 1024 * 12 + 600

    data = bytearray(packed.read_bytes())
    data[100:400] = b"\x55" * 300  # inside the first member
    packed.write_bytes(bytes(data))
    assert items_of(src, position) == [f"line {i:05d}" for i in range(5000, 6000)]
    no_anchor = {"offset": position["offset"], "record": position["record"]}
    with pytest.raises(SourceError, match="not valid gzip data at compressed byte"):
        items_of(src, no_anchor)


def test_position_without_anchor_resumes_from_the_start(tmp_path: Path) -> None:
    plain = tmp_path / "p.txt"
    plain.write_text("a\nb\nc\n", encoding="utf-8")
    src = sources.lines(gzip_copy(plain))
    assert items_of(src, {"offset": 2, "record": 1}) == ["b", "c"]
    with pytest.raises(SourceError, match="no usable gzip anchor"):
        items_of(src, {"offset": 2, "record": 1, "gzip": [0, 3, 9]})  # anchor past the offset
    with pytest.raises(SourceError, match="no usable gzip anchor"):
        items_of(src, {"offset": 2, "record": 1, "gzip": "zero"})


def test_truncated_and_foreign_files_are_source_errors(tmp_path: Path) -> None:
    plain = tmp_path / "t.txt"
    plain.write_text("".join(f"{random.random()}\n" for _ in range(2000)), encoding="utf-8")
    packed = gzip_copy(plain)
    packed.write_bytes(packed.read_bytes()[:-100])
    with pytest.raises(SourceError, match="truncated"):
        items_of(sources.lines(packed))
    fake = tmp_path / "fake.jsonl.gz"
    fake.write_text('{"a": 1}\n', encoding="utf-8")
    with pytest.raises(SourceError, match="not valid gzip data"):
        items_of(sources.jsonl(fake))
    with pytest.raises(SourceError, match="does not exist"):
        items_of(sources.jsonl(tmp_path / "missing.jsonl.gz"))


def test_empty_gz_files(tmp_path: Path) -> None:
    empty = tmp_path / "e.jsonl.gz"
    empty.write_bytes(gzip.compress(b""))
    assert items_of(sources.jsonl(empty)) == []
    zero = tmp_path / "z.txt.gz"
    zero.write_bytes(b"")
    assert items_of(sources.lines(zero)) == []
    csv_gz = tmp_path / "e.csv.gz"
    csv_gz.write_bytes(gzip.compress(b""))
    with pytest.raises(SourceError, match="empty"):
        sources.csv(csv_gz).open(None)


def test_gz_fingerprint_is_the_files(tmp_path: Path) -> None:
    plain = tmp_path / "f.csv"
    plain.write_text("id,name\n1,ann\n", encoding="utf-8")
    packed = gzip_copy(plain)
    fp = sources.csv(packed).fingerprint()
    assert fp["path"] == str(packed)
    assert fp["size"] == packed.stat().st_size
    assert fp["header"] == ["id", "name"]
    assert set(fp) == set(sources.csv(plain).fingerprint())
    before = fp
    packed.write_bytes(gzip.compress(b"id,name\n1,amy\n", mtime=0))
    assert sources.csv(packed).fingerprint() != before


def test_byte_progress(tmp_path: Path) -> None:
    plain = tmp_path / "p.txt"
    plain.write_text("".join(f"{i} {random.random()}\n" for i in range(20_000)), encoding="utf-8")
    src = sources.lines(plain)
    assert src.size_bytes() == plain.stat().st_size
    assert src.progress(None) == 0.0
    walked, end, _ = walk(src)
    assert src.progress(walked[10_000][2]) == pytest.approx(
        walked[10_000][2]["offset"] / plain.stat().st_size
    )
    assert src.progress(end) == 1.0
    assert src.progress(17) is None  # not a file position

    packed = gzip_copy(plain, members=1)
    gz = sources.lines(packed)
    assert gz.size_bytes() == packed.stat().st_size
    gz_walked, gz_end, _ = walk(gz)
    fractions = [gz.progress(w[2]) for w in gz_walked[::1000]]
    assert fractions == sorted(fractions)
    assert (fractions[0] or 0) < 0.25
    assert 0.3 < (gz.progress(gz_walked[10_000][2]) or 0) < 0.7
    assert gz.progress(gz_end) == 1.0
    assert gz.progress({"offset": 5, "record": 1}) is None  # no anchor: unknown


def test_describe_position_says_uncompressed(tmp_path: Path) -> None:
    plain = tmp_path / "d.txt"
    plain.write_text("a\nb\n", encoding="utf-8")
    src = sources.lines(gzip_copy(plain))
    assert src.describe() == "d.txt.gz"
    assert src.describe_position({"offset": 2, "record": 1}) == "record 2 (uncompressed byte 2)"


def test_a_job_over_a_gz_file_resumes(tmp_path: Path) -> None:
    plain = tmp_path / "c.csv"
    plain.write_text("id\n" + "".join(f"{i}\n" for i in range(5000)), encoding="utf-8")
    packed = gzip_copy(plain)
    job = midway.Job("gz", store=f"sqlite:///{tmp_path / 's.db'}", every=100, quiet=True)
    seen: list[str] = []
    loop = job.loop(sources.csv(packed, key="id"))
    for row in loop:
        if len(seen) == 3210:
            break  # the row in hand is not done: the next run starts with it
        seen.append(row["id"])
    result = job.run(sources.csv(packed, key="id"), lambda row, ctx: seen.append(row["id"]))
    assert result.status == "completed"
    assert result.resumed_from is not None
    assert "gzip" in result.resumed_from["position"]
    assert seen == [str(i) for i in range(5000)]
