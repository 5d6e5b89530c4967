"""Text fit for a terminal: what the store holds, shown without letting it act.

Its own module, not the console's: ``midway status`` escapes every cell with it, and the
console loads ``logging``, which that command has no use for.
"""

from __future__ import annotations

import re

# What a terminal may act on instead of showing: C0 and C1 controls, DEL, and the Unicode
# marks that reorder or break lines (bidi overrides, line / paragraph separators).
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
_CONTROLS_BUT_LINES = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]"
)


_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(match: re.Match[str]) -> str:
    char = match.group(0)
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, *, lines: bool = False) -> str:
    """``text`` fit for a terminal: each control character shown escaped (ESC as ``\\x1b``,
    CSI as ``\\x9b``), so that text from the store (keys, errors, notes, a command's stderr)
    cannot move the cursor, clear the screen, hide text or set the window title. ``lines``
    keeps newlines and tabs (multi-line text such as a report). JSON output keeps the exact text.
    """
    return (_CONTROLS_BUT_LINES if lines else _CONTROLS).sub(_escaped, text)
