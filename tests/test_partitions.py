"""Partitions for distributed runs: each source's plan cuts its input into parts that, read
one after another, are exactly the whole input, with the same items and keys; every part
resumes anywhere inside itself; the plan is kept in the store, first worker's wins."""

from __future__ import annotations

import gzip
import json
import random
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

import midway
from midway import ConfigError, InputDrift, RefusedError, StoreCorrupt, sources
from midway._model.identity import make_job_id
from midway._model.owner import Owner
from midway.distributed.plan import settle_plan
from midway.sources import ByteProgress, Sharded, Source, Splittable
from midway.stores import RunRecord, open_store
from test_sources import TRICKY_ROWS, assert_resumes_everywhere, walk, write_tricky_csv

COUNTS = [1, 2, 3, 5, 16]


def parts_of(src: Any, count: int) -> list[Source]:
    """Plan ``count`` parts as the first worker would, through JSON as the store keeps it."""
    if isinstance(src, Sharded):
        count = src.shard_count()  # one part per shard, whatever was asked
    plan = json.loads(json.dumps(src.plan_parts(count)))
    assert len(plan) == count
    return [src.partition(part, i) for i, part in enumerate(plan)]


def assert_parts_are_the_whole(src: Any, count: int, *, resume: bool = False) -> list[Source]:
    """The parts' items and keys, read in order, are the whole source's, each item once."""
    whole, _, _ = walk(src)
    parts = parts_of(src, count)
    read: list[tuple[Any, Any]] = []
    for part in parts:
        walked, _, _ = walk(part)
        total = part.total()
        if total is not None:
            assert total == len(walked), part.describe()
        read += [(item, key) for item, key, _ in walked]
        if resume:
            assert_resumes_everywhere(part)
    assert read == [(item, key) for item, key, _ in whole]
    return parts


# -- sequences --------------------------------------------------------------------------


def test_sources_state_their_capabilities(tmp_path: Path) -> None:
    """What distributed runs and byte progress need is a Protocol each source can be
    checked against, not an attribute looked up by name."""
    csv_path = tmp_path / "a.csv"
    csv_path.write_text("id\n1\n")
    splittable = [sources.sequence([1, 2]), sources.csv(csv_path), sources.files(tmp_path)]
    assert all(isinstance(s, Splittable) for s in splittable)
    assert not any(isinstance(s, Sharded) for s in splittable)
    assert isinstance(sources.shards({"a": [1]}), Sharded)
    assert isinstance(sources.csv(csv_path), ByteProgress)
    assert not isinstance(sources.sequence([1]), ByteProgress)
    assert not isinstance(sources.iterable(iter([1])), Splittable)
    assert not isinstance(sources.pages(lambda cursor: ([], None)), Splittable)


@pytest.mark.parametrize("count", COUNTS)
def test_a_sequence_splits_into_index_ranges(count: int) -> None:
    parts = assert_parts_are_the_whole(sources.sequence(list(range(100))), count)
    assert [p.total() for p in parts] == [
        100 * (i + 1) // count - 100 * i // count for i in range(count)
    ]


def test_a_short_sequence_leaves_empty_parts() -> None:
    parts = assert_parts_are_the_whole(sources.sequence(["a", "b"]), 5)
    assert sum(p.total() or 0 for p in parts) == 2


def test_a_sequence_part_resumes_anywhere_with_keys_of_the_whole() -> None:
    src = sources.sequence(list(range(50)))
    part = parts_of(src, 3)[1]
    walked, _, _ = walk(part)
    assert [key for _, key, _ in walked] == list(range(16, 33))
    assert_resumes_everywhere(part)


# -- files ------------------------------------------------------------------------------


def write_lines(path: Path, lines: list[str], *, compress: bool = False) -> Path:
    data = "".join(lines).encode()
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


@pytest.mark.parametrize("count", COUNTS)
def test_world_cities_splits_into_byte_ranges_cut_between_records(
    world_cities: Path, count: int
) -> None:
    src = sources.csv(world_cities, key="geonameid")
    parts = assert_parts_are_the_whole(src, count)
    sizes = [p.total() or 0 for p in parts]
    assert sum(sizes) == 34032
    if count > 1:  # about equal shares of the bytes, so of the rows
        assert max(sizes) < 2 * 34032 / count, sizes


@pytest.mark.parametrize("bom", [False, True], ids=["nobom", "bom"])
@pytest.mark.parametrize("crlf", [False, True], ids=["lf", "crlf"])
def test_a_csv_with_newlines_in_quoted_fields_is_cut_between_records(
    tmp_path: Path, bom: bool, crlf: bool
) -> None:
    path = tmp_path / "tricky.csv"
    write_tricky_csv(path, bom=bom, crlf=crlf, blank_lines=True)
    for count in (2, 3, 4, 6, 9):
        parts = assert_parts_are_the_whole(sources.csv(path), count, resume=True)
        assert sum(p.total() or 0 for p in parts) == len(TRICKY_ROWS)


