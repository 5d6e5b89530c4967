"""Passwords never leave midway: one place hides them in every URL, command line and message.

A store URL is shown on every surface (``midway status``, errors, the dashboard's header and
its banner) and the command line of each run is kept in the store (``midway show`` and the
report offer it to resume the work). Both pass through here first:

- ``scheme://user:PASSWORD@host`` keeps the user and shows ``***`` for the password;
- ``password=...`` (also ``sslpassword=``, ``PGPASSWORD=``) in a URL's query, in a libpq
  keyword/value string (``host=db password='x y'``) or anywhere in a command line, likewise.

What is kept in the store is already redacted, so nothing read back from it can show a password.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"

# scheme://  then the authority up to the first / ? # or white space; the password is what lies
# between the first ':' of the userinfo and its last '@' (as urlsplit reads it).
_AUTHORITY = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<authority>[^/?#\s]*)")
# password=VALUE: a quoted libpq value ('it''s' or 'it\'s'), or up to white space, & or #.
_PASSWORD_PAIR = re.compile(
    r"(?P<name>(?<![A-Za-z0-9_])(?:pg|ssl)?pass(?:word|wd)\s*=\s*)"
    r"(?P<value>'(?:\\.|''|[^'\\])*'?|[^\s&#;]+)",
    re.IGNORECASE,
)


# flags whose next argument is a password: ``--password VALUE``
_PASSWORD_FLAGS = frozenset({"--password", "--passwd"})


def _hide_userinfo(match: re.Match[str]) -> str:
    authority = match["authority"]
    userinfo, at, hosts = authority.rpartition("@")
    if not at or ":" not in userinfo:
        return match.group(0)
    user, _, password = userinfo.partition(":")
    return f"{match['scheme']}{user}{':' + MASK if password else ''}@{hosts}"


def _hide_pair(match: re.Match[str]) -> str:
    return match["name"] + MASK


def redact_text(text: str) -> str:
    """``text`` (a message, a command line) with every password in it replaced by ``***``."""
    if not text:
        return text
    text = _AUTHORITY.sub(_hide_userinfo, text)
    return _PASSWORD_PAIR.sub(_hide_pair, text)


def redact_url(url: str) -> str:
    """A store URL or libpq connection string fit to show: its password replaced by ``***``."""
    return redact_text(url)


def redact_argv(argv: Iterable[str]) -> list[str]:
    """A command line fit to keep: each argument redacted (``--store URL``, ``--store=URL``,
    a connection string, any ``user:password@`` URL, the value after ``--password``)."""
    kept: list[str] = []
    for arg in argv:
        after_flag = bool(kept) and kept[-1].lower() in _PASSWORD_FLAGS
        kept.append(MASK if after_flag else redact_text(arg))
    return kept


def resume_note(command: str | None) -> str | None:
    """What a resume command lacks once its password was hidden, and where to give it."""
    if not command or MASK not in command:
        return None
    return (
        f"{MASK} stands for a password midway does not keep: leave it out of the URL and give "
        "it in PGPASSWORD or ~/.pgpass, or set MIDWAY_STORE to the full URL and drop --store"
    )
