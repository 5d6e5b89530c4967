"""``midway report --all``: one status document for every job in a store.

Weekly status reports are checkpoints for people. This one says what finished, what is
running and when it should end, what failed or needs a person (with the commands that
act on it), the notes left, and each job's throughput: in Markdown, as one self-contained
HTML page, or as JSON. ``since`` limits what finished and the notes to a recent window;
whatever runs or needs a person is always there.
"""

from __future__ import annotations

import html
import json
import re
import shlex
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from midway._model.owner import describe_age
from midway._model.printable import printable
from midway._model.redaction import redact_url
from midway.errors import ConfigError
from midway.ops.models import JobStatus
from midway.ops.status import all_statuses
from midway.stores import Store
from midway.views.report import STYLE, code_spans
from midway.views.waiting import waiting_decisions

FORMATS = ("md", "html", "json")
UNITS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
SINCE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([wdhms])\s*$")
FINISHED = ("completed", "completed_with_failures")


def parse_since(text: str | None) -> timedelta | None:
    """``7d``, ``12h``, ``30m``, ``2w``, ``90s`` as a window (None: no limit)."""
    if text is None:
        return None
    match = SINCE.match(text)
    if not match:
        raise ConfigError(
            f"--since {text!r} is not a duration: give a number and a unit, e.g. 7d, 12h, 30m, 2w"
        )
    return timedelta(seconds=float(match[1]) * UNITS[match[2]])


@dataclass(frozen=True)
class Attention:
    """A job that needs a person: why, and the commands that act on it."""

    job: str
    why: str
    commands: list[str]


def needs_a_person(job: JobStatus) -> Attention | None:
    quoted = shlex.quote(job.job)
    why: list[str] = []
    commands: list[str] = []
    if job.status in ("failed", "crashed", "stopped"):
        why.append(f"its last run {job.status}")
        resume = next((run.command for run in job.runs if run.command), None)
        commands.append(resume or f"run the job's script again (midway show {quoted})")
    if job.failed:
        why.append(f"{job.failed:,} item(s) failed")
        commands.append(f"midway retry {quoted}")
    if job.in_doubt:
        why.append(f"{job.in_doubt:,} item(s) in doubt")
        commands.append(f"midway resolve {quoted} KEY... --done   # or --retry, after checking")
    if not why:
        return None
    return Attention(job.job, "; ".join(why), commands)


def throughput(job: JobStatus, since: datetime | None) -> tuple[int, float, float | None]:
    """Items handled by the job's runs (in the window), the seconds they ran, items/s."""
    items, seconds = 0, 0.0
    for run in job.runs:
        if run.started_at is None or run.ended_at is None or run.processed is None:
            continue
        if since is not None and run.ended_at < since:
            continue
        items += max(run.processed - run.start_processed, 0)
        seconds += max((run.ended_at - run.started_at).total_seconds(), 0.0)
    return items, seconds, (items / seconds if seconds > 0 else None)


def gather(store: Store, window: timedelta | None) -> dict[str, Any]:
    """Everything the document says, as JSON (``--format json``)."""
    now = datetime.now(UTC)
    since = None if window is None else now - window
    jobs = all_statuses(store)

    def recent(when: datetime | None) -> bool:
        return since is None or (when is not None and when >= since)

    attention = [a for a in map(needs_a_person, jobs) if a is not None]
    return {
        "store": redact_url(store.url),
        "generated_at": _iso(now),
        "since": None if since is None else _iso(since),
        "finished": [_brief(j) for j in jobs if j.status in FINISHED and recent(j.updated_at)],
        "running": [_brief(j) for j in jobs if j.status == "running"],
        "attention": [a.__dict__ for a in attention],
        "decisions": waiting_decisions(store),
        "notes": [
            {"job": j.job, **note.to_json()} for j in jobs for note in j.notes if recent(note.at)
        ],
        "throughput": [_rate(j, since) for j in jobs],
        "jobs": [j.to_json() for j in jobs],
    }


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


BRIEF = ("job", "status", "processed", "total", "failed", "rate", "eta_seconds")


def _brief(job: JobStatus) -> dict[str, Any]:
    data = {name: getattr(job, name) for name in BRIEF}
    data["updated_at"] = None if job.updated_at is None else _iso(job.updated_at)
    return data


def _rate(job: JobStatus, since: datetime | None) -> dict[str, Any]:
    items, seconds, rate = throughput(job, since)
    return {"job": job.job, "items": items, "seconds": round(seconds, 1), "rate": rate}


def render(store: Store, window: timedelta | None, format: str = "md") -> str:
    """The document in ``format``: ``md``, ``html`` or ``json``."""
    if format not in FORMATS:
        raise ConfigError(f"format {format!r}: choose 'md', 'html' or 'json'")
    data = gather(store, window)
    if format == "json":
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    text = markdown(data)
    return printable(text if format == "md" else as_html(text), lines=True)


