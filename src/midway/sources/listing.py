"""``sources.files``: the files of a folder, one item each, in the order of their names.

The position is the relative path of the last file handled (``"2024/03/report.pdf"``), and a
resume starts at the first name that sorts after it. So files added or removed elsewhere in
the folder do not shift it, as a count would: a file added after the position is handled, one
added before it is not (it sorts among the files already done), and a removed one is simply
not there. That is why the fingerprint is the folder and the pattern, not the file count.

Listing the folder is the one cost that grows with it (a resume lists it once, then finds
its place by bisection); no file before the position is opened or handled again.
"""

from __future__ import annotations

import os
from bisect import bisect_right
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from midway._model.jsonutil import JSONValue
from midway.errors import ConfigError, SourceError

CHUNK = 1024


class FileListChunk:
    """Files in name order; the position before one is the name of the file before it."""

    __slots__ = ("_key", "after", "items", "names")
    shared = False
    errors: dict[int, str] | None = None

    def __init__(
        self,
        items: list[Path],
        names: list[str],
        after: str | None,
        key: Callable[[Path], JSONValue] | None,
    ) -> None:
        self.items = items
        self.names = names
        self.after = after
        self._key = key

    def key(self, index: int) -> JSONValue:
        if self._key is None:
            return self.names[index]
        return self._key(self.items[index])

    def position_before(self, index: int) -> JSONValue:
        return self.names[index - 1] if index else self.after


class FilesSource:
    kind = "files"
    seekable = True

    def __init__(
        self,
        directory: str | os.PathLike[str],
        pattern: str = "*",
        recursive: bool = False,
        key: Callable[[Path], JSONValue] | None = None,
    ) -> None:
        if key is not None and not callable(key):
            raise ConfigError(
                "key= for sources.files is a function of the file's Path (the default, "
                "its path relative to the folder, already identifies it)"
            )
        if not isinstance(pattern, str) or not pattern:
            raise ConfigError(f"pattern= must be a glob such as '*.pdf', not {pattern!r}")
        self.directory = Path(directory).expanduser().absolute()
        self._pattern = pattern
        self._recursive = recursive
        self._key = key
        self._listed: list[str] | None = None
        self._bounds: tuple[str | None, str | None] | None = None  # a partition's names

    def plan_parts(self, count: int) -> list[JSONValue]:
        """``count`` ranges of names of about equal size (for distributed runs), each
        ``[after, upto]``: the names after the first (None: from the first name) up to and
        including the second (None: to the last). A file added later joins the range its
        name falls in."""
        names = self.listing()
        n = len(names)
        # "" sorts before every name: a cut there leaves the parts before it empty.
        cuts: list[str | None] = [None]
        cuts += [names[n * i // count - 1] if n * i // count else "" for i in range(1, count)]
        cuts.append(None)
        return [[cuts[i], cuts[i + 1]] for i in range(count)]

    def partition(self, part: JSONValue, index: int) -> FilesSource:
        if not (
            isinstance(part, list)
            and len(part) == 2
            and all(b is None or isinstance(b, str) for b in part)
        ):
            raise SourceError(
                f"partition {index} of {self.describe()} is recorded as {part!r}, which is "
                "not a range of file names; `midway reset` the job to split it again"
            )
        piece = FilesSource(self.directory, self._pattern, self._recursive, self._key)
        piece._bounds = (part[0], part[1])
        return piece

    def listing(self) -> list[str]:
        """The relative paths (with ``/``) of the matching files, sorted."""
        folder = self.directory
        if not folder.is_dir():
            what = "is not a folder" if folder.exists() else "does not exist"
            raise SourceError(f"{folder} {what}; sources.files needs a folder to list")
        try:
            found = folder.rglob(self._pattern) if self._recursive else folder.glob(self._pattern)
            names = sorted(p.relative_to(folder).as_posix() for p in found if p.is_file())
        except OSError as exc:
            raise SourceError(f"cannot list {folder}: {exc.strerror or exc}") from None
        except ValueError as exc:  # a pattern pathlib refuses (e.g. an absolute one)
            raise ConfigError(f"pattern={self._pattern!r} cannot be used: {exc}") from None
        if self._bounds is None:
            return names
        after, upto = self._bounds
        lo = 0 if after is None else bisect_right(names, after)
        hi = len(names) if upto is None else bisect_right(names, upto)
        return names[lo : max(lo, hi)]

    def fingerprint(self) -> dict[str, JSONValue]:
        fp: dict[str, JSONValue] = {
            "kind": self.kind,
            "directory": str(self.directory),
            "pattern": self._pattern,
            "recursive": self._recursive,
        }
        if self._bounds is not None:
            fp["part"] = list(self._bounds)
        return fp

    def total(self) -> int:
        """The number of files now (the listing is kept for the ``open`` that follows)."""
        self._listed = self.listing()
        return len(self._listed)

    def open(self, position: JSONValue) -> FilesCursor:
        if position is not None and not isinstance(position, str):
            raise SourceError(
                f"the checkpoint position {position!r} is not a file name in {self.directory}; "
                "run with on_drift='restart', or `midway reset` the job"
            )
        names = self._listed if self._listed is not None else self.listing()
        self._listed = None
        start = 0 if position is None else bisect_right(names, position)
        return FilesCursor(self, names, start, position)

    def describe(self) -> str:
        where = f"{self.directory.name}/{self._pattern}"
        if self._bounds is None:
            return where
        after, upto = self._bounds
        first = "the first" if not after else f"after {after}"
        last = "the last" if upto is None else f"{upto}"
        return f"{where}, {first} to {last}"

    def describe_position(self, position: JSONValue) -> str:
        return "the first file" if position is None else f"the file after {position}"


class FilesCursor:
    def __init__(self, source: FilesSource, names: list[str], start: int, after: Any) -> None:
        self._source = source
        self._names = names
        self._start = start
        self._after = after

    def __iter__(self) -> Iterator[FileListChunk]:
        folder, key, names = self._source.directory, self._source._key, self._names
        after = self._after
        for start in range(self._start, len(names), CHUNK):
            part = names[start : start + CHUNK]
            yield FileListChunk([folder / name for name in part], part, after, key)
            after = part[-1]

    def close(self) -> None:
        pass


def files(
    directory: str | os.PathLike[str],
    pattern: str = "*",
    recursive: bool = False,
    key: Callable[[Path], JSONValue] | None = None,
) -> FilesSource:
    """The files in ``directory`` matching ``pattern`` (a glob; ``recursive=True`` looks in
    subfolders too), each item a ``pathlib.Path``, in the order of their relative paths.

    An item's key is its path relative to the folder. A resume starts at the first name after
    the last one handled, so adding or removing other files does not shift it. The glob is
    pathlib's: ``*`` matches names that start with a dot too."""
    return FilesSource(directory, pattern, recursive, key)


__all__ = ["FilesSource", "files"]
