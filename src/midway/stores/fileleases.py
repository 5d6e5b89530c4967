"""The file store's leases: who holds a job, taken over under a lock, written fenced.

Split from :mod:`midway.stores.filesystem`, which keeps what the other files mean. A job
is taken over (or changed without its lease: retry, reset, notes) by one process at a
time, under flock(2) on the job folder's ``lock``; the lease holder never takes that lock,
and writes through its own write folder (see :mod:`midway.stores.fileguard`), which a
takeover renames away first.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from midway._model.identity import JobId
from midway._model.owner import Owner
from midway.errors import LeaseLost, StoreCorrupt, StoreUnavailable
from midway.stores import fileguard
from midway.stores.base import NEW, Lease, LeaseInfo, check_lease_free, lost_message
from midway.stores.jsonfiles import JsonFiles

LOCK_TIMEOUT = 30.0
"""How long a process waits for a job's lock (held by a process stuck or paused in it)."""
FILE_MODE = fileguard.FILE_MODE


class FileLeases(JsonFiles):
    """The job folders of the store at ``root`` and the leases on them."""

    root: Path
    _lock_fds: dict[str, int]
    _checked: set[str]  # jobs whose folders were checked (links, modes)
    _write_dirs: dict[tuple[str, int], Path]  # (job, token): write folder

    # -- files --------------------------------------------------------------------------

    def _dir(self, job: str) -> Path:
        return self.root / "jobs" / job

    def _job_folder(self, job: str) -> Path:
        """The job's folder and its runs folder, created 0700 and checked once a process."""
        folder = self._dir(job)
        if job not in self._checked:
            try:
                for sub in (folder, folder / "runs"):
                    fileguard.make_dirs(sub)
                    self._check_folder(sub)
            except OSError as exc:
                raise StoreUnavailable(f"cannot open {folder}: {exc.strerror}") from None
            self._checked.add(job)
        return folder

    @contextmanager
    def _locked(self, job: str) -> Iterator[Path]:
        """What changes a job without holding its lease (taking it over, retry, reset,
        notes): one process at a time, through the job folder's ``lock``. The lease holder
        never takes this lock, so a paused runner holds up nobody."""
        folder = self._job_folder(job)
        fd = self._lock_fds.get(job)
        if fd is None:
            try:
                fd = os.open(folder / "lock", fileguard.open_flags(write=True), FILE_MODE)
            except OSError as exc:
                raise StoreUnavailable(f"cannot open {folder / 'lock'}: {exc.strerror}") from None
            self._lock_fds[job] = fd
        self._lock(fd, job)
        try:
            yield folder
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _lock(self, fd: int, job: str) -> None:
        if not fileguard.flock_within(fd, LOCK_TIMEOUT):
            raise StoreUnavailable(
                f"store {self.url}: job {job!r} stayed locked by another process for "
                f"{LOCK_TIMEOUT:.0f} s; look for a stuck or paused midway process"
            )

    def _revoke(self, folder: Path, job: str, me: Owner) -> None:
        """Fence out whoever last held the job's lease (unless it is ``me``, still live)."""
        current = self._lease_info(job)
        keep = None
        if current is not None and current.owner == me and current.is_live():
            keep = fileguard.find_write_dir(folder, current.token)
        try:
            fileguard.revoke(folder, keep)
        except OSError as exc:
            raise StoreUnavailable(f"cannot write in {folder}: {exc.strerror}") from None

    @contextmanager
    def _owning(self, lease: Lease) -> Iterator[tuple[Path, Path, LeaseInfo]]:
        """The lease holder's writes: (job folder, write folder, lease as stored). Its own
        threads take turns on a lock inside its write folder; LeaseLost once taken over."""
        folder = self._dir(lease.job)
        wdir = self._write_dirs.get((lease.job, lease.token))
        if wdir is None:
            wdir = fileguard.find_write_dir(folder, lease.token)
            if wdir is None:
                raise LeaseLost(lost_message(lease))
            self._write_dirs[(lease.job, lease.token)] = wdir
        try:
            fd = os.open(wdir / "lock", fileguard.open_flags(write=True), FILE_MODE)
        except FileNotFoundError:
            raise LeaseLost(lost_message(lease)) from None
        except OSError as exc:
            raise StoreUnavailable(f"cannot open {wdir / 'lock'}: {exc.strerror}") from None
        try:
            self._lock(fd, lease.job)
            yield folder, wdir, self._holds(lease)
        except fileguard.Revoked:
            raise LeaseLost(lost_message(lease)) from None
        finally:
            os.close(fd)

    def close(self) -> None:
        for fd in self._lock_fds.values():
            os.close(fd)
        self._lock_fds.clear()

    # -- leases -------------------------------------------------------------------------

    def _lease_info(self, job: str) -> LeaseInfo | None:
        data = self._read(self._dir(job) / "lease.json")
        if data is None:
            return None
        path = self._dir(job) / "lease.json"
        if not isinstance(data, dict):
            raise StoreCorrupt(self._damaged(path, "it is not a JSON object"))
        return LeaseInfo.from_store(job, data, f"store {self.url}: {path}")

    def _put_lease(
        self,
        folder: Path,
        wdir: Path,
        job: str,
        token: int,
        owner: Owner | None,
        since: float,
        expires_at: float,
    ) -> None:
        self._write(
            folder / "lease.json",
            {
                "job": job,
                "token": token,
                "host": owner.host if owner else None,
                "pid": owner.pid if owner else None,
                "pid_started": owner.pid_started if owner else None,
                "since": since,
                "expires_at": expires_at,
            },
            via=wdir,
        )

    def acquire_lease(self, job: JobId, owner: Owner, ttl: float) -> Lease:
        with self._locked(job.key) as folder:
            now = time.time()
            current = self._lease_info(job.key)
            check_lease_free(job.key, current, owner, now)
            took_over = current if current is not None and current.owner is not None else None
            token = (current.token if current else 0) + 1
            try:
                fileguard.revoke(folder)  # every earlier holder: its renames fail from now on
                fileguard.sweep(folder)
                fileguard.sweep(folder / "runs")
                wdir = fileguard.new_write_dir(folder, token)
            except OSError as exc:
                raise StoreUnavailable(f"cannot write in {folder}: {exc.strerror}") from None
            self._write_dirs[(job.key, token)] = wdir
            self._put_lease(folder, wdir, job.key, token, owner, now, now + ttl)
            if self._read(folder / "job.json") is None:
                self._write(
                    folder / "job.json",
                    {
                        "job": job.key,
                        "name": job.name,
                        "params": job.params,
                        "status": NEW,
                        "created_at": now,
                        "updated_at": now,
                        "summary": None,
                    },
                    via=wdir,
                )
        return Lease(job.key, token, owner, ttl, took_over)

    def _holds(self, lease: Lease) -> LeaseInfo:
        info = self._lease_info(lease.job)
        if info is None or info.token != lease.token or info.owner is None:
            raise LeaseLost(lost_message(lease))
        return info

    def renew_lease(self, lease: Lease) -> bool:
        try:
            with self._owning(lease) as (folder, wdir, info):
                self._put_lease(
                    folder,
                    wdir,
                    lease.job,
                    lease.token,
                    lease.owner,
                    info.since,
                    time.time() + lease.ttl,
                )
        except LeaseLost:
            return False
        return True

    def release_lease(self, lease: Lease) -> None:
        try:
            with self._owning(lease) as (folder, wdir, info):
                self._put_lease(folder, wdir, lease.job, lease.token, None, info.since, 0.0)
        except LeaseLost:
            return
        self._drop_write_dir(lease)

    def _drop_write_dir(self, lease: Lease) -> None:
        """The lease was given back: its write folder goes (the next holder's revoke would
        remove it too)."""
        wdir = self._write_dirs.pop((lease.job, lease.token), None)
        if wdir is not None:
            shutil.rmtree(wdir, ignore_errors=True)
