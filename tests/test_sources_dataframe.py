"""``sources.dataframe``: a pandas or polars DataFrame is one dict per row, resumed by row
number, with a fingerprint of its columns, row count and a sample of its rows."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
import pytest

import midway
from midway import ConfigError, InputDrift, sources
from test_sources import assert_resumes_everywhere, items_of, walk

LIBRARIES = ("pandas", "polars")


def frame(library: str, n: int = 10, **extra: list[Any]) -> Any:
    data: dict[str, list[Any]] = {"id": [f"r{i}" for i in range(n)], "amount": list(range(n))}
    data.update(extra)
    return pd.DataFrame(data) if library == "pandas" else pl.DataFrame(data)


@pytest.mark.parametrize("library", LIBRARIES)
def test_run_handles_rows_not_column_names(tmp_path: Path, library: str) -> None:
    """``Job("df").run(df, h)`` used to handle the column names: "completed 2"."""
    df = frame(library, 5)
    seen: list[Any] = []
    job = midway.Job("df", store=f"sqlite:///{tmp_path / 's.db'}", progress=False)
    result = job.run(df, lambda row, ctx: seen.append(row))
    assert result.succeeded == 5
    assert seen == [{"id": f"r{i}", "amount": i} for i in range(5)]
    looped = midway.Job("df-loop", store=job.store_url, progress=False)
    assert list(looped.loop(df)) == seen


@pytest.mark.parametrize("library", LIBRARIES)
def test_rows_keys_positions_and_resume(library: str) -> None:
    df = frame(library, 9000)  # more than one chunk
    src = sources.dataframe(df, key="id")
    assert src.seekable
    assert src.total() == 9000
    walked, end, _ = walk(src)
    assert [w[1] for w in walked] == [f"r{i}" for i in range(9000)]
    assert walked[4100][0] == {"id": "r4100", "amount": 4100}
    assert walked[4100][2] == 4100  # the position is the row number
    assert end == 9000
    assert items_of(src, 8998) == [{"id": "r8998", "amount": 8998}, {"id": "r8999", "amount": 8999}]
    assert src.describe_position(4100) == "row 4,100"
    assert_resumes_everywhere(sources.dataframe(frame(library, 7)))


@pytest.mark.parametrize("library", LIBRARIES)
def test_partitions_cover_every_row_once(library: str) -> None:
    src = sources.dataframe(frame(library, 1001))
    parts = src.plan_parts(3)
    keys: list[Any] = []
    for i, part in enumerate(parts):
        piece = src.partition(part, i)
        keys += [w[1] for w in walk(piece)[0]]
        lo = part[0]  # type: ignore[index]
        assert items_of(piece, 1)[0]["amount"] == lo + 1, "positions count in the partition"
    assert keys == list(range(1001)), "a row keeps its number in the whole frame as its key"


@pytest.mark.parametrize("library", LIBRARIES)
def test_fingerprint_columns_rows_and_sample(library: str) -> None:
    base = sources.dataframe(frame(library, 500)).fingerprint()
    assert base["kind"] == "dataframe"
    assert base["columns"] == ["id", "amount"]
    assert base["rows"] == 500
    assert sources.dataframe(frame(library, 500)).fingerprint() == base
    assert sources.dataframe(frame(library, 501)).fingerprint()["rows"] == 501
    other = frame(library, 500, note=["x"] * 500)
    assert sources.dataframe(other).fingerprint()["columns"] == ["id", "amount", "note"]
    changed = {"id": [f"r{i}" for i in range(500)], "amount": [*range(499), -1]}
    edited = pd.DataFrame(changed) if library == "pandas" else pl.DataFrame(changed)
    assert sources.dataframe(edited).fingerprint()["sample"] != base["sample"]


def test_a_changed_frame_is_drift_on_resume(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 's.db'}"
    job = midway.Job("drift", store=store, every=1, progress=False)

    def stop_at_3(row: dict[str, Any], ctx: Any) -> None:
        if row["amount"] == 3:
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        job.run(frame("pandas", 10), stop_at_3)
    with pytest.raises(InputDrift, match="rows"):
        job.run(frame("pandas", 12), lambda row, ctx: None)
    seen: list[int] = []
    result = job.run(frame("pandas", 10), lambda row, ctx: seen.append(row["amount"]))
    assert result.succeeded == 10
    assert seen == list(range(3, 10)), "resumed at row 3, not from the start"


@pytest.mark.parametrize("library", LIBRARIES)
def test_wrong_key_is_refused_naming_the_columns(library: str) -> None:
    with pytest.raises(ConfigError) as caught:
        sources.dataframe(frame(library), key="ident")
    assert "key='ident' is not a column of" in str(caught.value)
    assert "'id', 'amount'" in str(caught.value)


def test_other_objects_and_lazy_frames_are_refused() -> None:
    with pytest.raises(ConfigError, match="needs a pandas or polars DataFrame, not a list"):
        sources.dataframe([1, 2])
    job = midway.Job("lazy", store="sqlite:///unused.db", progress=False)
    with pytest.raises(ConfigError, match=r"LazyFrame; call \.collect\(\)"):
        job.run(frame("polars").lazy(), lambda row, ctx: None)


def test_midway_does_not_import_pandas_or_polars() -> None:
    code = (
        "import sys, midway, midway.sources; print(sorted({'pandas', 'polars'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
