"""``file:///dir``: plain JSON files a person can read in an editor.

Layout, one folder per job::

    dir/midway-store.json            format marker and schema version
    dir/jobs/<job>/job.json          name, params, status, last summary
    dir/jobs/<job>/checkpoint.json   the checkpoint and its item ledger, written as one file
    dir/jobs/<job>/lease.json        who owns the job, until when, with which fencing token
    dir/jobs/<job>/runs/<id>.json    one file per run
    dir/jobs/<job>/lock              flock(2) target: one process at a time takes the job over
                                     or changes it without holding its lease (retry, reset)
    dir/jobs/<job>/.w-<token>-<...>/ the lease holder's write folder (see ``fileguard``)
    dir/plans/<job>.json             how a distributed job is split (written once)

Every file is replaced atomically: written to a temporary file, fsynced, renamed over the old
one, and the folder fsynced (the fsyncs are skipped with ``durable=False``). A reader sees the
old file or the new one, never a mix. The lease holder holds no lock across processes: its
temporary files are made in its write folder, which a takeover renames away first, so a
runner paused at any moment neither holds up the takeover nor writes after it. Files are
0600, folders 0700, and no link inside the store is followed. Locks are flock(2): one
machine, local disks.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from midway._model import jsonutil, ledger
from midway._model.checkpoint import Checkpoint, Counters
from midway._model.identity import JobId
from midway._model.jsonutil import JSONValue
from midway._model.ledger import ALL, DROP, RETRY, ItemRecord
from midway._model.owner import Owner
from midway._model.result import RunStatus
from midway.errors import ConfigError, StoreCorrupt, StoreTooNew, StoreUnavailable
from midway.stores import fileguard
from midway.stores.base import (
    CRASHED_MESSAGE,
    FINISHED,
    JOB_FIELDS,
    ForRun,
    HistoryPoint,
    ItemChange,
    JobRecord,
    Lease,
    Note,
    RunRecord,
    Store,
    Summary,
    check_lease_free,
    checked,
    claim_in_turn,
    moved_summary,
    plan_from_text,
)
from midway.stores.fileleases import FileLeases

FORMAT = "midway-file-store"
SCHEMA_VERSION = 1


class FileStore(FileLeases, Store):
    def __init__(self, root: Path, url: str, *, durable: bool = True) -> None:
        self.url = url
        self.root = root
        self.durable = durable
        self._lock_fds: dict[str, int] = {}
        self._checked: set[str] = set()  # jobs whose folders were checked (links, modes)
        self._write_dirs: dict[tuple[str, int], Path] = {}  # (job, token): write folder
        self._open()

    def _open(self) -> None:
        marker = self.root / "midway-store.json"
        try:
            if self.root.exists() and not self.root.is_dir():
                raise StoreCorrupt(
                    f"store {self.url}: {self.root} is a file, not a folder; a file:// store "
                    "is a folder of JSON files. Point --store at a folder."
                )
            fileguard.make_dirs(self.root)
            self._check_folder(self.root, follow=True)  # the root given may be a link
            fileguard.make_dirs(self.root / "jobs")
            self._check_folder(self.root / "jobs")
            if not os.path.lexists(marker):
                self._write(marker, {"format": FORMAT, "schema": SCHEMA_VERSION})
        except PermissionError as exc:
            raise StoreUnavailable(
                f"cannot create store {self.url}: {exc.strerror}; fix the permissions"
            ) from None
        info = self._read(marker)
        if not isinstance(info, dict) or info.get("format") != FORMAT:
            raise StoreCorrupt(
                f"store {self.url}: {marker} is not a midway store marker, so this folder "
                "holds something else or was damaged. Nothing was changed; point --store at "
                "another folder, or restore the marker from a backup."
            )
        schema = info.get("schema")
        if not isinstance(schema, int) or schema > SCHEMA_VERSION:
            raise StoreTooNew(
                f"store {self.url} has schema version {schema}, written by a newer midway; "
                f"this midway knows versions up to {SCHEMA_VERSION}. Upgrade midway; "
                "nothing was changed."
            )

    # -- checkpoints and runs -----------------------------------------------------------

    def load_checkpoint(self, job: str) -> Checkpoint | None:
        path = self._dir(job) / "checkpoint.json"
        data = self._read(path)
        if data is None:
            return None
        return Checkpoint.from_json(data, f"store {self.url}: {path}")

    def write_checkpoint(self, lease: Lease, checkpoint: Checkpoint) -> None:
        text = checkpoint.to_json_text()
        with self._owning(lease) as (folder, wdir, _):
            items = self._ledger(folder)
            if items or checkpoint.ledger:
                _apply(items, checkpoint.ledger)
                rows = ",".join(jsonutil.dumps(r.to_store()) for r in items.values())
                text = text[:-1] + ',"items":[' + rows + "]}"
            self._write(folder / "checkpoint.json", None, text, via=wdir)
            self._unlink(folder / "ledger.json", wdir)  # now in checkpoint.json
            if checkpoint.sample:
                point = {"at": checkpoint.updated_at, "run_id": checkpoint.run_id}
                point.update(version=checkpoint.version, **checkpoint.counters.as_dict())
                self._append(folder / "history.jsonl", point, sync=False, via=wdir)

    def _ledger(self, folder: Path) -> dict[str, ItemRecord]:
        """The job's item ledger: inside checkpoint.json while there is one (so both are
        replaced in one rename), else in ledger.json (what a completed run keeps)."""
        data = self._read(folder / "checkpoint.json")
        if isinstance(data, dict) and "items" in data:
            rows = data["items"]
        else:
            rows = self._read(folder / "ledger.json") or []
        if not isinstance(rows, list):
            raise StoreCorrupt(self._damaged(folder / "ledger.json", "the items are not a list"))
        records = [ItemRecord.from_store(row) for row in rows if isinstance(row, dict)]
        return {jsonutil.dumps(r.key): r for r in records}

    def _save_ledger(
        self, folder: Path, items: dict[str, ItemRecord], via: Path | None = None
    ) -> None:
        rows: list[JSONValue] = [r.to_store() for r in items.values()]
        data = self._read(folder / "checkpoint.json")
        if isinstance(data, dict):
            data["items"] = rows
            self._write(folder / "checkpoint.json", data, via=via)
        else:
            self._write(folder / "ledger.json", rows, via=via)

    def write_items(self, lease: Lease, records: list[ItemRecord]) -> None:
        with self._owning(lease) as (folder, wdir, _):
            items = self._ledger(folder)
            _apply(items, records)
            self._save_ledger(folder, items, wdir)

    def change_ledger(self, job: str, me: Owner, change: ItemChange) -> list[ItemRecord]:
        if not self._dir(job).is_dir():
            return []
        with self._locked(job) as folder:
            now = time.time()
            check_lease_free(job, self._lease_info(job), me, now)
            self._revoke(folder, job, me)
            items = self._ledger(folder)
            chosen = [r for r in items.values() if change.chooses(r)]
            for record in chosen:
                name = jsonutil.dumps(record.key)
                if change.to_status == DROP:
                    del items[name]
                else:
                    items[name] = replace(record, status=change.to_status, updated_at=now)
            if not chosen:
                return []
            self._save_ledger(folder, items)
            if change.count_as is not None:
                self._move_counts(folder, chosen, change.count_as)
            return chosen

    def _move_counts(self, folder: Path, chosen: list[ItemRecord], count_as: str) -> None:
        """Move the changed records' counts in the checkpoint or, without one, the summary."""
        data = self._read(folder / "checkpoint.json")
        if isinstance(data, dict):
            counters = Counters.from_dict(data.get("counters") or {})
            data["counters"] = counters.moved(chosen, count_as).as_dict()
            self._write(folder / "checkpoint.json", data)
            return
        job = self._read(folder / "job.json")
        summary = moved_summary(
            job.get("summary") if isinstance(job, dict) else None, chosen, count_as
        )
        if summary is not None:
            status = summary.get("status")
            self._update_job(
                folder, None, summary=summary, **({"status": status} if status else {})
            )

    def begin_transaction(self, lease: Lease) -> Any:
        raise ConfigError(
            f"guarantee='exactly-once' needs a database store to write into, and {self.url} is "
            "a folder of JSON files; use store='sqlite:///...' (the database your handler "
            "writes to) or a postgresql:// store"
        )

    def rollback_transaction(self) -> None:
        return None

    def add_note(self, job: str, text: str, author: str) -> Note:
        note = Note(time.time(), author, text)
        with self._locked(job) as folder:
            self._append(folder / "notes.jsonl", note.to_store(), sync=True)
        return note

    def list_notes(self, job: str) -> list[Note]:
        rows = self._read_lines(self._dir(job) / "notes.jsonl")
        return [Note.from_store(row) for row in rows]

    def list_history(self, job: str) -> list[HistoryPoint]:
        where = f"store {self.url}, history of {job!r}"
        rows = self._read_lines(self._dir(job) / "history.jsonl")
        points = [HistoryPoint.from_store(row, where) for row in rows]
        return [point for point in points if point is not None]

    def _run_path(self, folder: Path, run: RunRecord) -> Path:
        return folder / "runs" / f"{run.run_id}.json"

    def begin_run(self, lease: Lease, run: RunRecord) -> None:
        with self._owning(lease) as (folder, wdir, _):
            for stale in self._runs(lease.job):
                if stale.status == RunStatus.RUNNING:
                    stale.status = RunStatus.CRASHED
                    stale.ended_at = run.started_at
                    stale.message = CRASHED_MESSAGE
                    self._write(self._run_path(folder, stale), stale.to_store(), via=wdir)
            self._write(self._run_path(folder, run), run.to_store(), via=wdir)
            self._update_job(folder, wdir, status=run.status, updated_at=run.started_at)

    def end_run(self, lease: Lease, run: RunRecord, *, completed: bool, summary: Summary) -> None:
        with self._owning(lease) as (folder, wdir, info):
            now = run.ended_at or time.time()
            changes: dict[str, JSONValue] = {"status": run.status, "updated_at": now}
            if summary is not None:
                changes["summary"] = summary
            self._write(self._run_path(folder, run), run.to_store(), via=wdir)
            self._update_job(folder, wdir, **changes)
            if completed:
                # After the job file says so: a crash in between leaves a checkpoint at the
                # end of the input, from which the next run finishes at once. The ledger's
                # kept records move to ledger.json first (both may exist for a moment; the
                # checkpoint's copy wins).
                kept = [r for r in self._ledger(folder).values() if r.status in ledger.KEPT]
                self._write(folder / "ledger.json", [r.to_store() for r in kept], via=wdir)
                self._unlink(folder / "checkpoint.json", wdir)
                self._fsync_dir(folder)
            # Last: while it holds the lease, nobody else changes the job's files.
            self._put_lease(folder, wdir, lease.job, lease.token, None, info.since, 0.0)
        self._drop_write_dir(lease)

    def _update_job(self, folder: Path, via: Path | None, **changes: JSONValue) -> None:
        path = folder / "job.json"
        data = self._read(path)
        if not isinstance(data, dict):
            raise StoreCorrupt(self._damaged(path, "it is missing or not an object"))
        checked(data, JOB_FIELDS, f"store {self.url}: {path}")
        data.update(changes)
        self._write(folder / "job.json", data, via=via)

    def _runs(self, job: str) -> list[RunRecord]:
        folder = self._dir(job) / "runs"
        runs = []
        if folder.is_dir():
            for path in folder.glob("*.json"):
                data = self._read(path)
                if not isinstance(data, dict):
                    raise StoreCorrupt(self._damaged(path, "it is not a run record"))
                runs.append(RunRecord.from_store(data, f"store {self.url}: {path}"))
        runs.sort(key=lambda r: r.started_at, reverse=True)
        return runs

    # -- reading for people -------------------------------------------------------------

    def _job_record(self, job: str) -> JobRecord | None:
        path = self._dir(job) / "job.json"
        data = self._read(path)
        if data is None:
            return None
        if not isinstance(data, dict):
            raise StoreCorrupt(self._damaged(path, "it is not a JSON object"))
        return JobRecord(
            **checked(data, JOB_FIELDS, f"store {self.url}: {path}"),
            checkpoint=self.load_checkpoint(job),
            lease=self._lease_info(job),
        )

    def list_jobs(self) -> list[JobRecord]:
        records = []
        for folder in sorted((self.root / "jobs").iterdir()):
            if folder.is_dir() and not folder.is_symlink():
                record = self._job_record(folder.name)
                if record is not None:
                    records.append(record)
        records.sort(key=lambda r: r.updated_at, reverse=True)
        return records

    def get_job(self, job: str) -> JobRecord | None:
        if (self.root / "jobs" / job).is_symlink():
            raise StoreCorrupt(self._linked(self.root / "jobs" / job))
        if not (self.root / "jobs" / job).is_dir():
            return None
        return self._job_record(job)

    def load_for_run(self, job: str) -> ForRun:
        return self.load_checkpoint(job), self.list_items(job, ALL), self.get_job(job)

    def get_jobs(self, jobs: list[str]) -> list[JobRecord | None]:
        return [self.get_job(job) for job in jobs]

    def list_runs(self, job: str, limit: int = 20) -> list[RunRecord]:
        return self._runs(job)[:limit]

    def list_items(self, job: str, statuses: tuple[str, ...]) -> list[ItemRecord]:
        folder = self._dir(job)
        if not folder.is_dir():
            return []
        items = sorted(self._ledger(folder).values(), key=lambda r: r.updated_at)
        return [item for item in items if item.status in statuses]

    def reset(self, job: str, me: Owner) -> bool:
        folder = self._dir(job)
        plan = self._plan_path(job)
        if plan.exists():
            plan.unlink(missing_ok=True)
            self._fsync_dir(plan.parent)
        if not folder.is_dir():
            return False
        with self._locked(job):
            check_lease_free(job, self._lease_info(job), me, time.time())
            self._revoke(folder, job, me)
            found = (folder / "job.json").exists()
            for name in (
                "checkpoint.json",
                "job.json",
                "ledger.json",
                "notes.jsonl",
                "history.jsonl",
            ):
                (folder / name).unlink(missing_ok=True)
            for run in (folder / "runs").glob("*.json"):
                run.unlink()
            self._fsync_dir(folder)
        return found

    # -- distributed jobs ---------------------------------------------------------------

    def _plan_path(self, job: str) -> Path:
        return self.root / "plans" / f"{job}.json"

    def settle_plan(self, job: str, plan: dict[str, JSONValue]) -> dict[str, JSONValue]:
        """Written once: a complete temporary file is hard-linked to its name, which fails
        if another worker's plan got there first (then that one is read back)."""
        path = self._plan_path(job)
        if not path.exists():
            try:
                fileguard.make_dirs(path.parent)
                self._check_folder(path.parent)
                body = jsonutil.dumps(plan).encode("utf-8")
                tmp = fileguard.write_temp(path.parent, path.name, body, durable=self.durable)
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    pass
                finally:
                    tmp.unlink(missing_ok=True)
                if self.durable:
                    self._fsync_dir(path.parent)
            except OSError as exc:
                raise StoreUnavailable(f"cannot write {path}: {exc.strerror}") from None
        found = self.load_plan(job)
        assert found is not None
        return found

    def load_plan(self, job: str) -> dict[str, JSONValue] | None:
        path = self._plan_path(job)
        data = self._read(path)
        if data is None:
            return None
        return plan_from_text(jsonutil.dumps(data), f"store {self.url}: {path}")

    def claim_lease(self, jobs: list[JobId], owner: Owner, ttl: float) -> Lease | None:
        return claim_in_turn(self, jobs, owner, ttl)

    def completed_among(self, jobs: list[str]) -> set[str]:
        done = set()
        for job in jobs:
            folder = self._dir(job)
            if (folder / "checkpoint.json").exists():
                continue
            data = self._read(folder / "job.json")
            finished = isinstance(data, dict) and data.get("status") in FINISHED
            if finished and not self.list_items(job, (RETRY,)):  # else its next run handles them
                done.add(job)
        return done


def _apply(items: dict[str, ItemRecord], records: list[ItemRecord]) -> None:
    for record in records:
        name = jsonutil.dumps(record.key)
        if record.status == DROP:
            items.pop(name, None)
        else:
            items[name] = replace(record, updated_at=record.updated_at or time.time())
