"""The file store's files: private, never through a link, and written only by the lease holder.

Private: folders are created 0700 and files 0600 (a stricter umask still wins); a folder of
the store that every user may write to is refused, since anyone could plant a file or a link
in it. Never through a link: files are opened with ``O_NOFOLLOW`` and temporary files get
unpredictable names with ``O_EXCL`` (``tempfile.mkstemp``), so a link planted at a name midway
uses makes the open fail instead of redirecting the write.

Fenced: the runner that holds a job's lease writes through a folder of its own inside the
job's folder, ``.w-<token>-<random>``: every temporary file is made there and renamed into
place from there. Whoever takes the job over (or changes it while no live runner holds it)
first renames every such folder away (:func:`revoke`). From then on, the old runner's
renames fail, because their source no longer exists: rename(2) is atomic, so the old runner's
write lands before the takeover reads the job or not at all. A runner paused at any moment,
woken after a takeover, writes nothing.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import time
from contextlib import suppress
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700
WRITE_DIR = ".w-"  # prefix of the lease holder's write folders
TRASH = ".x-"  # prefix of revoked write folders while they are removed


class Revoked(Exception):
    """The write folder was renamed away: another process took the job over."""


class LinkRefused(Exception):
    """A name inside the store is a symbolic link."""


def make_dirs(path: Path) -> None:
    """Create ``path`` and its missing parents 0700 each; existing folders keep their mode."""
    missing = []
    here = path
    while not os.path.lexists(here):
        missing.append(here)
        if here.parent == here:
            break
        here = here.parent
    for folder in reversed(missing):
        with suppress(FileExistsError):
            folder.mkdir(mode=DIR_MODE)


def create_private(path: Path) -> None:
    """Create an empty file 0600 at ``path`` unless something is there already."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
    except FileExistsError:
        return
    os.close(fd)


def open_flags(write: bool = False) -> int:
    return (os.O_RDWR | os.O_CREAT if write else os.O_RDONLY) | os.O_NOFOLLOW | os.O_CLOEXEC


def read_bytes(path: Path) -> bytes | None:
    """The file's bytes, None if it is missing; :class:`LinkRefused` if it is a link."""
    try:
        fd = os.open(path, open_flags())
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LinkRefused(str(path)) from None
        raise
    with os.fdopen(fd, "rb") as f:
        return f.read()


def is_private(mode: int) -> bool:
    """Other users cannot write to a folder with this mode."""
    return not mode & stat.S_IWOTH


def unsafe_folder(path: Path, *, follow: bool) -> str | None:
    """Why ``path`` may not hold store files (a link, writable by everyone), or None."""
    st = os.stat(path) if follow else os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        return "it is a symbolic link, and midway follows no link inside its store"
    if not is_private(st.st_mode):
        return (
            f"every user of this machine may write to it (mode {stat.S_IMODE(st.st_mode):o}), "
            "so anyone could plant a file or a link where midway writes"
        )
    return None


def write_temp(folder: Path, name: str, body: bytes, *, durable: bool) -> Path:
    """A complete new file with ``body`` in ``folder``, under an unpredictable name."""
    import tempfile  # here and below: the file store's, not every command's, imports

    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    try:
        view = memoryview(body)
        while view:
            view = view[os.write(fd, view) :]
        if durable:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    return Path(tmp)


def fsync_dir(folder: Path) -> None:
    dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def new_write_dir(folder: Path, token: int) -> Path:
    import tempfile

    return Path(tempfile.mkdtemp(prefix=f"{WRITE_DIR}{token}-", dir=folder))


def find_write_dir(folder: Path, token: int) -> Path | None:
    for found in folder.glob(f"{WRITE_DIR}{token}-*"):
        return found
    return None


def revoke(folder: Path, keep: Path | None = None) -> None:
    """Rename every write folder in ``folder`` but ``keep`` away, then remove them."""
    import secrets
    import shutil

    for entry in os.scandir(folder):
        if entry.name.startswith(WRITE_DIR) and (keep is None or entry.name != keep.name):
            trash = folder / f"{TRASH}{secrets.token_hex(8)}"
            try:
                os.rename(entry.path, trash)
            except FileNotFoundError:
                continue
            shutil.rmtree(trash, ignore_errors=True)


def sweep(folder: Path) -> None:
    """Remove what killed writers left: temporary files and half-removed write folders."""
    import shutil

    for entry in os.scandir(folder):
        if entry.name.startswith(TRASH):
            shutil.rmtree(entry.path, ignore_errors=True)
        elif entry.name.startswith(".") and entry.name.endswith(".tmp"):
            os.unlink(entry.path)


def check_held(wdir: Path) -> None:
    """:class:`Revoked` if the write folder ``wdir`` was renamed away (the job taken over)."""
    if not wdir.is_dir():
        raise Revoked(str(wdir))


def fenced_replace(tmp: Path, path: Path, wdir: Path) -> None:
    """Rename ``tmp`` (inside ``wdir``) over ``path``; :class:`Revoked` if ``wdir`` was."""
    try:
        os.replace(tmp, path)
    except FileNotFoundError:
        check_held(wdir)
        raise


def fenced_unlink(path: Path, wdir: Path) -> None:
    """Remove ``path`` (if there) by moving it into ``wdir`` first, so that a revoked
    writer cannot remove a file of the runner that took over."""
    import secrets

    gone = wdir / f".gone-{secrets.token_hex(6)}"
    try:
        os.rename(path, gone)
    except FileNotFoundError:
        check_held(wdir)
        return
    os.unlink(gone)


def flock_within(fd: int, timeout: float) -> bool:
    """flock(2) has no timeout: poll. False if it stayed locked for ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
