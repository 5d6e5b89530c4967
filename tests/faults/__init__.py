"""The fault suite: every promise of the README, attacked by killing real processes.

- ``test_random_kills.py``: SIGKILL at random moments, in every guarantee, on every store,
  with and without workers; every item checked against what the handler's own log says.
- ``test_fault_points.py``: kills at the worst moments, through ``MIDWAY_FAULTS`` (inside
  and right after the checkpoint's commit, between the handler and its record, right after
  a lease takeover, half-way through a migration, just before the completion commits).
- ``test_disk.py``: a full disk (injected ENOSPC, and a real tmpfs), a read-only store, a
  store truncated or overwritten, a half-written JSON checkpoint: a clear error, exit 3,
  and the last good checkpoint usable once the disk is fixed.
- ``test_hostile_input.py``: hypothesis throws malformed files at the sources and garbage
  at the stores' readers: a completed run or a ``MidwayError``, nothing else, never a hang.

Tests not marked ``slow`` are the short version (part of ``make test``); ``make faults``
runs the long one and prints the summary table (``summary.py``).

Stores: the scenarios take the stores they run on from ``stores.py``. A PostgreSQL store
joins there (its URL, whether it has transactions for exactly-once, and which injection
points it reaches); its own scenarios (a connection dropped mid-commit, a server restart)
belong in a ``test_postgres.py`` beside these files.
"""
