"""``midway report JOB``: the handoff document, in Markdown or as one self-contained HTML page.

Everything comes from the store: where the job stands, its throughput over time (from the
checkpoint history), the most common errors with example keys, the in-doubt items and how to
resolve them, the runs, the operators' notes, and the command that resumes the work. The
HTML page has its chart as inline SVG and fetches nothing.
"""

from __future__ import annotations

import html
import itertools
import json
import shlex
import time
from collections import Counter
from typing import cast

from midway._model.jsonutil import JSONValue
from midway._model.ledger import FAILED, IN_DOUBT, RETRY, SKIPPED, ItemRecord
from midway._model.owner import describe_age, iso
from midway._model.printable import printable
from midway.stores import Store
from midway.views import waiting, whole
from midway.views.models import (
    ErrorCount,
    ItemView,
    NoteView,
    Report,
    RunView,
    StatusRow,
    ThroughputPoint,
)
from midway.views.whole import Target

BAR_WIDTH = 30
EXAMPLE_KEYS = 3
CHART_W, CHART_H, PAD = 640, 200, 36


def gather(store: Store, target: Target) -> Report:
    """All the report says (``to_json()``: what ``--format json`` prints); a distributed
    job's from every partition."""
    detail = whole.detail(store, target)
    items = whole.items_of(store, target, (FAILED, SKIPPED, IN_DOUBT, RETRY))
    return Report.extending(
        detail,
        errors=common_errors(items),
        in_doubt_items=[cast(ItemView, i.to_json()) for i in items if i.status == IN_DOUBT],
        throughput=job_throughput(store, target),
        generated_at=iso(time.time()),
        parts=whole.part_rows(store, target, time.time()) if target.distributed else [],
    )


def common_errors(items: list[ItemRecord]) -> list[ErrorCount]:
    """Error types by how often they occur, with a few example keys each."""
    counts: Counter[str] = Counter()
    examples: dict[str, list[JSONValue]] = {}
    messages: dict[str, str] = {}
    for item in items:
        if item.status not in (FAILED, SKIPPED, RETRY):
            continue
        kind = item.error_type or item.status
        counts[kind] += 1
        examples.setdefault(kind, [])
        if len(examples[kind]) < EXAMPLE_KEYS:
            examples[kind].append(item.key)
        messages.setdefault(kind, item.error or "")
    return [
        ErrorCount(error=kind, count=count, example_keys=examples[kind], example=messages[kind])
        for kind, count in counts.most_common()
    ]


Progress = tuple[float, str, int]
"""A moment of a run: when, which run, how many items the job had done."""


def job_throughput(store: Store, target: Target) -> list[ThroughputPoint]:
    """The job's throughput over time: from its history, and (for a job that is not
    distributed) each run's start and end, so that a short run, whose checkpoints were too
    close together to be sampled, still shows its first and last."""
    moments = [(p.at, p.run_id, p.counters.processed) for p in whole.history_of(store, target)]
    if target.record is not None:
        for run in store.list_runs(target.key, limit=20):
            moments.append((run.started_at, run.run_id, run.start_processed))
            if run.ended_at is not None and run.processed is not None:
                moments.append((run.ended_at, run.run_id, run.processed))
    return throughput(sorted(moments))


def throughput(moments: list[Progress]) -> list[ThroughputPoint]:
    """Items per second between consecutive moments of the same run; the first interval
    of a run also gives its start a point (two moments draw a line)."""
    points: list[ThroughputPoint] = []
    for (t0, run0, done0), (t1, run1, done1) in itertools.pairwise(moments):
        if run0 != run1 or t1 <= t0:
            continue
        rate = max(done1 - done0, 0) / (t1 - t0)
        if not points or points[-1]["at"] != t0:
            points.append(ThroughputPoint(at=t0, processed=done0, rate=rate))
        points.append(ThroughputPoint(at=t1, processed=done1, rate=rate))
    return points


def _bar(done: int, total: int | None) -> str:
    if not total:
        return ""
    filled = round(BAR_WIDTH * min(done / total, 1.0))
    return "█" * filled + "░" * (BAR_WIDTH - filled) + f" {100 * done / total:.1f}%"


def _counts(row: StatusRow) -> list[tuple[str, int]]:
    """The table of where the job stands, before ``remaining``."""
    return [
        ("done", row.succeeded),
        ("failed", row.failed),
        ("skipped", row.skipped),
        ("in doubt", row.in_doubt),
        *([("waiting", row.waiting)] if row.waiting else []),
    ]