def test_a_large_csv_with_quoted_newlines_everywhere(tmp_path: Path) -> None:
    """Cuts land anywhere in the bytes, often inside a quoted field: each must move on to
    where the next record begins."""
    rng = random.Random(7)
    rows = ["id,text\n"]
    for i in range(5000):
        text = "".join(rng.choice(["a", ",", "\n", '""', "é"]) for _ in range(rng.randint(0, 12)))
        rows.append(f'{i},"{text}"\n')
    path = write_lines(tmp_path / "quoted.csv", rows)
    for count in (2, 7, 16):
        parts = assert_parts_are_the_whole(sources.csv(path, key="id"), count)
        assert sum(p.total() or 0 for p in parts) == 5000


@pytest.mark.parametrize("kind", ["jsonl", "lines"])
def test_jsonl_and_lines_split_with_their_record_numbers(tmp_path: Path, kind: str) -> None:
    lines = [json.dumps({"n": i, "text": "x" * (i % 40)}) + "\n" for i in range(3000)]
    lines[10:10] = ["\n", "   \n"]  # blank lines: skipped by jsonl, records of lines
    path = write_lines(tmp_path / "data.jsonl", lines)
    src = sources.jsonl(path) if kind == "jsonl" else sources.lines(path)
    for count in (2, 5, 16):
        assert_parts_are_the_whole(src, count)
    assert_resumes_everywhere(parts_of(src, 4)[2])


