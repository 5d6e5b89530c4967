"""``.gz`` inputs for csv, jsonl and lines, with positions a resume can return to.

A deflate stream has no index, and the decoder's state at a point inside it (the last 32 KiB
of output and a bit offset within a block) is neither JSON nor small, so a position in a
gzip file is what it is for a plain file, the *uncompressed* byte offset and the record
number, plus an *anchor*: ``"gzip": [member, member_offset, read]``, the compressed and the
uncompressed offset where the gzip member holding the position starts, and how many
compressed bytes the decoder had read by then (for byte-based progress).

A resume opens the file at the member's start and decompresses up to the offset, throwing
that output away: it re-inflates but never re-parses or re-handles a record. So:

- an ordinary ``.gz`` file is a single member whose anchor is the start of the file, and a
  resume costs decompressing everything before the position: linear in the position, at
  zlib's speed (``benchmarks/resume.py`` measures it);
- a file made of many members (``bgzip`` output, or ``.gz`` files concatenated with ``cat``)
  resumes from the start of the member the position is in: O(1), one member at most.

A position without an anchor (written by hand, or by an older midway) resumes from the start
of the file, which is always correct, only slower.
"""

from __future__ import annotations

import io
import zlib
from bisect import bisect_right
from pathlib import Path
from typing import IO, Any

from midway._model.jsonutil import JSONValue
from midway.errors import SourceError

READ = 64 * 1024
MAX_OUT = 1024 * 1024  # decompressed bytes per step: bounds memory for very compressible data
GZIP = 16 + zlib.MAX_WBITS  # a gzip header and trailer (whose CRC and length zlib checks)


def anchor_of(position: JSONValue, offset: int, path: Path) -> tuple[int, int]:
    """The (compressed, uncompressed) start of the member to decompress from for a position
    at uncompressed ``offset``; the start of the file when the position has no anchor."""
    anchor = position.get("gzip") if isinstance(position, dict) else None
    if anchor is None or offset < 0:
        return (0, 0)
    if (
        isinstance(anchor, list)
        and len(anchor) == 3
        and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in anchor)
        and anchor[1] <= offset
    ):
        return (anchor[0], anchor[1])
    raise SourceError(
        f"the checkpoint position {position!r} has no usable gzip anchor for {path}; "
        "run with on_drift='restart', or `midway reset` the job"
    )


class MemberReader(io.RawIOBase):
    """The decompressed bytes of a gzip file from the start of one of its members on,
    noting where each later member starts (compressed and uncompressed offsets)."""

    def __init__(self, raw: IO[bytes], path: Path, member: int, member_offset: int) -> None:
        super().__init__()
        self._raw = raw
        self._path = path
        raw.seek(member)
        self._input = b""
        self._c = member  # compressed offset of self._input's first byte
        self._u = member_offset  # uncompressed bytes produced so far, from the file's start
        self._d = zlib.decompressobj(GZIP)
        self._fed = 0  # compressed bytes of the current member consumed so far
        self._out = memoryview(b"")
        self.members: list[tuple[int, int]] = [(member, member_offset)]

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not self._out:
            block = self._block()
            if not block:
                return 0
            self._out = memoryview(block)
        n = min(len(buffer), len(self._out))
        buffer[:n] = self._out[:n]
        self._out = self._out[n:]
        return n

    def skip(self, count: int) -> None:
        """Decompress ``count`` bytes and drop them (a resume's way to its offset)."""
        while count > 0:
            if not self._out:
                block = self._block()
                if not block:
                    return  # the file ends before the position: nothing is left to read
                self._out = memoryview(block)
            n = min(count, len(self._out))
            self._out = self._out[n:]
            count -= n

    def anchor(self, offset: int) -> list[int]:
        """The resume anchor for uncompressed ``offset`` (which this reader has passed):
        the last member that starts at or before it. Earlier members are forgotten, so the
        list stays short however many members the file has."""
        members = self.members
        i = max(0, bisect_right(members, offset, key=lambda m: m[1]) - 1)
        if i:
            del members[:i]
        member, member_offset = members[0]
        return [member, member_offset, self._c]

    def _block(self) -> bytes:
        """The next piece of decompressed output; ``b""`` at the end of the file."""
        while True:
            if not self._input:
                self._input = self._raw.read(READ)
                if not self._input:
                    if self._fed:
                        raise SourceError(
                            f"{self._path} ends inside a gzip member (at compressed byte "
                            f"{self._c:,}): the file is truncated; restore the whole file"
                        )
                    return b""
            if not self._fed:  # between members: zero padding may follow one
                data = self._input.lstrip(b"\0")
                self._c += len(self._input) - len(data)
                self._input = data
                if not data:
                    continue
                if self.members[-1] != (self._c, self._u):
                    self.members.append((self._c, self._u))
            data = self._input
            try:
                out = self._d.decompress(data, MAX_OUT)
            except zlib.error as exc:
                raise SourceError(
                    f"{self._path} is not valid gzip data at compressed byte {self._c:,} "
                    f"({exc}); is it a complete .gz file?"
                ) from None
            if self._d.eof:
                rest = self._d.unused_data
                self._d = zlib.decompressobj(GZIP)
                self._fed = 0
            else:
                rest = self._d.unconsumed_tail
                self._fed += len(data) - len(rest)
            self._c += len(data) - len(rest)
            self._input = rest
            if out:
                self._u += len(out)
                return out

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


def buffered(reader: MemberReader) -> IO[bytes]:
    return io.BufferedReader(reader, buffer_size=READ)