def _eta(row: StatusRow) -> str:
    if row.eta_seconds is not None:
        return describe_age(row.eta_seconds).replace(" ago", "")
    remaining, rate = row.remaining, row.rate_per_second
    if remaining and rate:
        return "about " + describe_age(remaining / rate).replace(" ago", "") + " of work"
    return "unknown"


def markdown(report: Report) -> str:
    quoted = shlex.quote(report.job)
    lines = [
        f"# Handoff: job `{report.job}`",
        "",
        f"Generated {report.generated_at}. Status: **{report.status}**.",
        *_section("Where it stands", _md_standing(report)),
        *(_section("Partitions", _md_parts(report.parts)) if report.parts else []),
        *_section("How to carry on", _md_carry_on(report, quoted)),
        *_section("Throughput over time", _md_throughput(report.throughput)),
        *_section("Most common errors", _md_errors(report.errors, quoted)),
        *_section("In doubt", _md_in_doubt(report.in_doubt_items, quoted)),
        *_section("Waiting for a decision", waiting.markdown_section(report.waiting_items, quoted)),
        *_section("Runs", _md_runs(report.runs)),
        *_section("Notes", _md_notes(report.notes, quoted)),
        "",
    ]
    # read in terminals (cat, less -R): the controls of keys, errors and notes shown escaped
    return printable("\n".join(lines), lines=True)


def _section(title: str, body: list[str]) -> list[str]:
    return ["", f"## {title}", "", *body]


def _md_standing(report: Report) -> list[str]:
    lines = ["| | items |", "|---|---:|"]
    for label, count in _counts(report):
        lines.append(f"| {label} | {count:,} |")
    remaining = report.remaining
    lines.append(f"| remaining | {remaining:,} |" if remaining is not None else "| remaining | ? |")
    if report.total:
        lines.append(f"| **total** | {report.total:,} |")
    lines += ["", "```", _bar(report.processed, report.total) or "(total unknown)", "```"]
    rate = report.rate_per_second
    return [
        *lines,
        "",
        f"- Rate of the last run: {rate:,.1f} items/s" if rate else "- Rate: not measured yet",
        f"- ETA: {_eta(report)}",
        f"- Params: `{json.dumps(report.params, ensure_ascii=False)}`",
        f"- Position: `{json.dumps(report.position, ensure_ascii=False)}`",
        f"- Owner now: {report.owner or 'nobody'}",
    ]


def _md_parts(parts: list[StatusRow]) -> list[str]:
    lines = ["| partition | status | items | failed | worker |", "|---|---|---:|---:|---|"]
    for part in parts:
        items = f"{part.processed:,}" + (f" of {part.total:,}" if part.total else "")
        lines.append(
            f"| `{part.job}` | {part.status} | {items} | {part.failed:,} | {part.owner or ''} |"
        )
    return lines


def _md_carry_on(report: Report, quoted: str) -> list[str]:
    if report.checkpoint is None:
        lines = ["The job has no checkpoint: its last run completed (or it never ran)."]
    else:
        lines = [
            "The job has a checkpoint; running the same command again resumes it:",
            "",
            "```sh",
            report.resume_command or "(the command was not recorded: run the job's script again)",
            "```",
        ]
        if report.resume_note:
            lines += ["", f"Note: {report.resume_note}."]
    if report.failed:
        lines += ["", retry_hint(report, quoted)]
    return lines


def retry_hint(report: Report, quoted: str) -> str:
    """How to handle the failed items again (of a completed job: only those)."""
    again = report.resume_command or "the job's command"
    only = " (only they are handled: the job had completed)" if report.checkpoint is None else ""
    return (
        f"{report.failed:,} item(s) failed: put them back with `midway retry {quoted}`, then "
        f"run `{again}` again{only}."
    )


