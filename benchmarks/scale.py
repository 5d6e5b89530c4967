"""Memory as the item count grows: the peak RSS of a fresh process, which must stay flat.

midway keeps no set of done keys and reads a source in chunks, so a run over 10,000,000
items should need what a run over 100,000 needs. Each figure is ru_maxrss of its own
subprocess (midway_child.py), next to a bare loop over the same generator in a process that
imported midway too (the floor: the interpreter and its modules).
"""

from __future__ import annotations

from typing import Any

from children import Tool
from measure import Grid, Session, Unavailable, fmt_rate, progress

GROWTH_BAR_MB = 10.0  # the largest run may use at most this much more than the smallest


def measure(session: Session, tool: Tool, sizes: tuple[int, ...]) -> Grid:
    runs: list[tuple[str, int, dict[str, Any] | Unavailable]] = []
    plan = [("a bare loop over the generator (the floor)", sizes[-1], True)]
    plan += [("Job.run over a generator, every=1000", n, False) for n in sizes]
    for label, n, plain in plan:
        progress(f"memory: {label}, {n:,} items")
        with session.folder() as folder:
            try:
                extra = ("--plain",) if plain else ()
                report: dict[str, Any] | Unavailable = tool.run(
                    "memory", folder / "state.db", n, *extra
                )
            except Unavailable as exc:
                report = exc
        runs.append((label, n, report))

    floor = runs[0][2]
    floor_mb = floor["peak_rss_kb"] / 1024 if isinstance(floor, dict) else None
    cells: list[tuple[str, ...]] = []
    data: dict[str, Any] = {"runs": []}
    peaks: list[float] = []
    for label, n, report in runs:
        if isinstance(report, Unavailable):
            cells.append((label, f"{n:,}", report.short, "", ""))
            continue
        mb = report["peak_rss_kb"] / 1024
        if report is not floor:
            peaks.append(mb)
        above = f"{mb - floor_mb:+.1f} MB" if floor_mb is not None and report is not floor else ""
        rate = report["items"] / report["seconds"] if report["seconds"] else 0
        cells.append((label, f"{n:,}", f"{mb:.1f} MB", above, fmt_rate(rate)))
        data["runs"].append({"label": label, "items": n, **report})
    failed: list[str] = []
    notes = [
        "Peak resident memory of a fresh process per run (VmHWM: ru_maxrss would carry over "
        "the benchmark's own peak through fork); a durable SQLite store in a temporary folder."
    ]
    if len(peaks) >= 2:
        growth = peaks[-1] - peaks[0]
        verdict = "pass" if growth <= GROWTH_BAR_MB else "FAIL"
        notes.append(
            f"Growth from {sizes[0]:,} to {sizes[-1]:,} items: {growth:+.1f} MB "
            f"(bar: ≤ {GROWTH_BAR_MB:g} MB: {verdict})."
        )
        data["growth_mb"] = growth
        if verdict == "FAIL":
            failed.append(f"memory grew {growth:.1f} MB from {sizes[0]:,} to {sizes[-1]:,} items")
    title = f"5. Scale: peak memory of a fresh process, {sizes[0]:,} to {sizes[-1]:,} items"
    headers = ("run", "items", "peak RSS", "above the floor", "items/s")
    return Grid(title, headers, cells, headers[1:], notes, data, failed)