def test_a_gzip_file_splits_between_chunks(tmp_path: Path) -> None:
    lines = [json.dumps({"n": i, "pad": "y" * (i % 100)}) + "\n" for i in range(20000)]
    path = write_lines(tmp_path / "data.jsonl.gz", lines, compress=True)
    src = sources.jsonl(path, key="n")
    parts = assert_parts_are_the_whole(src, 4)
    assert sum(1 for p in parts if p.total()) >= 3, [p.total() for p in parts]
    part = parts[2]
    walked, _, _ = walk(part)
    middle = walked[len(walked) // 2][2]
    assert [k for _, k, _ in walk(part, middle)[0]] == [k for _, k, _ in walked[len(walked) // 2 :]]


def test_small_and_empty_files(tmp_path: Path) -> None:
    one = write_lines(tmp_path / "one.jsonl", ['{"a": 1}\n'])
    assert_parts_are_the_whole(sources.jsonl(one), 4)
    empty = write_lines(tmp_path / "empty.jsonl", [])
    parts = assert_parts_are_the_whole(sources.jsonl(empty), 3)
    assert [p.total() for p in parts] == [0, 0, 0]
    header_only = write_lines(tmp_path / "h.csv", ["id,name\n"])
    assert_parts_are_the_whole(sources.csv(header_only), 2)


def test_a_file_part_fingerprint_names_its_records(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "d.jsonl", [f'{{"n": {i}}}\n' for i in range(100)])
    parts = parts_of(sources.jsonl(path), 2)
    fps = [p.fingerprint() for p in parts]
    assert fps[0]["part"] == [0, parts[0].total()]
    assert fps[0]["size"] == fps[1]["size"]
    assert "records 1 to" in parts[0].describe()


# -- tables -----------------------------------------------------------------------------


def make_table(path: Path, keys: list[Any], *, composite: bool = False) -> str:
    with sqlite3.connect(path) as conn:
        if composite:
            conn.execute("CREATE TABLE t (day TEXT, n INTEGER, v TEXT, PRIMARY KEY (day, n))")
            conn.executemany("INSERT INTO t VALUES (?, ?, ?)", [(*k, f"v{k}") for k in keys])
        else:
            conn.execute("CREATE TABLE t (id, v TEXT)")
            conn.executemany("INSERT INTO t VALUES (?, ?)", [(k, f"v{k}") for k in keys])
    conn.close()
    return f"sqlite:///{path}"


@pytest.mark.parametrize("count", COUNTS)
def test_a_table_splits_into_key_ranges(tmp_path: Path, count: int) -> None:
    url = make_table(tmp_path / "d.db", [3 * i + 1 for i in range(1000)])
    src = sources.sql(url, "t", key="id", batch=64, count=True)
    parts = assert_parts_are_the_whole(src, count)
    assert [p.total() for p in parts] == [
        1000 * (i + 1) // count - 1000 * i // count for i in range(count)
    ]
    assert_resumes_everywhere(parts[-1])


def test_composite_and_text_keys_split(tmp_path: Path) -> None:
    keys = [(f"2026-01-{d:02d}", n) for d in range(1, 11) for n in range(30)]
    url = make_table(tmp_path / "c.db", keys, composite=True)
    assert_parts_are_the_whole(sources.sql(url, "t", key=("day", "n"), batch=50), 7)
    url = make_table(tmp_path / "s.db", [f"name-{i:04d}" for i in range(200)])
    assert_parts_are_the_whole(sources.sql(url, "t", key="id", batch=33), 4)


def test_rows_added_after_the_plan_fall_in_one_range_each(tmp_path: Path) -> None:
    path = tmp_path / "d.db"
    url = make_table(path, [10 * i for i in range(100)])
    src = sources.sql(url, "t", key="id", batch=7)
    plan = json.loads(json.dumps(src.plan_parts(4)))
    with sqlite3.connect(path) as conn:
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(k, "new") for k in (-5, 255, 555, 5000)])
    conn.close()
    seen: list[Any] = []
    for i, part in enumerate(plan):
        seen += [key for _, key, _ in walk(src.partition(part, i))[0]]
    assert sorted(seen) == sorted([10 * i for i in range(100)] + [-5, 255, 555, 5000])
    assert len(seen) == len(set(seen))


def test_a_small_table_leaves_empty_parts(tmp_path: Path) -> None:
    url = make_table(tmp_path / "d.db", [1, 2])
    parts = assert_parts_are_the_whole(sources.sql(url, "t", key="id", count=True), 5)
    assert [p.total() for p in parts] == [0, 0, 1, 0, 1]
    assert parts[0].describe().endswith("no rows")


def test_a_table_splits_on_postgresql(postgresql_url: str) -> None:
    import psycopg

    with psycopg.connect(postgresql_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id bigint PRIMARY KEY, v text)")
        conn.execute("INSERT INTO t SELECT g * 2, 'x' || g FROM generate_series(1, 777) g")
    src = sources.sql(postgresql_url, "t", key="id", batch=50, count=True)
    parts = assert_parts_are_the_whole(src, 6)
    assert sum(p.total() or 0 for p in parts) == 777


# -- listings and shards ----------------------------------------------------------------


def test_a_listing_splits_into_name_ranges(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(23):
        (folder / f"doc-{i:03d}.txt").write_text(str(i))
    src = sources.files(folder, "*.txt")
    for count in (2, 5, 30):
        assert_parts_are_the_whole(src, count)
    plan = json.loads(json.dumps(src.plan_parts(3)))
    (folder / "doc-004a.txt").write_text("late")  # a file added later joins one range
    (folder / "zzz.txt").write_text("last")
    seen = [k for i, p in enumerate(plan) for _, k, _ in walk(src.partition(p, i))[0]]
    assert sorted(seen) == sorted(p.name for p in folder.iterdir())


def test_shards_read_in_order_with_keys_of_their_own(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "b.jsonl", [f'{{"n": {i}}}\n' for i in range(3)])
    src = sources.shards({"a": [10, 11], "b": sources.jsonl(path), "c": range(2)})
    walked, _, _ = walk(src)
    assert [k for _, k, _ in walked] == ["a/0", "a/1", "b/1", "b/2", "b/3", "c/0", "c/1"]
    assert src.total() is None  # a jsonl file has no cheap count
    assert_resumes_everywhere(src)
    parts = parts_of(src, 99)
    assert len(parts) == 3
    assert parts[0].describe().startswith("shard a")
    assert_parts_are_the_whole(src, 3)
    with pytest.raises(ConfigError, match="non-empty name"):
        sources.shards({"a/b": [1]})
    with pytest.raises(ConfigError, match="dict of shard name"):
        sources.shards({})


def test_a_source_that_cannot_split_is_refused(tmp_path: Path) -> None:
    job = midway.Job("x", store=f"sqlite:///{tmp_path / 's.db'}", partitions=4, quiet=True)
    with pytest.raises(ConfigError, match="cannot be split into partitions"):
        job.run(iter([1, 2, 3]), lambda item, ctx: None, distributed=True)
    one = midway.Job("y", store=f"sqlite:///{tmp_path / 's.db'}", quiet=True)
    with pytest.raises(ConfigError, match="partitions=N"):
        one.run([1, 2], lambda item, ctx: None, distributed=True)


# -- the plan in the store --------------------------------------------------------------


def test_the_first_plan_recorded_is_every_workers(store_url: str) -> None:
    store = open_store(store_url)
    try:
        assert store.load_plan("job") is None
        first = store.settle_plan("job", {"parts": [1, 2], "by": "first"})
        second = store.settle_plan("job", {"parts": [3], "by": "second"})
        assert first == second == {"parts": [1, 2], "by": "first"}
        assert store.load_plan("job") == first
        assert store.reset("job", Owner.current()) is False  # no job record, but...
        assert store.load_plan("job") is None  # ...its plan is gone
        assert store.settle_plan("job", {"parts": [3]}) == {"parts": [3]}
    finally:
        store.close()


def test_workers_that_disagree_with_the_plan_are_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    path = write_lines(tmp_path / "d.jsonl", [f'{{"n": {i}}}\n' for i in range(50)])
    store = open_store(url)
    try:
        job = midway.Job("split", store=url, partitions=4, quiet=True)
        plan = settle_plan(store, job, sources.jsonl(path))
        assert plan["partitions"] == 4
        assert len(plan["parts"]) == 4
        assert settle_plan(store, job, sources.jsonl(path)) == plan
        other = midway.Job("split", store=url, partitions=8, quiet=True)
        with pytest.raises(RefusedError, match="split into 4 partitions"):
            settle_plan(store, other, sources.jsonl(path))
        write_lines(path, [f'{{"n": {i}}}\n' for i in range(60)])
        with pytest.raises(InputDrift, match="changed since it was split") as drift:
            settle_plan(store, job, sources.jsonl(path))
        assert "midway reset split --yes" in str(drift.value)
        anyway = midway.Job("split", store=url, partitions=4, quiet=True, on_drift="continue")
        assert settle_plan(store, anyway, sources.jsonl(path)) == plan
    finally:
        store.close()


def test_a_damaged_plan_is_store_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = open_store(f"sqlite:///{path}")
    store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO midway_plans VALUES ('split', 'not json', 0)")
    conn.close()
    store = open_store(f"sqlite:///{path}")
    try:
        with pytest.raises(StoreCorrupt, match="midway reset"):
            store.load_plan("split")
    finally:
        store.close()


def test_claims_pass_over_live_leases_and_take_the_next(store_url: str) -> None:
    base = make_job_id("claim", None)
    ids = [base.partition(i, 3) for i in range(3)]
    me, other = Owner.current(), Owner("another-host", 4242, 1)
    store = open_store(store_url)
    try:
        held = store.acquire_lease(ids[0], other, 30.0)
        first = store.claim_lease(ids, me, 30.0)
        assert first is not None
        assert first.job == ids[1].key
        second = store.claim_lease([ids[0], ids[2]], me, 30.0)
        assert second is not None
        assert second.job == ids[2].key
        assert store.claim_lease([ids[0]], me, 30.0) is None  # another host's, still live
        assert held.token >= 1
    finally:
        store.close()


def test_claims_pass_over_completed_partitions(store_url: str) -> None:
    """A claim takes no partition that has completed (the worker then asks which have
    completed only when a claim finds none), but one with items put back by retry."""
    base = make_job_id("claim-done", None)
    ids = [base.partition(i, 3) for i in range(3)]
    me = Owner.current()
    store = open_store(store_url)
    try:
        for part in ids[:2]:
            lease = store.acquire_lease(part, me, 30.0)
            run = RunRecord(uuid.uuid4().hex, part.key, "running", me.host, me.pid, time.time())
            store.begin_run(lease, run)
            run.status, run.ended_at, run.processed = "completed", time.time(), 1
            store.end_run(lease, run, completed=True, summary={"status": "completed"})
        assert store.completed_among([part.key for part in ids]) == {ids[0].key, ids[1].key}
        claimed = store.claim_lease(ids, me, 30.0)
        assert claimed is not None
        assert claimed.job == ids[2].key
        assert store.claim_lease(ids[:2], me, 30.0) is None
    finally:
        store.close()


def test_concurrent_claims_never_take_one_partition_twice(postgresql_url: str) -> None:
    """SKIP LOCKED: eight claimers at once, one partition each, none taken twice."""
    import threading

    base = make_job_id("race", None)
    ids = [base.partition(i, 8) for i in range(8)]
    taken: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def claim(n: int) -> None:
        store = open_store(postgresql_url)
        try:
            barrier.wait()
            owner = Owner(f"host-{n}", 1000 + n, 1)
            lease = store.claim_lease(ids, owner, 30.0)
            deadline = time.monotonic() + 30
            while lease is None:  # the others' rows were locked at that instant: look again
                assert time.monotonic() < deadline, "no partition could be claimed"
                lease = store.claim_lease(ids, owner, 30.0)
            taken.append(lease.job)
        except BaseException as exc:
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert sorted(taken) == sorted(i.key for i in ids)
