"""No password in anything midway shows or keeps; no terminal control sequence from the store
reaches a terminal raw.

The store password is planted in a PostgreSQL URL that really connects (a role of its own with
that password), then looked for in every output: the text and JSON of every command, reports
in every format, every dashboard page and API answer, the ``midway ui`` banner, the log, and a
dump of midway's own tables.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
import pytest
from click.testing import CliRunner

import midway
from midway._model.printable import printable
from midway._model.redaction import redact_argv, redact_text, redact_url, resume_note
from midway.cli.app import cli
from support.pg import PgServer, connect, database_of
from support.uiserver import serve

SECRET = "Sup3rSecretPw"
TOKEN = "a-token-for-the-redaction-tests"


# -- the one function ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        (
            "postgresql://mw:Sup3rSecretPw@/mwdb?host=/run/pg",
            "postgresql://mw:***@/mwdb?host=/run/pg",
        ),
        ("postgres://mw:p@ss:w@db:5432/x", "postgres://mw:***@db:5432/x"),
        (
            "postgresql://mw@db/x?sslmode=require&password=pw",
            "postgresql://mw@db/x?sslmode=require&password=***",
        ),
        ("postgresql://mw@db/x?PASSWORD=pw#f", "postgresql://mw@db/x?PASSWORD=***#f"),
        ("host=db password=pw dbname=x", "host=db password=*** dbname=x"),
        ("host=db password = 'two words' dbname=x", "host=db password = *** dbname=x"),
        ("host=db sslpassword=pw", "host=db sslpassword=***"),
        ("PGPASSWORD=pw psql", "PGPASSWORD=*** psql"),
        ("postgresql://mw@db/x", "postgresql://mw@db/x"),
        ("sqlite:///.midway/state.db", "sqlite:///.midway/state.db"),
        ("file:///srv/jobs", "file:///srv/jobs"),
        ("https://example.com/a?q=1", "https://example.com/a?q=1"),
    ],
)
def test_redact_url_hides_the_password_only(given: str, shown: str) -> None:
    assert redact_url(given) == shown
    assert redact_text(f"store {given} is down") == f"store {shown} is down"


def test_a_kept_command_line_has_no_password_and_says_where_it_comes_from() -> None:
    argv = [
        "midway", "each", "ej", "--store", f"postgresql://mw:{SECRET}@/db?host=/s",
        f"--store=postgresql://mw:{SECRET}@h/db", "--input", "in.txt", "--",
        "psql", f"host=h password={SECRET}", f"https://u:{SECRET}@example.com/x",
        "--password", SECRET, "--pass=2",
    ]  # fmt: skip
    kept = redact_argv(argv)
    assert SECRET not in " ".join(kept)
    assert kept[4] == "postgresql://mw:***@/db?host=/s"
    assert kept[5] == "--store=postgresql://mw:***@h/db"
    assert kept[-3:] == ["--password", "***", "--pass=2"]
    note = resume_note(" ".join(kept))
    assert note is not None
    assert all(word in note for word in ("PGPASSWORD", "~/.pgpass", "MIDWAY_STORE"))
    assert resume_note("midway each ej --input in.txt -- false") is None


def test_printable_escapes_every_control() -> None:
    text = "a\x1b]0;TITLE\x07b\x1b[2J\x9b8m\x00\x7f\u202e\r\tz\nnext"
    assert printable(text) == ("a\\x1b]0;TITLE\\x07b\\x1b[2J\\x9b8m\\x00\\x7f\\u202e\\r\\tz\\nnext")
    assert printable(text, lines=True).endswith("\\r\tz\nnext")
    assert printable("plain text, ünïcode — 東京") == "plain text, ünïcode — 東京"


# -- the store password: planted, then looked for everywhere -----------------------------------


@pytest.fixture
def secret_url(pg_server: PgServer, postgresql_url: str) -> Iterator[str]:
    """``postgresql_url`` as a role of its own whose password is ``SECRET`` (which connects)."""
    role = "midway_pw_" + uuid.uuid4().hex[:8]
    database = database_of(postgresql_url)
    with connect(pg_server.admin_url) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{SECRET}'")
        conn.execute(f'ALTER DATABASE "{database}" OWNER TO {role}')
    parts = urlsplit(postgresql_url)
    host = parts.netloc.rpartition("@")[2]
    url = urlunsplit((parts.scheme, f"{role}:{SECRET}@{host}", parts.path, parts.query, ""))
    with connect(url) as conn:  # the password URL really works (the server may ignore it)
        conn.execute("SELECT 1")
    try:
        yield url
    finally:
        with connect(postgresql_url) as conn:
            conn.execute(f"REASSIGN OWNED BY {role} TO CURRENT_USER")
            conn.execute(f"DROP OWNED BY {role}")
        with connect(pg_server.admin_url) as conn:
            conn.execute(f"DROP ROLE IF EXISTS {role}")


def _midway(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "midway", *args],
        check=False,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def _cli(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), env={"COLUMNS": "200"})
    return result.output + str(result.exception or "")


def _dump(url: str) -> str:
    """Every row of every midway_ table, as text."""
    with connect(url) as conn:
        tables = [
            name
            for (name,) in conn.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = current_schema() AND table_name LIKE 'midway%'"
            ).fetchall()
        ]
        assert len(tables) >= 4, tables
        return "\n".join(
            repr(conn.execute(f'SELECT * FROM "{table}"').fetchall()) for table in tables
        )


def _job_key(url: str, name: str) -> str:
    rows = json.loads(_cli("status", "--json", "--store", url))
    return next(row["job"] for row in rows if row["job"].split("@")[0] == name)


def test_the_store_password_appears_in_no_output(
    secret_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: dict[str, str] = {}
    (tmp_path / "in.txt").write_text("a\nb\n")
    # `midway each` as a user types it: both spellings of --store, a command that fails
    run = _midway(
        "each", "ej", "--store", secret_url, "--input", "in.txt", "--", "false", cwd=tmp_path
    )
    assert run.returncode == 1, run.stderr
    seen["each ej"] = run.stdout + run.stderr
    run = _midway(
        "each", "ej2", f"--store={secret_url}", "--input", "in.txt", "--max-failures", "5", "--",
        "sh", "-c", f"echo 'cannot reach {secret_url}' >&2; exit 3", cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 1, run.stderr
    seen["each ej2"] = run.stdout + run.stderr

    # A Python job whose command line and error carry the URL; the log is captured.
    class Unreachable(Exception):
        pass

    def handler(item: int, ctx: midway.Context) -> None:
        if item == 3:
            raise Unreachable(f"cannot reach {secret_url}")

    monkeypatch.setattr(sys, "orig_argv", ["python", "nightly.py", "--store", secret_url])
    with caplog.at_level(logging.DEBUG, logger="midway"), pytest.raises(Unreachable):
        midway.Job("py", store=secret_url, every=1).run(range(10), handler)
    seen["log"] = caplog.text + "\n".join(str(r.args) for r in caplog.records)

    for name in ("ej", "ej2", "py"):
        key = _job_key(secret_url, name)
        for args in (
            ("show", key),
            ("show", key, "--json"),
            ("failed", key),
            ("failed", key, "--json"),
            ("failed", key, "--export", "-"),
            ("report", key),
            ("report", key, "--format", "html"),
            ("report", key, "--format", "json"),
        ):
            seen[" ".join(args)] = _cli(*args, "--store", secret_url)
    seen["status"] = _cli("status", "--store", secret_url)
    seen["status --json"] = _cli("status", "--json", "--store", secret_url)
    seen["note"] = _cli("note", "ej", "looked at it", "--store", secret_url)
    seen["bad store"] = _midway("status", "--store", secret_url + "&nosuch=1", cwd=tmp_path).stderr

    with serve(secret_url, "--token", TOKEN) as served:
        seen["ui banner"] = served.banner
        with httpx.Client(base_url=served.url, timeout=30) as http:
            assert http.get(f"/?token={TOKEN}", follow_redirects=True).status_code == 200
            paths = ["/", "/api/jobs"]
            for name in ("ej", "ej2", "py"):
                job = quote(_job_key(secret_url, name), safe="")
                paths += [f"/jobs/{job}", f"/api/jobs/{job}", f"/api/jobs/{job}/summary"]
                paths += [f"/api/jobs/{job}/chart", f"/jobs/{job}/report.html"]
                paths += [f"/jobs/{job}/report.md", f"/jobs/{job}/reset"]
            for path in paths:
                response = http.get(path)
                assert response.status_code == 200, (path, response.text[:300])
                seen[f"GET {path}"] = response.text
    seen["tables"] = _dump(secret_url)

    leaks = [where for where, text in seen.items() if SECRET in text]
    assert not leaks, {where: seen[where][:2000] for where in leaks}
    assert "***" in seen["ui banner"]

    show = seen[f"show {_job_key(secret_url, 'ej')}"]
    assert "resume" in show, show
    assert "PGPASSWORD" in show, show
    detail = json.loads(seen[f"show {_job_key(secret_url, 'py')} --json"])
    assert "--store" in detail["resume_command"]
    assert "***" in detail["resume_command"]
    assert "PGPASSWORD" in detail["resume_note"]
    assert "***" in detail["runs"][0]["message"] or "***" in json.dumps(detail["items"])


# -- terminal escapes --------------------------------------------------------------------------

HOSTILE = "\x1b]0;TITLE\x07\x1b[2J\x1b[8m\x9b31m[red]x[/red]"
RAW = ("\x1b", "\x07", "\x9b")


def _plant_hostile_text(url: str, tmp_path: Path) -> str:
    """A job with a hostile key, error, note and each-kept stderr; its key."""
    (tmp_path / "in.txt").write_text(f"k{HOSTILE}\n")
    script = f"printf '%s' '{HOSTILE}' >&2; exit 3"
    run = _midway(
        "each", "ej", "--store", url, "--input", "in.txt", "--max-failures", "5",
        "--", "sh", "-c", script, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 1
    assert not any(raw in run.stderr + run.stdout for raw in RAW), run.stderr
    key = _job_key(url, "ej")
    _cli("note", key, f"note {HOSTILE}", "--store", url)

    class Hostile(Exception):
        pass

    def handler(item: str, ctx: midway.Context) -> None:
        raise Hostile(f"error {HOSTILE}")

    items = midway.sources.iterable([f"key {HOSTILE}"], key=lambda item: item)
    result = midway.Job("py", store=url, quiet=True, max_failures=5).run(items, handler)
    assert result.failed == 1
    return key


def test_control_sequences_from_the_store_reach_no_terminal_raw(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    key = _plant_hostile_text(url, tmp_path)
    py = _job_key(url, "py")
    texts: dict[str, str] = {"status": _cli("status", "--store", url)}
    for job in (key, py):
        for args in (("show", job), ("failed", job), ("report", job)):
            texts[" ".join(args)] = _cli(*args, "--store", url)
        texts[f"report {job} html"] = _cli("report", job, "--format", "html", "--store", url)
    for where, text in texts.items():
        assert not any(raw in text for raw in RAW), (where, text)
    assert "\\x1b]0;TITLE\\x07" in texts[f"show {key}"]  # shown, escaped
    assert "[red]x[/red]" in texts[f"failed {py}"], "rich markup in a key is shown, not read"
    assert "\\x1b[2J" in texts[f"report {key}"]

    # The JSON outputs keep the exact text.
    detail: dict[str, Any] = json.loads(_cli("show", key, "--json", "--store", url))
    assert detail["notes"][0]["text"] == f"note {HOSTILE}"
    assert HOSTILE in detail["items"][0]["error"]
    failed = json.loads(_cli("failed", py, "--json", "--store", url))
    assert failed[0]["key"] == f"key {HOSTILE}"
    assert HOSTILE in failed[0]["error"]
    report = json.loads(_cli("report", py, "--format", "json", "--store", url))
    assert report["errors"][0]["example_keys"] == [f"key {HOSTILE}"]


def test_an_error_message_reaches_the_terminal_escaped(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text(f"id,{HOSTILE}\n1,2\n")
    run = _midway(
        "each", "ej", "--store", f"sqlite:///{tmp_path / 'state.db'}", "--input", "in.csv",
        "--key", "nope", "--", "true", cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 2
    assert "has no column for" in run.stderr
    assert not any(raw in run.stderr for raw in RAW), run.stderr


def test_a_failed_command_s_stderr_reaches_the_terminal_escaped(tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("a\n")
    run = _midway(
        "each", "ej", "--store", f"sqlite:///{tmp_path / 'state.db'}", "--input", "in.txt",
        "--", "sh", "-c", f"printf '%s' '{HOSTILE}' >&2; exit 3", cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 1
    assert "a record failed" in run.stderr
    assert not any(raw in run.stderr for raw in RAW), run.stderr
    assert "\\x1b]0;TITLE\\x07" in run.stderr
