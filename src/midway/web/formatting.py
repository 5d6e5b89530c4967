"""How the dashboard writes numbers and times (static/dashboard.js mirrors these)."""

from __future__ import annotations

import json
import re
from typing import Any

from markupsafe import Markup, escape

from midway._model.owner import describe_age


def count(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


def duration(seconds: float | None) -> str:
    """``45 s``, ``12 min``, ``3.5 h``, ``2.0 days``: ``describe_age``'s words without "ago"
    (and ``0 s`` for under a second); empty when unknown."""
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{max(0.0, seconds):.0f} s"
    return describe_age(seconds).removesuffix(" ago")


def rate(per_second: float | None) -> str:
    if not per_second:
        return ""
    return f"{per_second:,.1f}/s" if per_second < 10 else f"{per_second:,.0f}/s"


def percent(processed: int, total: int | None) -> str:
    if not total:
        return ""
    return f"{100 * processed / total:.0f}%"


def progress_text(processed: int, total: int | None) -> str:
    """``1,234 / 10,000 (12%)``, or ``1,234`` when the source's size is unknown."""
    text = count(processed)
    if total:
        text += f" / {count(total)} ({percent(processed, total)})"
    return text


def as_json(value: Any, limit: int = 4000) -> str:
    """Pretty JSON, clipped to ``limit`` characters."""
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def code_spans(text: str) -> Markup:
    """Escaped text whose `backquoted` parts (commands) show as code."""
    return Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", str(escape(text))))
