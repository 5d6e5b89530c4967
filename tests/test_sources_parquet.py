"""``sources.parquet``: a Parquet file is one dict per row, resumed at a row group and a row
in it, fingerprinted by path, size, mtime, schema and row count, split by row groups."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import midway
from midway import ConfigError, InputDrift, SourceError, sources
from test_sources import assert_resumes_everywhere, items_of, walk


def write(path: Path, n: int, group: int = 1000, **extra: list[Any]) -> Path:
    data: dict[str, list[Any]] = {"id": [f"r{i}" for i in range(n)], "amount": list(range(n))}
    data.update(extra)
    pq.write_table(pa.table(data), path, row_group_size=group)
    return path


def test_rows_keys_and_positions_across_row_groups(tmp_path: Path) -> None:
    src = sources.parquet(write(tmp_path / "d.parquet", 10_000, group=3000), key="id")
    assert src.seekable
    assert src.total() == 10_000
    walked, end, sizes = walk(src)
    assert [w[1] for w in walked] == [f"r{i}" for i in range(10_000)]
    assert walked[4100][0] == {"id": "r4100", "amount": 4100}
    assert walked[4100][2] == {"row_group": 1, "row": 1100}
    assert end == {"row_group": 3, "row": 1000}
    assert max(sizes) <= 4096, "read a record batch at a time"
    assert (
        src.describe_position({"row_group": 1, "row": 1100}) == "row 4,100 (row group 1, row 1,100)"
    )
    assert items_of(src, {"row_group": 3, "row": 998}) == [
        {"id": "r9998", "amount": 9998},
        {"id": "r9999", "amount": 9999},
    ]
    assert items_of(src, {"row_group": 0, "row": 3000})[0]["amount"] == 3000


def test_resumes_at_every_row(tmp_path: Path) -> None:
    assert_resumes_everywhere(sources.parquet(write(tmp_path / "d.parquet", 11, group=4)))
    walked, _, _ = walk(sources.parquet(tmp_path / "d.parquet"))
    assert [w[1] for w in walked] == list(range(11)), "the default key is the row number"


def test_resuming_reads_only_the_row_group_it_resumes_in(tmp_path: Path) -> None:
    """O(1) resume: a position in the last row group does not read the ones before it."""
    path = write(tmp_path / "d.parquet", 6000, group=1000)
    src = sources.parquet(path)
    read: list[Any] = []
    original = pq.ParquetFile.iter_batches

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        read.append(kwargs.get("row_groups"))
        return original(self, *args, **kwargs)

    pq.ParquetFile.iter_batches = spy  # type: ignore[method-assign]
    try:
        rows = items_of(src, {"row_group": 5, "row": 990})
    finally:
        pq.ParquetFile.iter_batches = original  # type: ignore[method-assign]
    assert [r["amount"] for r in rows] == list(range(5990, 6000))
    assert read == [[5]]


def test_fingerprint_path_size_mtime_schema_rows(tmp_path: Path) -> None:
    path = write(tmp_path / "d.parquet", 500)
    base = sources.parquet(path).fingerprint()
    assert base["kind"] == "parquet"
    assert base["path"] == str(path)
    assert base["size"] == path.stat().st_size
    assert base["mtime_ns"] == path.stat().st_mtime_ns
    assert base["schema"] == ["id: string", "amount: int64"]
    assert base["rows"] == 500
    assert "row_groups" not in base, "the whole file"
    assert sources.parquet(path).fingerprint() == base
    write(path, 500, note=["x"] * 500)
    assert sources.parquet(path).fingerprint()["schema"] == [
        "id: string",
        "amount: int64",
        "note: string",
    ]


def test_a_rewritten_file_is_drift_on_resume(tmp_path: Path) -> None:
    path = write(tmp_path / "d.parquet", 10, group=4)
    job = midway.Job("drift", store=f"sqlite:///{tmp_path / 's.db'}", every=1, progress=False)

    def stop_at_6(row: dict[str, Any], ctx: Any) -> None:
        if row["amount"] == 6:
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        job.run(sources.parquet(path, key="id"), stop_at_6)
    kept = path.stat()
    write(path, 12, group=4)
    with pytest.raises(InputDrift, match="rows"):
        job.run(sources.parquet(path, key="id"), lambda row, ctx: None)
    write(path, 10, group=4)
    os.utime(path, ns=(kept.st_atime_ns, kept.st_mtime_ns))
    seen: list[int] = []
    result = job.run(sources.parquet(path, key="id"), lambda row, ctx: seen.append(row["amount"]))
    assert result.succeeded == 10
    assert seen == [6, 7, 8, 9], "resumed in row group 1 at its row 2, not from the start"


def test_partitions_are_ranges_of_row_groups(tmp_path: Path) -> None:
    src = sources.parquet(write(tmp_path / "d.parquet", 1001, group=100))
    parts = src.plan_parts(3)
    assert parts == [[0, 3], [3, 6], [6, 11]]
    keys: list[Any] = []
    for i, part in enumerate(parts):
        piece = src.partition(part, i)
        walked, _, _ = walk(piece)
        keys += [w[1] for w in walked]
        assert piece.total() == len(walked)
        assert piece.fingerprint()["row_groups"] == part
        assert walked[0][2] == {"row_group": part[0], "row": 0}  # type: ignore[index]
        resumed, _, _ = walk(piece, walked[150][2])
        assert [w[1] for w in resumed] == [w[1] for w in walked[150:]]
    assert keys == list(range(1001)), "a row keeps its number in the whole file as its key"
    many = src.plan_parts(20)
    assert [p[0] for p in many[1:]] == [p[1] for p in many[:-1]], "consecutive ranges"
    assert (many[0][0], many[-1][1]) == (0, 11)  # type: ignore[index]
    empty = sum(p[0] == p[1] for p in many)  # type: ignore[index]
    assert empty >= 9, "more parts than row groups leaves empty ones"
    with pytest.raises(SourceError, match="does not fit its 11 row groups"):
        src.partition([3, 12], 1)


def test_a_distributed_run_handles_every_row_once(tmp_path: Path) -> None:
    path = write(tmp_path / "d.parquet", 700, group=100)
    url = f"sqlite:///{tmp_path / 's.db'}"
    seen: list[str] = []
    job = midway.Job("split", store=url, partitions=3, quiet=True)
    job.run(
        sources.parquet(path, key="id"), lambda row, ctx: seen.append(row["id"]), distributed=True
    )
    assert sorted(seen) == sorted(f"r{i}" for i in range(700))


def test_bad_input_is_refused_before_the_first_row(tmp_path: Path) -> None:
    path = write(tmp_path / "d.parquet", 5)
    with pytest.raises(ConfigError, match=r"key=.ident. is not a column of d\.parquet"):
        sources.parquet(path, key="ident")
    with pytest.raises(SourceError, match="does not exist"):
        sources.parquet(tmp_path / "missing.parquet")
    (tmp_path / "not.parquet").write_text("id,amount\n1,2\n")
    with pytest.raises(SourceError, match="cannot be read as Parquet"):
        sources.parquet(tmp_path / "not.parquet")
    with pytest.raises(SourceError, match=r"is not a row of d\.parquet"):
        items_of(sources.parquet(path), {"row_group": 0, "row": 6})
    with pytest.raises(SourceError, match=r"is not a row of d\.parquet"):
        items_of(sources.parquet(path), 3)


def test_without_pyarrow_the_error_names_the_extra(tmp_path: Path) -> None:
    path = write(tmp_path / "d.parquet", 5)
    code = (
        "import sys; sys.modules['pyarrow'] = None\n"
        "import midway\n"
        "try:\n"
        f"    midway.sources.parquet({str(path)!r})\n"
        "except midway.ConfigError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'midway[parquet]'" in out.stdout


def test_midway_does_not_import_pyarrow() -> None:
    code = "import sys, midway, midway.sources; print('pyarrow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
