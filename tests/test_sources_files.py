"""``sources.files``: a folder's files in name order, resumed after the last name handled, so
files added or removed elsewhere do not shift the position."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import midway
from midway import ConfigError, SourceError, sources
from test_sources import assert_resumes_everywhere, items_of, walk


def make(folder: Path, *names: str) -> None:
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name, encoding="utf-8")


def test_sorted_files_keys_and_positions(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    make(inbox, "b.pdf", "a.pdf", "c.txt", "sub/d.pdf", ".hidden.pdf")
    src = sources.files(inbox, "*.pdf")
    assert src.seekable
    assert src.total() == 3
    walked, end, _ = walk(src)
    assert [w[0] for w in walked] == [inbox / ".hidden.pdf", inbox / "a.pdf", inbox / "b.pdf"]
    assert all(isinstance(w[0], Path) and w[0].is_absolute() for w in walked)
    assert [w[1] for w in walked] == [".hidden.pdf", "a.pdf", "b.pdf"]
    assert [w[2] for w in walked] == [None, ".hidden.pdf", "a.pdf"]
    assert end == "b.pdf"
    assert_resumes_everywhere(src)


def test_recursive_uses_relative_paths(tmp_path: Path) -> None:
    make(tmp_path, "2024/01/x.csv", "2024/02/y.csv", "2023/z.csv", "top.csv", "2024/notes.md")
    src = sources.files(tmp_path, "*.csv", recursive=True)
    assert [w[1] for w in walk(src)[0]] == [
        "2023/z.csv",
        "2024/01/x.csv",
        "2024/02/y.csv",
        "top.csv",
    ]
    assert_resumes_everywhere(src)
    assert items_of(sources.files(tmp_path, "*.csv")) == [tmp_path / "top.csv"]
    assert [p.name for p in items_of(sources.files(tmp_path))] == ["top.csv"]  # no folders


def test_adding_and_removing_files_does_not_shift_the_position(tmp_path: Path) -> None:
    make(tmp_path, "a", "c", "e", "g")
    src = sources.files(tmp_path)
    position = walk(src)[0][2][2]
    assert position == "c"  # a and c are done
    fp = src.fingerprint()
    make(tmp_path, "b", "f", "z")  # b sorts among the files done: it is not handled
    (tmp_path / "a").unlink()
    (tmp_path / "e").unlink()
    assert [p.name for p in items_of(src, position)] == ["f", "g", "z"]
    assert src.fingerprint() == fp, "other files coming and going is not drift"
    (tmp_path / "c").unlink()  # even the last file handled may go
    assert [p.name for p in items_of(src, position)] == ["f", "g", "z"]


def test_many_files_come_in_chunks(tmp_path: Path) -> None:
    for i in range(2500):
        (tmp_path / f"f{i:05d}.txt").touch()
    src = sources.files(tmp_path, "*.txt")
    walked, end, sizes = walk(src)
    assert sizes == [1024, 1024, 452]
    assert walked[1024][2] == "f01023.txt"
    assert end == "f02499.txt"
    assert [p.name for p in items_of(src, "f02000.txt")] == [
        f"f{i:05d}.txt" for i in range(2001, 2500)
    ]


def test_fingerprint_key_and_errors(tmp_path: Path) -> None:
    make(tmp_path, "a.txt")
    fp = sources.files(tmp_path, "*.txt").fingerprint()
    assert fp == {
        "kind": "files",
        "directory": str(tmp_path),
        "pattern": "*.txt",
        "recursive": False,
    }
    assert json.loads(json.dumps(fp)) == fp
    assert sources.files(tmp_path, "*.md").fingerprint() != fp
    by_size = sources.files(tmp_path, key=lambda p: f"{p.stem}:{p.stat().st_size}")
    assert [w[1] for w in walk(by_size)[0]] == ["a:5"]
    with pytest.raises(ConfigError, match="function of the file's Path"):
        sources.files(tmp_path, key="name")  # type: ignore[arg-type]
    with pytest.raises(SourceError, match="does not exist"):
        items_of(sources.files(tmp_path / "nope"))
    with pytest.raises(SourceError, match="is not a folder"):
        items_of(sources.files(tmp_path / "a.txt"))
    with pytest.raises(SourceError, match="not a file name"):
        items_of(sources.files(tmp_path), {"offset": 1})
    src = sources.files(tmp_path, "*.txt")
    assert src.describe() == f"{tmp_path.name}/*.txt"
    assert src.describe_position("a.txt") == "the file after a.txt"


def test_a_job_over_a_folder(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    make(inbox, *(f"doc{i:02d}.txt" for i in range(30)))
    job = midway.Job("docs", store=f"sqlite:///{tmp_path / 'state.db'}", every=5, quiet=True)
    done: list[str] = []
    loop = job.loop(sources.files(inbox, "*.txt"))
    for path in loop:
        if len(done) == 12:
            break
        done.append(path.read_text(encoding="utf-8"))
    make(inbox, "doc05b.txt", "doc99.txt")
    result = job.run(sources.files(inbox, "*.txt"), lambda p, ctx: done.append(p.name))
    assert result.status == "completed"
    assert result.resumed_from is not None
    assert result.resumed_from["position"] == "doc11.txt"
    assert done == [f"doc{i:02d}.txt" for i in range(30)] + ["doc99.txt"]