def _md_throughput(points: list[ThroughputPoint]) -> list[str]:
    if not points:
        return ["Not enough checkpoints yet to draw it."]
    lines = ["| time | items done | items/s |", "|---|---:|---:|"]
    step = max(1, len(points) // 20)
    for point in points[::step]:
        lines.append(f"| {iso(point['at'])} | {point['processed']:,} | {point['rate']:,.1f} |")
    return lines


def _md_errors(errors: list[ErrorCount], quoted: str) -> list[str]:
    if not errors:
        return ["None."]
    lines = ["| error | items | example keys | example |", "|---|---:|---|---|"]
    for error in errors:
        keys = ", ".join(f"`{json.dumps(k)}`" for k in error["example_keys"])
        lines.append(
            f"| {error['error']} | {error['count']:,} | {keys} | {_cell(error['example'])} |"
        )
    return [*lines, "", f"All of them: `midway failed {quoted} --export failed.jsonl`."]


def _md_in_doubt(items: list[ItemView], quoted: str) -> list[str]:
    if not items:
        return ["None."]
    lines = [
        "A crash came while these items' handlers ran: midway cannot know whether they "
        "took effect. Check (the mail server's log, the payment provider), then:",
        "",
        "```sh",
        f"midway resolve {quoted} KEY... --done    # they took effect",
        f"midway resolve {quoted} KEY... --retry   # they did not: handle them again",
        "```",
        "",
        "| key | since | note |",
        "|---|---|---|",
    ]
    for item in items:
        lines.append(
            f"| `{json.dumps(item['key'])}` | {item['updated_at']} | {_cell(item['error'])} |"
        )
    return lines


def _md_runs(runs: list[RunView]) -> list[str]:
    lines = ["| started | ended | status | host:pid | items | note |", "|---|---|---|---|---|---|"]
    for run in runs:
        items = (
            "" if run["processed"] is None else f"{run['start_processed']:,} → {run['processed']:,}"
        )
        lines.append(
            f"| {run['started_at']} | {run['ended_at'] or ''} | {run['status']} | "
            f"{run['host']}:{run['pid']} | {items} | {_cell(run['message'])} |"
        )
    return lines


def _md_notes(notes: list[NoteView], quoted: str) -> list[str]:
    if not notes:
        return [f'None yet. Add one with `midway note {quoted} "what you decided and why"`.']
    return [f"- {note['at']}, {note['author']}: {note['text']}" for note in notes]


def _cell(text: str | None) -> str:
    value = (text or "").replace("|", "\\|").replace("\n", " ")
    return value if len(value) <= 120 else value[:119] + "…"


def svg_chart(points: list[ThroughputPoint]) -> str:
    """Items per second over time, as an inline SVG (no script, no fetches)."""
    if len(points) < 2:
        return "<p>Not enough checkpoints yet to draw it.</p>"
    t0, t1 = points[0]["at"], points[-1]["at"]
    top = max(p["rate"] for p in points) or 1.0
    span = (t1 - t0) or 1.0
    w, h = CHART_W - 2 * PAD, CHART_H - 2 * PAD

    def xy(p: ThroughputPoint) -> str:
        x = PAD + w * (p["at"] - t0) / span
        y = PAD + h * (1 - p["rate"] / top)
        return f"{x:.1f},{y:.1f}"

    path = " ".join(xy(p) for p in points)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {CHART_W} {CHART_H}" '
        f'role="img" aria-label="items per second over time" class="chart">'
        f'<line x1="{PAD}" y1="{PAD + h}" x2="{PAD + w}" y2="{PAD + h}" stroke="#888"/>'
        f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{PAD + h}" stroke="#888"/>'
        f'<polyline fill="none" stroke="#2563eb" stroke-width="2" points="{path}"/>'
        f'<text x="{PAD}" y="{PAD - 8}" font-size="12">{top:,.0f} items/s</text>'
        f'<text x="{PAD}" y="{CHART_H - 8}" font-size="12">{html.escape(iso(t0) or "")}</text>'
        f'<text x="{PAD + w}" y="{CHART_H - 8}" font-size="12" text-anchor="end">'
        f"{html.escape(iso(t1) or '')}</text></svg>"
    )


STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem;
  color: #1f2937; }
