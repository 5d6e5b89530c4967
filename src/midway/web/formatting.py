"""How the dashboard writes numbers and times (static/dashboard.js mirrors these)."""

from __future__ import annotations

import json
import re
from typing import Any

from markupsafe import Markup, escape


def count(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


def duration(seconds: float | None) -> str:
    """``45 s``, ``12 min``, ``3.5 h``, ``2.0 days``; empty when unknown."""
    if seconds is None:
        return ""
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def rate(per_second: float | None) -> str:
    if not per_second:
        return ""
    return f"{per_second:,.1f}/s" if per_second < 10 else f"{per_second:,.0f}/s"


def percent(processed: int, total: int | None) -> str:
    if not total:
        return ""
    return f"{100 * processed / total:.0f}%"


def progress_text(row: dict[str, Any]) -> str:
    """``1,234 / 10,000 (12%)``, or ``1,234`` when the source's size is unknown."""
    text = count(row["processed"])
    if row["total"]:
        text += f" / {count(row['total'])} ({percent(row['processed'], row['total'])})"
    return text


def as_json(value: Any, limit: int = 4000) -> str:
    """Pretty JSON, clipped to ``limit`` characters."""
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def code_spans(text: str) -> Markup:
    """Escaped text whose `backquoted` parts (commands) show as code."""
    return Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", str(escape(text))))