def markdown(data: dict[str, Any]) -> str:
    window = f" since {data['since']}" if data["since"] else ""
    lines = [
        f"# Status of the jobs in {data['store']}",
        "",
        f"Generated {data['generated_at']}: {len(data['jobs'])} job(s).",
        *_section(f"Finished{window}", _finished(data["finished"])),
        *_section("Running", _running(data["running"])),
        *_section("Needs a person", _attention(data["attention"])),
        *_section("Decisions waiting, oldest first", _decisions(data["decisions"])),
        *_section(f"Notes{window}", _notes(data["notes"])),
        *_section(f"Throughput per job{window}", _rates(data["throughput"])),
        "",
    ]
    return "\n".join(lines)


def _section(title: str, body: list[str]) -> list[str]:
    return ["", f"## {title}", "", *(body or ["None."])]


def _items(job: dict[str, Any]) -> str:
    total = f" of {job['total']:,}" if job["total"] else ""
    return f"{job['processed']:,}{total}"


def _table(head: str, rows: list[str]) -> list[str]:
    """A Markdown table (none without rows): numbers, after ``|``, align right."""
    names = head.strip("| ").split(" | ")
    align = "|" + "|".join("---:" if n in NUMERIC else "---" for n in names) + "|"
    return [head, align, *rows] if rows else []


NUMERIC = {"items", "failed", "rate", "run time", "items/s"}


def _finished(jobs: list[dict[str, Any]]) -> list[str]:
    return _table(
        "| job | status | items | failed | finished |",
        [
            f"| `{j['job']}` | {j['status']} | {_items(j)} | {j['failed']:,} | "
            f"{j['updated_at'] or ''} |"
            for j in jobs
        ],
    )


def _running(jobs: list[dict[str, Any]]) -> list[str]:
    def row(j: dict[str, Any]) -> str:
        rate = f"{j['rate']:,.1f}/s" if j["rate"] else ""
        eta = describe_age(j["eta_seconds"]).replace(" ago", "") if j["eta_seconds"] else "?"
        return f"| `{j['job']}` | {_items(j)} | {rate} | {eta} |"

    return _table("| job | items | rate | ETA |", [row(j) for j in jobs])


def _attention(found: list[dict[str, Any]]) -> list[str]:
    lines: list[str] = []
    for a in found:
        lines += [f"- `{a['job']}`: {a['why']}", "", "  ```sh"]
        lines += [f"  {command}" for command in a["commands"]]
        lines += ["  ```", ""]
    return lines


def _decisions(found: list[dict[str, Any]]) -> list[str]:
    """The questions ``ctx.approval`` asked across jobs, each with the commands that answer it."""
    lines: list[str] = []
    for d in found:
        key = json.dumps(d["key"], ensure_ascii=False)
        lines += [f"- `{d['job']}` {key}, asked {d['asked_at'] or '?'}: {d['question']}", ""]
        lines += ["  ```sh", f"  {d['approve']}", f"  {d['reject']}", "  ```", ""]
    return lines


def _notes(notes: list[dict[str, Any]]) -> list[str]:
    return [f"- `{n['job']}`, {n['at']}, {n['author']}: {n['text']}" for n in notes]


def _rates(rates: list[dict[str, Any]]) -> list[str]:
    def row(r: dict[str, Any]) -> str:
        rate = f"{r['rate']:,.1f}" if r["rate"] else ""
        return f"| `{r['job']}` | {r['items']:,} | {r['seconds']:,.1f} s | {rate} |"

    return _table("| job | items | run time | items/s |", [row(r) for r in rates])


def as_html(markdown_text: str) -> str:
    """The Markdown above as one self-contained page (its few constructs: headings, tables,
    lists, code blocks and spans)."""
    out: list[str] = []
    in_code = in_table = False
    for line in markdown_text.splitlines():
        text = line.strip()
        if text.startswith("```"):
            out.append("</pre>" if in_code else "<pre>")
            in_code = not in_code
        elif in_code:
            out.append(html.escape(text))
        elif text.startswith("|"):
            cells = [c.strip() for c in text.strip("|").split(" | ")]
            if set(text) <= set("|-: "):
                continue
            tag = "td" if in_table else "th"
            out.append(("" if in_table else "<table>") + _row(cells, tag))
            in_table = True
        else:
            if in_table:
                out.append("</table>")
                in_table = False
            out.append(_line(text))
    if in_table:
        out.append("</table>")
    title = html.escape(markdown_text.splitlines()[0].lstrip("# "))
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title><style>{STYLE}</style></head><body>\n"
        + "\n".join(out)
        + "\n</body></html>\n"
    )


def _row(cells: list[str], tag: str) -> str:
    return "<tr>" + "".join(f"<{tag}>{_spans(c)}</{tag}>" for c in cells) + "</tr>"


def _spans(text: str) -> str:
    return code_spans(html.escape(text))


def _line(text: str) -> str:
    if text.startswith("## "):
        return f"<h2>{_spans(text[3:])}</h2>"
    if text.startswith("# "):
        return f"<h1>{_spans(text[2:])}</h1>"
    if text.startswith("- "):
        return f"<p>• {_spans(text[2:])}</p>"
    return f"<p>{_spans(text)}</p>" if text else ""