table { border-collapse: collapse; margin: .5rem 0; }
th, td { border: 1px solid #d1d5db; padding: .25rem .6rem; text-align: left; }
td.n { text-align: right; }
code, pre { background: #f3f4f6; padding: .1rem .3rem; }
pre { padding: .6rem; overflow-x: auto; }
.bar { background: #e5e7eb; height: 1rem; width: 100%; max-width: 30rem; }
.bar > span { display: block; height: 100%; background: #16a34a; }
.chart { width: 100%; max-width: 40rem; }
"""


def html_page(report: Report) -> str:
    """The same content as :func:`markdown`, as one page with its chart inline."""
    e = html.escape
    job = report.job
    total = report.total
    share = min(report.processed / total, 1.0) if total else 0.0
    rows = "".join(_tr(label, f"{count:,}", numeric=1) for label, count in _counts(report))
    remaining = report.remaining
    rows += _tr("remaining", "?" if remaining is None else f"{remaining:,}", numeric=1)
    errors, doubts, runs = _html_errors(report), _html_in_doubt(report), _html_runs(report)
    notes = "".join(
        f"<li>{e(n['at'] or '')}, {e(n['author'])}: {e(n['text'])}</li>" for n in report.notes
    )
    carry_on = _html_carry_on(report)
    quoted = e(shlex.quote(job))
    resolve_hint = (
        f"<p>Check whether they took effect, then <code>midway resolve {quoted} KEY... "
        "--done</code> (or <code>--retry</code>).</p>"
    )
    return _page(f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Handoff: {e(job)}</title><style>{STYLE}</style></head>
<body>
<h1>Handoff: job <code>{e(job)}</code></h1>
<p>Generated {e(report.generated_at or "")}. Status: <strong>{e(report.status)}</strong>.</p>
<h2>Where it stands</h2>
<table>{rows}</table>
<div class="bar" role="progressbar" aria-valuenow="{100 * share:.1f}" aria-valuemin="0"
 aria-valuemax="100"><span style="width: {100 * share:.1f}%"></span></div>
<p>{report.processed:,} of {f"{total:,}" if total else "?"} items; ETA: {e(_eta(report))}.</p>
{_html_parts(report)}
<h2>How to carry on</h2>{carry_on}
<h2>Throughput over time</h2>{svg_chart(report.throughput)}
<h2>Most common errors</h2>
{_table(("error", "items", "example keys", "example"), errors)}
<h2>In doubt</h2>
{resolve_hint if doubts else ""}{_table(("key", "since", "note"), doubts)}
<h2>Waiting for a decision</h2>
{_table(("key", "asked", "question", "decision"), _html_waiting(report))}
<h2>Runs</h2>
<table><tr><th>started</th><th>ended</th><th>status</th><th>host:pid</th><th>note</th></tr>{runs}</table>
<h2>Notes</h2>
{f"<ul>{notes}</ul>" if notes else "<p>None yet.</p>"}
</body></html>
""")


def _html_errors(report: Report) -> str:
    e = html.escape
    return "".join(
        _tr(
            e(x["error"]),
            f"{x['count']:,}",
            e(", ".join(json.dumps(k) for k in x["example_keys"])),
            e(x["example"]),
            numeric=1,
        )
        for x in report.errors
    )


def _html_parts(report: Report) -> str:
    e = html.escape
    rows = "".join(
        _tr(
            f"<code>{e(p.job)}</code>",
            e(p.status),
            f"{p.processed:,}" + (f" of {p.total:,}" if p.total else ""),
            f"{p.failed:,}",
            e(p.owner or ""),
        )
        for p in report.parts
    )
    if not rows:
        return ""
    return "<h2>Partitions</h2>" + _table(
        ("partition", "status", "items", "failed", "worker"), rows
    )


def _html_in_doubt(report: Report) -> str:
    e = html.escape
    return "".join(
        _tr(
            f"<code>{e(json.dumps(i['key']))}</code>", e(i["updated_at"] or ""), e(i["error"] or "")
        )
        for i in report.in_doubt_items
    )


def _html_waiting(report: Report) -> str:
    return "".join(_tr(*cells) for cells in waiting.html_rows(report.waiting_items))


def _html_runs(report: Report) -> str:
    e = html.escape
    return "".join(
        _tr(
            e(r["started_at"] or ""),
            e(r["ended_at"] or ""),
            e(r["status"]),
            f"{e(r['host'])}:{r['pid']}",
            e(r["message"] or ""),
        )
        for r in report.runs
    )


def _html_carry_on(report: Report) -> str:
    e = html.escape
    retry = f"<p>{code_spans(e(retry_hint(report, shlex.quote(report.job))))}</p>"
    retry = retry if report.failed else ""
    if report.checkpoint is None:
        return "<p>The job has no checkpoint: its last run completed (or it never ran).</p>" + retry
    return (
        "<p>Running the same command again resumes it:</p>"
        f"<pre>{e(report.resume_command or '(not recorded)')}</pre>"
        + (f"<p>Note: {e(report.resume_note)}.</p>" if report.resume_note else "")
        + retry
    )


def code_spans(text: str) -> str:
    """`text in backquotes` (HTML-escaped already) as <code>."""
    parts = text.split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def _page(text: str) -> str:
    """The HTML page with the controls in the store's text shown escaped, as in Markdown."""
    return printable(text, lines=True)


def _tr(*cells: str, numeric: int | None = None) -> str:
    """A table row of ``cells`` (HTML: their text escaped already); the cell at index
    ``numeric`` aligned right."""
    tds = (
        f"<td class=n>{c}</td>" if i == numeric else f"<td>{c}</td>" for i, c in enumerate(cells)
    )
    return f"<tr>{''.join(tds)}</tr>"


def _table(headers: tuple[str, ...], rows: str) -> str:
    if not rows:
        return "<p>None.</p>"
    head = "".join(f"<th>{h}</th>" for h in headers)
    return f"<table><tr>{head}</tr>{rows}</table>"
