"""The file store's file access: read and replace JSON files, add lines, refuse links.

Split from :mod:`midway.stores.filesystem`, which keeps what the files mean.
"""

from __future__ import annotations

import errno
import os
from contextlib import suppress
from pathlib import Path
from typing import Any

from midway import faults
from midway._model import jsonutil
from midway._model.jsonutil import JSONValue
from midway.errors import StoreCorrupt, StoreUnavailable
from midway.stores import fileguard

FILE_MODE = fileguard.FILE_MODE


class JsonFiles:
    """The files of a store at ``url``; ``durable=False`` skips the fsyncs."""

    url: str
    durable: bool

    def _check_folder(self, folder: Path, *, follow: bool = False) -> None:
        """Refuse a folder of the store that is a link or that other users may write to."""
        why = fileguard.unsafe_folder(folder, follow=follow)
        if why is not None:
            if "mode" in why:
                fix = f"Make it private (chmod 700 {folder}) and run again."
            else:
                fix = "Remove the link (and find out who put it there), then run again."
            raise StoreUnavailable(
                f"store {self.url}: refusing {folder}: {why}. Nothing was written. {fix}"
            )

    def _read(self, path: Path) -> Any:
        try:
            data = fileguard.read_bytes(path)
            if data is None:
                return None
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise StoreCorrupt(self._damaged(path, "it is not UTF-8 text")) from None
        except fileguard.LinkRefused:
            raise StoreCorrupt(self._linked(path)) from None
        except OSError as exc:
            raise StoreUnavailable(f"cannot read {path}: {exc.strerror}") from None
        try:
            return jsonutil.loads(text)
        except ValueError as exc:
            raise StoreCorrupt(self._damaged(path, f"it is not complete JSON ({exc})")) from None

    def _damaged(self, path: Path, why: str) -> str:
        return (
            f"store {self.url}: {path} is damaged: {why}. Nothing was changed. Restore it from "
            "a backup, or `midway reset` the job to start it again."
        )

    def _linked(self, path: Path) -> str:
        return (
            f"store {self.url}: {path} is a symbolic link; midway follows no link inside its "
            "store, so that nobody can redirect what it reads or writes. Nothing was changed. "
            "Remove the link (and find out who put it there), then run again."
        )

    def _write(
        self, path: Path, data: JSONValue, text: str | None = None, *, via: Path | None = None
    ) -> None:
        """Replace ``path`` atomically (and durably unless the store was opened otherwise).

        ``via``: the lease holder's write folder; the temporary file is made there, so that
        the rename fails (:class:`fileguard.Revoked`) once the job was taken over."""
        body = (text if text is not None else jsonutil.dumps(data)).encode("utf-8")
        tmp: Path | None = None
        try:
            tmp = fileguard.write_temp(via or path.parent, path.name, body, durable=self.durable)
            if faults.ACTIVE:
                faults.hit("file.before_rename")
            if via is not None:
                fileguard.fenced_replace(tmp, path, via)
            else:
                os.replace(tmp, path)
            tmp = None
            if self.durable:
                fileguard.fsync_dir(path.parent)
        except FileNotFoundError as exc:
            if via is not None:
                fileguard.check_held(via)
            raise self._unwritable(path, exc) from None
        except OSError as exc:
            raise self._unwritable(path, exc) from None
        finally:
            if tmp is not None:
                with suppress(OSError):
                    tmp.unlink()

    @staticmethod
    def _unwritable(path: Path, exc: OSError) -> StoreUnavailable:
        return StoreUnavailable(
            f"cannot write {path}: {exc.strerror}. The previous version is intact; free "
            "some disk space or fix the permissions, then run again."
        )

    def _unlink(self, path: Path, wdir: Path | None) -> None:
        try:
            if wdir is None:
                path.unlink(missing_ok=True)
            else:
                fileguard.fenced_unlink(path, wdir)
        except fileguard.Revoked:
            raise
        except OSError as exc:
            raise StoreUnavailable(f"cannot remove {path}: {exc.strerror}") from None

    def _append(
        self, path: Path, row: dict[str, JSONValue], *, sync: bool, via: Path | None = None
    ) -> None:
        """Add a line; a line torn by a crash is skipped when read back. ``via``: the lease
        holder's write folder, checked first (a point in time, unlike a rename: a history
        line is the only write a runner taken over at that very moment may still add)."""
        line = (jsonutil.dumps(row) + "\n").encode("utf-8")
        flags = fileguard.open_flags(write=True) & ~os.O_RDWR | os.O_WRONLY | os.O_APPEND
        try:
            if via is not None:
                fileguard.check_held(via)
            fd = os.open(path, flags, FILE_MODE)
            try:
                os.write(fd, line)
                if sync and self.durable:
                    os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise StoreCorrupt(self._linked(path)) from None
            raise StoreUnavailable(f"cannot write {path}: {exc.strerror}") from None

    def _read_lines(self, path: Path) -> list[dict[str, Any]]:
        try:
            data = fileguard.read_bytes(path)
            if data is None:
                return []
            text = data.decode("utf-8", errors="replace")
        except fileguard.LinkRefused:
            raise StoreCorrupt(self._linked(path)) from None
        except OSError as exc:
            raise StoreUnavailable(f"cannot read {path}: {exc.strerror}") from None
        rows = []
        for line in text.splitlines():
            try:
                row = jsonutil.loads(line)
            except ValueError:
                continue  # a line torn by a crash
            if isinstance(row, dict):
                rows.append(row)
        return rows

    def _fsync_dir(self, folder: Path) -> None:
        if self.durable:
            dfd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
