"""``midway each``: placeholders, quoting, --shell safety, records, environment, failures,
exit codes and job identity. Commands run for real (``sh``, ``cat``, a Python one-liner);
the command line runs in a child process where its exit code or words matter."""

from __future__ import annotations

import csv
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from midway._model.identity import make_job_id
from midway.each import child, placeholders
from midway.each.launch import job_options
from midway.each.outcomes import CommandFailed
from midway.each.placeholders import Field, Template, TemplateError
from midway.each.records import (
    CsvRecord,
    JsonRecord,
    LineRecord,
    RecordError,
    detect_format,
    env_name,
)
from midway.errors import ConfigError
from midway.stores import open_store

HOSTILE = [
    "; rm -rf x",
    "$(touch pwned)",
    "`touch pwned`",
    "' ; touch pwned ; '",
    '" ; touch pwned ; "',
    "a\ntouch pwned",
    "x && touch pwned",
    "| touch pwned",
    "> pwned",
    "*",
    "-n",
    "",
    "$HOME ${PATH} $((1+1))",
    "\\",
    "x' 'y",
    "Warīsān, 東京 ✓",
    "'\"'\"'",
]

# A command that records its own argv, one JSON list per line.
ARGV_LOGGER = [
    sys.executable,
    "-c",
    "import json, sys; open('argv.log', 'a').write(json.dumps(sys.argv[1:]) + '\\n')",
]


def midway_each(
    name: str,
    source: Path,
    command: list[str],
    *options: str,
    store: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """``midway each`` in a child process, as a user runs it."""
    store = store or f"sqlite:///{Path.cwd() / 'state.db'}"
    args = [sys.executable, "-m", "midway", "each", name, "--input", str(source)]
    args += ["--store", store, *options, "--", *command]
    return subprocess.run(
        args,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        env=env,
        check=False,
    )


def write_jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8"
    )
    return path


def show(name: str, store: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "midway", "show", name, "--json", "--store", store],
        capture_output=True,
        text=True,
        check=True,
    )
    detail: dict[str, Any] = json.loads(proc.stdout)
    return detail


# -- templates ----------------------------------------------------------------------------


def test_parse_placeholders() -> None:
    t = placeholders.parse(["curl", "{}", "--name={first} {last}", "{{x}}", "a}}b{{", "{a.b}"])
    assert t.elements == (
        ("curl",),
        (Field(None),),
        ("--name=", Field("first"), " ", Field("last")),
        ("{x}",),
        ("a}b{",),
        (Field("a.b"),),
    )
    assert t.fields == ["first", "last", "a.b"]
    assert t.literal_head() == "curl"
    values = {"first": "Ada", "last": "Lovelace", "a.b": "n"}

    def lookup(f: Field) -> str:
        return "REC" if f.name is None else values[f.name]

    assert t.argv(lookup) == ["curl", "REC", "--name=Ada Lovelace", "{x}", "a}b{", "n"]
    assert placeholders.parse(["{}"]).literal_head() is None
    assert placeholders.parse(["{{}}"]).argv(lookup) == ["{}"]


@pytest.mark.parametrize(
    "bad", ["{", "a{b", "}", "a}b", "{a{b}", "{ a}", "{a }", "{ }", "{{{", "x}}}"]
)
def test_parse_rejects_unbalanced_braces(bad: str) -> None:
    with pytest.raises(TemplateError, match=r"lone|unclosed|stray") as info:
        placeholders.parse(["echo", bad])
    assert repr(bad) in str(info.value) or bad.strip("{}") in str(info.value)


def test_an_empty_command_is_refused() -> None:
    with pytest.raises(TemplateError, match="no command"):
        placeholders.parse([])


def test_argv_values_stay_one_argument_each(tmp_path: Path) -> None:
    """Without --shell no shell sees the values: each placeholder is exactly one argument."""
    (tmp_path / "x").mkdir()
    source = write_jsonl(tmp_path / "in.jsonl", [{"v": v, "n": i} for i, v in enumerate(HOSTILE)])
    proc = midway_each("argv", source, [*ARGV_LOGGER, "{v}", "pre-{v}-post", "{n}", "{}"])
    assert proc.returncode == 0, proc.stderr
    logged = [json.loads(line) for line in Path("argv.log").read_text().splitlines()]
    raw = source.read_text(encoding="utf-8").splitlines()
    assert logged == [[v, f"pre-{v}-post", str(i), raw[i]] for i, v in enumerate(HOSTILE)]
    assert not Path("pwned").exists()
    assert (tmp_path / "x").is_dir()


# -- --shell ------------------------------------------------------------------------------


def run_sh(script: str) -> bytes:
    return subprocess.run(["/bin/sh", "-c", script], capture_output=True, check=True).stdout


@pytest.mark.parametrize("value", HOSTILE)
def test_shell_quotes_hostile_values(tmp_path: Path, value: str) -> None:
    (tmp_path / "x").mkdir()
    template = placeholders.parse(["printf", "'%s\\0'", "{v}", "|", "cat"])
    placeholders.check_shell_safe(template)
    script = template.shell(lambda f: value)
    assert run_sh(script) == value.encode() + b"\0"
    assert not (tmp_path / "pwned").exists()
    assert (tmp_path / "x").is_dir()


def test_the_quote_check_is_needed(tmp_path: Path) -> None:
    """Why a placeholder inside quotes is refused: a quoted value there runs code."""
    value = "a; touch pwned"
    run_sh("echo '" + shlex.quote(value) + "' > /dev/null")
    assert (tmp_path / "pwned").exists(), "the shell ran the value: the check guards this"
    with pytest.raises(TemplateError, match=r"inside '\.\.\.' quotes"):
        placeholders.check_shell_safe(placeholders.parse(["echo", "'{v}'"]))


@pytest.mark.parametrize(
    ("command", "where"),
    [
        (["echo", "'{v}'"], "inside '...' quotes"),
        (["echo", '"{v}"'], 'inside "..." quotes'),
        (["echo", '"$(echo {v})"'], 'inside "..." quotes'),
        (["echo", "`echo {v}`"], "inside `...`"),
        (["echo", "a", "#", "{v}"], "comment"),
        (["echo", "\\{v}"], "backslash"),
        (["echo", "${v}"], "after a $"),
        (["cat", "<<EOF\n{v}\nEOF"], "heredoc"),
        (["cat", "<<<", "{v}"], "heredoc"),
        (["cat", "<<-'EOF'\n{v}\nEOF"], "heredoc"),
        (["echo", "$((", "{v}", "+", "1", "))"], "arithmetic"),
        (["((", "x", "=", "{v}", "))"], "arithmetic"),
        (["[[", "1", "-eq", "{v}", "]]"], "[[ ]]"),
        (["eval", "echo", "{v}"], "argument of eval"),
        (["true;", "let", "x={v}"], "argument of let"),
    ],
)
def test_shell_refuses_unsafe_places(command: list[str], where: str) -> None:
    with pytest.raises(TemplateError) as info:
        placeholders.check_shell_safe(placeholders.parse(command))
    message = str(info.value)
    assert where in message
    assert "{v}" in message
    assert "--env" in message, "the refusal says what to do instead"


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["printf", "%s", "{v}", "|", "tr", "a-z", "A-Z"], "A B'C"),
        (["x={v};", "printf", "%s", '"$x"'], "a b'c"),
        (["printf", "'%s|'", "$(printf", "%s", "{v})"], "a|b'c|"),
        (["printf", "'{{%s}}'", "{v}"], "{a b'c}"),
        (["printf", "%s", "x#{v}"], "x#a b'c"),
        (["printf", '"%s|"', "{v}", "# a comment with '{{v}}'"], "a b'c|"),
        (["printf", "%s", "{v}", "#", "'}}'"], "a b'c"),
        (["printf", "%s", "'$((1+1))'", "{v}"], "$((1+1))a b'c"),
    ],
)
def test_shell_accepts_safe_places(command: list[str], expected: str) -> None:
    template = placeholders.parse(command)
    placeholders.check_shell_safe(template)
    assert run_sh(template.shell(lambda f: "a b'c")).decode() == expected


def test_shell_mode_end_to_end(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    source = write_jsonl(tmp_path / "in.jsonl", [{"v": v} for v in HOSTILE])
    proc = midway_each("sh", source, ["printf", "'%s\\0'", "{v}", ">>", "out.bin"], "--shell")
    assert proc.returncode == 0, proc.stderr
    assert Path("out.bin").read_bytes().split(b"\0")[:-1] == [v.encode() for v in HOSTILE]
    assert not Path("pwned").exists()
    assert (tmp_path / "x").is_dir()
    refused = midway_each("sh2", source, ["echo", "'{v}'"], "--shell")
    assert refused.returncode == 2, refused.stderr
    assert "inside '...' quotes" in refused.stderr


# -- records ------------------------------------------------------------------------------


def test_formats_from_the_extension() -> None:
    assert detect_format(Path("a.csv")) == "csv"
    assert detect_format(Path("a.CSV.gz")) == "csv"
    assert detect_format(Path("a.jsonl")) == "jsonl"
    assert detect_format(Path("a.ndjson")) == "jsonl"
    assert detect_format(Path("a.json")) == "lines"
    assert detect_format(Path("urls.txt")) == "lines"
    assert detect_format(Path("README")) == "lines"


def test_record_views() -> None:
    line = LineRecord("a b, c")
    assert (line.whole(), line.stdin(), line.fields()) == ("a b, c", b"a b, c\n", {})
    with pytest.raises(RecordError, match="no field 'x'"):
        line.field("x")

    row = CsvRecord(
        {"name": "Yacuiba", "country": "Bolivia, Plurinational State of"}, ["name", "country"]
    )
    assert row.whole() == 'Yacuiba,"Bolivia, Plurinational State of"'
    assert row.stdin() == b'name,country\nYacuiba,"Bolivia, Plurinational State of"\n'
    assert row.field("country") == "Bolivia, Plurinational State of"
    with pytest.raises(RecordError, match="no column 'city'"):
        row.field("city")

    raw = '{"id": 7,  "ok": true, "tags": ["a", 1], "who": {"mail": "a@b"}, "n": null}'
    obj = JsonRecord(raw, json.loads(raw))
    assert obj.whole() == raw, "{} is the line exactly as written"
    assert obj.field("id") == "7"
    assert obj.field("ok") == "true"
    assert obj.field("n") == "null"
    assert obj.field("tags") == '["a",1]'
    assert obj.field("who.mail") == "a@b"
    assert obj.field("tags.0") == "a"
    assert obj.fields()["who"] == '{"mail":"a@b"}'
    with pytest.raises(RecordError, match=r"no field 'email' \(its fields: id, ok, tags"):
        obj.field("email")
    array = JsonRecord("[1, 2]", [1, 2])
    with pytest.raises(RecordError, match="JSON array, not an object"):
        array.field("id")


def test_env_names() -> None:
    assert env_name("email") == "MIDWAY_FIELD_EMAIL"
    assert env_name("first name") == "MIDWAY_FIELD_FIRST_NAME"
    assert env_name("geo.lat-2") == "MIDWAY_FIELD_GEO_LAT_2"
    assert env_name("città") == "MIDWAY_FIELD_CITT_"


def test_blank_lines_are_not_records(tmp_path: Path) -> None:
    source = tmp_path / "in.txt"
    source.write_text("a\n\n  \nb\r\n\nc", encoding="utf-8")
    proc = midway_each("blank", source, [*ARGV_LOGGER, "{}"])
    assert proc.returncode == 0, proc.stderr
    logged = [json.loads(line) for line in Path("argv.log").read_text().splitlines()]
    assert logged == [["a"], ["b"], ["c"]]
    assert "3 items (3 succeeded)" in proc.stderr


def test_csv_placeholders_and_stdin(tmp_path: Path) -> None:
    source = tmp_path / "people.csv"
    source.write_text(
        'email,name,note\nada@x.org,Ada,"likes ""engines"", math"\nbob@y.org,Bob,\n',
        encoding="utf-8",
    )
    proc = midway_each(
        "people", source, [*ARGV_LOGGER, "{email}", "{name}", "{note}", "{}"], "--key", "email"
    )
    assert proc.returncode == 0, proc.stderr
    logged = [json.loads(line) for line in Path("argv.log").read_text().splitlines()]
    assert logged == [
        ["ada@x.org", "Ada", 'likes "engines", math', 'ada@x.org,Ada,"likes ""engines"", math"'],
        ["bob@y.org", "Bob", "", "bob@y.org,Bob,"],
    ]
    piped = midway_each("people-in", source, ["sh", "-c", "cat >> in.log"], "--stdin")
    assert piped.returncode == 0, piped.stderr
    assert Path("in.log").read_text() == (
        'email,name,note\nada@x.org,Ada,"likes ""engines"", math"\n'
        "email,name,note\nbob@y.org,Bob,\n"
    )


def test_stdin_of_lines_and_jsonl_is_the_line(tmp_path: Path) -> None:
    lines = tmp_path / "a.txt"
    lines.write_text("one two\nthree\n", encoding="utf-8")
    assert midway_each("a", lines, ["sh", "-c", "cat >> a.log"], "--stdin").returncode == 0
    assert Path("a.log").read_text() == "one two\nthree\n"
    jsonl = tmp_path / "b.jsonl"
    jsonl.write_text('{"a": 1}\n\n{"b":  [2]}\n', encoding="utf-8")
    assert midway_each("b", jsonl, ["sh", "-c", "cat >> b.log"], "--stdin").returncode == 0
    assert Path("b.log").read_text() == '{"a": 1}\n{"b":  [2]}\n'
    quiet = midway_each("c", jsonl, ["sh", "-c", "cat >> c.log"])
    assert quiet.returncode == 0
    assert Path("c.log").read_text() == "", "without --stdin the command's input is empty"


def test_world_cities_placeholders_on_messy_input(world_cities: Path, tmp_path: Path) -> None:
    """Real rows: quoted commas, non-Latin names. Each row's {name} and {country} arrive
    exactly, through argv, through --shell and through --env."""
    raw = world_cities.read_text(encoding="utf-8").splitlines(keepends=True)
    header, rows = raw[0], raw[1:]
    messy = [r for r in rows if '"' in r][:75] + [r for r in rows if not r.isascii()][:75]
    plain = rows[:50]
    sample = tmp_path / "cities.csv"
    sample.write_text(header + "".join(plain + messy), encoding="utf-8")
    with sample.open(newline="", encoding="utf-8") as f:
        expected = [[row["name"], row["country"]] for row in csv.DictReader(f)]
    assert any("," in country for _, country in expected)
    assert any(not name.isascii() for name, _ in expected)

    argv = midway_each("cities", sample, [*ARGV_LOGGER, "{name}", "{country}"])
    assert argv.returncode == 0, argv.stderr
    logged = [json.loads(line) for line in Path("argv.log").read_text().splitlines()]
    assert logged == expected

    shell = midway_each(
        "cities-sh",
        sample,
        ["printf", "'%s\\t%s\\n'", "{name}", "{country}", ">>", "sh.log"],
        "--shell",
    )
    assert shell.returncode == 0, shell.stderr
    lines = Path("sh.log").read_text(encoding="utf-8").splitlines()
    assert [line.split("\t") for line in lines] == expected

    env = midway_each(
        "cities-env",
        sample,
        ["sh", "-c", 'printf "%s\\t%s\\n" "$MIDWAY_FIELD_NAME" "$MIDWAY_FIELD_COUNTRY" >> env.log'],
        "--env",
    )
    assert env.returncode == 0, env.stderr
    lines = Path("env.log").read_text(encoding="utf-8").splitlines()
    assert [line.split("\t") for line in lines] == expected


# -- usage errors, before anything runs ---------------------------------------------------


def test_an_unknown_csv_column_is_refused_before_anything_runs(tmp_path: Path) -> None:
    source = tmp_path / "people.csv"
    source.write_text("email,name\nada@x.org,Ada\n", encoding="utf-8")
    store = f"sqlite:///{tmp_path / 'state.db'}"
    proc = midway_each("p", source, ["touch", "{mail}"], store=store)
    assert proc.returncode == 2, proc.stderr
    assert "'mail'" in proc.stderr
    assert "columns: email, name" in proc.stderr
    assert not list(tmp_path.glob("ada*"))
    assert not (tmp_path / "state.db").exists(), "a refused command line leaves no job behind"
    bad_key = midway_each("p", source, ["true"], "--key", "id", store=store)
    assert bad_key.returncode == 2
    assert "--key names 'id'" in bad_key.stderr


def test_plain_lines_have_no_fields(tmp_path: Path) -> None:
    source = tmp_path / "urls.txt"
    source.write_text("https://example.org\n", encoding="utf-8")
    proc = midway_each("u", source, ["awk", "{print $1}"])
    assert proc.returncode == 2
    assert "{print $1}" in proc.stderr
    assert "{{" in proc.stderr, "says how to write a literal brace"
    escaped = midway_each("u", source, ["awk", "BEGIN {{print 1}}"])
    assert escaped.returncode == 0, escaped.stderr
    keyed = midway_each("u2", source, ["true"], "--key", "url")
    assert keyed.returncode == 2
    assert "plain lines have none" in keyed.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--input", "missing.txt", "--", "true"], "does not exist"),
        (["--input", "in.txt", "--", "no-such-program-here", "{}"], "not on PATH"),
        (["--input", "in.txt", "--", "./not-executable", "{}"], "not an executable"),
        (["--input", "in.txt", "--", "echo", "{"], "unclosed"),
        (["--input", "in.txt", "--format", "xml", "--", "true"], "xml"),
        (["--input", "in.txt", "--every", "0", "--", "true"], "every"),
        (["--input", "/dev/null", "--", "true"], "not a regular file"),
        (["--input", "in.txt", "--", "true"], None),
        (["--input", "in.txt"], "COMMAND"),
        (["bad name!", "--input", "in.txt", "--", "true"], "job name"),
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, args: list[str], message: str | None) -> None:
    Path("in.txt").write_text("a\n", encoding="utf-8")
    Path("not-executable").write_text("#!/bin/sh\n", encoding="utf-8")
    name = [] if args[0] == "bad name!" else ["usage"]
    proc = subprocess.run(
        [sys.executable, "-m", "midway", "each", *name, *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if message is None:
        assert proc.returncode == 0, proc.stderr
        return
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_env_clash_between_csv_columns_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "a.csv"
    source.write_text("first name,first_name\na,b\n", encoding="utf-8")
    proc = midway_each("clash", source, ["true"], "--env")
    assert proc.returncode == 2
    assert "MIDWAY_FIELD_FIRST_NAME" in proc.stderr
    assert midway_each("clash", source, ["true"]).returncode == 0


# -- environment --------------------------------------------------------------------------


def test_environment_of_the_command(tmp_path: Path) -> None:
    source = tmp_path / "people.csv"
    source.write_text("email,first name\nada@x.org,Ada\nbob@y.org,Bob\n", encoding="utf-8")
    dump = [sys.executable, "-c", "import json, os; print(json.dumps(dict(os.environ)))"]
    log = ["sh", "-c", '"$@" >> env.log', "_", *dump]
    stale = {**os.environ, "MIDWAY_FIELD_STALE": "from outside", "MIDWAY_RECORD": "old"}
    proc = midway_each("env", source, log, "--env", "--key", "email", env=stale)
    assert proc.returncode == 0, proc.stderr
    envs = [json.loads(line) for line in Path("env.log").read_text().splitlines()]
    job = make_job_id("env", {"command": log, "input": str(source)})
    for env, (mail, first) in zip(envs, [("ada@x.org", "Ada"), ("bob@y.org", "Bob")], strict=True):
        assert env["MIDWAY_FIELD_EMAIL"] == mail
        assert env["MIDWAY_FIELD_FIRST_NAME"] == first
        assert env["MIDWAY_RECORD"] == f"{mail},{first}"
        assert env["MIDWAY_KEY"] == mail
        assert env["MIDWAY_JOB"] == job.key
        assert env["MIDWAY_IDEMPOTENCY_KEY"] == job.idempotency_key(mail)
        assert env["MIDWAY_ATTEMPT"] == "1"
        assert "MIDWAY_FIELD_STALE" not in env, "fields of an outer job do not leak in"
        assert env["PATH"] == os.environ["PATH"]

    Path("env.log").unlink()
    plain = midway_each("env2", source, log)
    assert plain.returncode == 0, plain.stderr
    envs = [json.loads(line) for line in Path("env.log").read_text().splitlines()]
    job2 = make_job_id("env2", {"command": log, "input": str(source)})
    assert [e["MIDWAY_KEY"] for e in envs] == ["1", "2"], "without --key: the record number"
    assert envs[1]["MIDWAY_IDEMPOTENCY_KEY"] == job2.idempotency_key(2)
    assert not any(name.startswith("MIDWAY_FIELD_") for name in envs[0])
    assert "MIDWAY_RECORD" not in envs[0]


# -- failures -----------------------------------------------------------------------------


def test_a_failing_command_stops_the_job_with_its_exit_code_and_output(tmp_path: Path) -> None:
    source = tmp_path / "in.txt"
    source.write_text("ok-1\nok-2\nbad\nok-3\n", encoding="utf-8")
    store = f"sqlite:///{tmp_path / 'state.db'}"
    script = (
        'echo "$1" >> done.log; if [ "$1" = bad ]; then '
        "head -c 100000 /dev/zero | tr '\\0' o; echo; echo 'the last words' >&2; exit 7; fi"
    )
    cmd = ["sh", "-c", script, "_", "{}"]
    proc = midway_each("fail", source, cmd, store=store)
    assert proc.returncode == 1, proc.stderr
    assert "midway: a record failed: exit code 7: the last words" in proc.stderr
    assert "resumes at record 3" in proc.stderr
    assert "Traceback" not in proc.stderr
    stdout_tail = proc.stderr.split("stdout (last 4 KiB):\n", 1)[1]
    longest = max(len(run) for run in re.findall("o+", stdout_tail))
    assert longest == 4095, "the output's last 4 KiB are kept: 4,095 o's and a newline"
    assert Path("done.log").read_text().split() == ["ok-1", "ok-2", "bad"]
    detail = show("fail", store)
    assert detail["processed"] == 2
    assert detail["runs"][0]["status"] == "failed"
    assert detail["runs"][0]["message"].startswith("CommandFailed: exit code 7: the last words")

    # The same command line resumes at the failed record (nothing before it runs again).
    Path("done.log").unlink()
    again = midway_each("fail", source, cmd, store=store)
    assert again.returncode == 1
    assert Path("done.log").read_text().split() == ["bad"]


def test_command_failed_carries_code_and_bounded_tails() -> None:
    children = child.Children()
    noisy = (
        "import sys; sys.stdout.write('x' * 100000 + 'END-OUT'); "
        "sys.stderr.write('e' * 50000 + 'END-ERR'); sys.exit(3)"
    )
    outcome = child.run([sys.executable, "-c", noisy], stdin=None, env=None, children=children)
    assert outcome.returncode == 3
    assert len(outcome.stdout_tail) == child.TAIL_BYTES
    assert outcome.stdout_tail.endswith(b"END-OUT")
    assert len(outcome.stderr_tail) == child.TAIL_BYTES
    assert outcome.stderr_tail.endswith(b"END-ERR")
    failed = CommandFailed.from_outcome(["prog", "a b"], outcome)
    assert failed.returncode == 3
    assert str(failed).startswith("exit code 3: " + "e" * 100)
    assert "command: prog 'a b'" in str(failed)
    assert failed.stderr_tail.endswith("END-ERR")
    assert failed.stdout_tail.endswith("END-OUT")
    assert not isinstance(failed, ConfigError)

    killed = child.run(["sh", "-c", "kill -KILL $$"], stdin=None, env=None, children=children)
    assert str(CommandFailed.from_outcome(["sh"], killed)).startswith("killed by SIGKILL")
    assert children.pids() == []


def test_a_large_record_on_stdin_does_not_deadlock() -> None:
    """The command writes a lot before it reads: input and output flow together."""
    record = b"r" * 1_000_000 + b"\n"
    script = (
        "import sys; sys.stdout.write('y' * 1000000); sys.stdout.flush(); "
        "data = sys.stdin.buffer.read(); sys.stderr.write(str(len(data)))"
    )
    outcome = child.run(
        [sys.executable, "-c", script], stdin=record, env=None, children=child.Children()
    )
    assert outcome.returncode == 0
    assert outcome.stderr_tail == str(len(record)).encode()
    ignores = child.run(["true"], stdin=record, env=None, children=child.Children())
    assert ignores.returncode == 0, "a command that does not read its input is fine"


def test_a_background_process_holding_the_pipes_is_not_waited_for() -> None:
    t0 = time.monotonic()
    outcome = child.run(
        ["sh", "-c", "sleep 30 & echo $!"], stdin=None, env=None, children=child.Children()
    )
    took = time.monotonic() - t0
    os.kill(int(outcome.stdout_tail), 9)
    assert outcome.returncode == 0
    assert took < 5, f"waited {took:.1f} s for a process the command left running"


def test_a_missing_json_field_fails_that_record(tmp_path: Path) -> None:
    source = write_jsonl(
        tmp_path / "in.jsonl", [{"email": "a@x"}, {"name": "no mail"}, {"email": "c@x"}]
    )
    proc = midway_each("mails", source, [*ARGV_LOGGER, "{email}"])
    assert proc.returncode == 1
    assert "a record failed: the record has no field 'email' (its fields: name)" in proc.stderr
    assert "resumes at record 2" in proc.stderr
    assert [json.loads(x) for x in Path("argv.log").read_text().splitlines()] == [["a@x"]]


def test_a_program_named_by_the_record_that_cannot_start(tmp_path: Path) -> None:
    source = tmp_path / "progs.txt"
    source.write_text("true\nno-such-program-xyz\n", encoding="utf-8")
    proc = midway_each("progs", source, ["{}"])
    assert proc.returncode == 1
    assert "could not start 'no-such-program-xyz'" in proc.stderr


def test_a_nul_byte_is_a_record_error(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [{"v": "a\0b"}])
    proc = midway_each("nul", source, ["echo", "{v}"])
    assert proc.returncode == 1
    assert "the record cannot be passed to a command: embedded null byte" in proc.stderr


def test_output_is_discarded_unless_asked_for(tmp_path: Path) -> None:
    source = tmp_path / "in.txt"
    source.write_text("one\ntwo\n", encoding="utf-8")
    cmd = ["sh", "-c", 'echo "out $1"; echo "err $1" >&2', "_", "{}"]
    quiet = midway_each("q", source, cmd)
    assert quiet.returncode == 0
    assert quiet.stdout == ""
    assert "out one" not in quiet.stderr
    loud = midway_each("l", source, cmd, "--output")
    assert loud.returncode == 0
    assert loud.stdout == "out one\nout two\n"
    assert "err one\n" in loud.stderr
    assert "err two\n" in loud.stderr


# -- identity, drift and the store --------------------------------------------------------


def test_the_command_and_input_are_the_jobs_identity(tmp_path: Path) -> None:
    source = tmp_path / "in.txt"
    source.write_text("a\nb\nc\n", encoding="utf-8")
    store = f"sqlite:///{tmp_path / 'state.db'}"
    failing = ["sh", "-c", 'echo "$1" >> one.log; [ "$1" != b ]', "_", "{}"]
    first = midway_each("ident", source, failing, store=store)
    assert first.returncode == 1
    other = ["sh", "-c", 'echo "$1" >> two.log', "_", "{}"]
    second = midway_each("ident", source, other, store=store)
    assert second.returncode == 0, second.stderr
    assert "from the beginning" in second.stderr
    assert "has an unfinished checkpoint" in second.stderr, "points out the other job"
    assert Path("two.log").read_text().split() == ["a", "b", "c"]
    store_ = open_store(store)
    try:
        jobs = {record.job: record for record in store_.list_jobs()}
    finally:
        store_.close()
    key1 = make_job_id("ident", {"command": failing, "input": str(source)}).key
    key2 = make_job_id("ident", {"command": other, "input": str(source)}).key
    assert set(jobs) == {key1, key2}
    assert jobs[key1].params == {"command": failing, "input": str(source)}
    shell = midway_each("ident", source, other, "--shell", store=store)
    assert shell.returncode == 0
    assert make_job_id("ident", {"command": other, "input": str(source), "shell": True}).key in (
        shell.stderr
    )


def test_a_changed_input_is_refused_with_exit_3(tmp_path: Path, store_url: str) -> None:
    source = tmp_path / "in.txt"
    source.write_text("a\nb\nc\n", encoding="utf-8")
    cmd = ["sh", "-c", '[ "$1" != b ]', "_", "{}"]
    assert midway_each("drift", source, cmd, store=store_url).returncode == 1
    source.write_text("a\nB\nc\nd\n", encoding="utf-8")
    proc = midway_each("drift", source, cmd, store=store_url)
    assert proc.returncode == 3, proc.stderr
    assert "changed since its checkpoint" in proc.stderr


def test_a_second_runner_is_refused_with_exit_3(tmp_path: Path) -> None:
    source = tmp_path / "in.txt"
    source.write_text("a\nb\n", encoding="utf-8")
    store = f"sqlite:///{tmp_path / 'state.db'}"
    # The first command waits while the file "hold" exists: the first runner is surely
    # still running when the second starts.
    cmd = ["sh", "-c", "touch started; while [ -e hold ]; do sleep 0.02; done", "_", "{}"]
    args = [sys.executable, "-m", "midway", "each", "busy", "--input", str(source)]
    Path("hold").touch()
    first = subprocess.Popen([*args, "--store", store, "--", *cmd], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not Path("started").exists():
            assert first.poll() is None, "the first runner ended early"
            assert time.monotonic() < deadline, "the first command never started"
            time.sleep(0.02)
        second = midway_each("busy", source, cmd, store=store)
        assert second.returncode == 3, second.stderr
        assert f"pid {first.pid}" in second.stderr
    finally:
        first.kill()
        first.wait()
        Path("hold").unlink()


# -- the engine's options ----------------------------------------------------------------


def test_job_options_map_the_flags() -> None:
    assert job_options(None, None, "at-least-once") == {"guarantee": "at-least-once"}
    assert job_options(1, 0, "at-most-once") == {"guarantee": "at-most-once"}
    options = job_options(3, 2, "at-least-once", 0.05, backoff=0.1)
    assert options["workers"] == 3
    assert options["max_failures"] == 0.05
    retry = options["retry"]
    assert retry.attempts == 3
    assert retry.on == (CommandFailed,)  # a record missing a field is not retried
    assert retry.backoff == 0.1


def test_max_failures_records_failed_records_and_goes_on(tmp_path: Path) -> None:
    source = tmp_path / "in.txt"
    source.write_text("".join(f"r{i}\n" for i in range(10)), encoding="utf-8")
    script = 'case "$1" in r3|r7) exit 4;; esac; echo "$1" >> done.log'
    proc = midway_each("tolerant", source, ["sh", "-c", script, "_", "{}"], "--max-failures", "5")
    assert proc.returncode == 1, proc.stderr  # finished, with failed records
    assert Path("done.log").read_text().split() == [f"r{i}" for i in range(10) if i not in (3, 7)]
    items = show("tolerant", f"sqlite:///{Path.cwd() / 'state.db'}")["items"]
    assert sorted(i["key"] for i in items) == [4, 8]
    assert all("exit" in (i["error"] or "") for i in items)


def test_a_template_value_cannot_reach_a_shell_without_shell_mode() -> None:
    """A sanity check of the default: the argv given to the program has no shell in it."""
    template: Template = placeholders.parse(["echo", "{}"])
    assert template.argv(lambda f: "$(id)") == ["echo", "$(id)"]


def test_parallel_commands_run_each_record_once(tmp_path: Path) -> None:
    source = tmp_path / "in.txt"
    source.write_text("".join(f"r{i}\n" for i in range(40)), encoding="utf-8")
    # Each command notes how many others run beside it (a file per running command).
    script = (
        'touch "run/$1"; ls run | wc -l >> width.log; sleep 0.05; '
        'rm "run/$1"; echo "$1" >> done.log'
    )
    Path("run").mkdir()
    proc = midway_each("par", source, ["sh", "-c", script, "_", "{}"], "-j", "4")
    assert proc.returncode == 0, proc.stderr
    done = Path("done.log").read_text().split()
    assert sorted(done) == sorted(f"r{i}" for i in range(40))
    assert len(done) == 40, "each record once"
    assert max(int(w) for w in Path("width.log").read_text().split()) > 1, "ran in parallel"


def test_retries_run_a_failing_command_again(tmp_path: Path) -> None:
    source = tmp_path / "in.txt"
    source.write_text("a\nb\n", encoding="utf-8")
    # Fails on its first two attempts for "b", then succeeds.
    script = 'echo "$1 $MIDWAY_ATTEMPT" >> tries.log; [ "$1" != b ] || [ "$MIDWAY_ATTEMPT" -ge 3 ]'
    proc = midway_each("retry", source, ["sh", "-c", script, "_", "{}"], "--retries", "2")
    assert proc.returncode == 0, proc.stderr
    assert Path("tries.log").read_text().splitlines() == ["a 1", "b 1", "b 2", "b 3"]
    Path("tries.log").unlink()
    fails = midway_each("retry1", source, ["sh", "-c", script, "_", "{}"], "--retries", "1")
    assert fails.returncode == 1
    assert Path("tries.log").read_text().splitlines() == ["a 1", "b 1", "b 2"]


def test_at_most_once_reports_a_command_cut_short_in_doubt(tmp_path: Path) -> None:
    source = tmp_path / "in.txt"
    source.write_text("a\nslow\nc\n", encoding="utf-8")
    store = f"sqlite:///{tmp_path / 'state.db'}"
    # The slow record's command waits while the file "hold" exists: it is in hand when
    # its runner is killed.
    script = 'echo "$1" >> ran.log; [ "$1" != slow ] || while [ -e hold ]; do sleep 0.02; done'
    Path("hold").touch()
    cmd = ["sh", "-c", script, "_", "{}"]
    args = [sys.executable, "-m", "midway", "each", "amo", "--input", str(source)]
    args += ["--store", store, "--guarantee", "at-most-once", "--every", "1", "--", *cmd]
    first = subprocess.Popen(args, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while "slow" not in (Path("ran.log").read_text() if Path("ran.log").exists() else ""):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    first.kill()
    first.wait()
    Path("hold").unlink()
    again = midway_each("amo", source, cmd, "--guarantee", "at-most-once", store=store)
    assert again.returncode == 1, "a record in doubt is not done"
    assert "in doubt" in again.stderr
    assert Path("ran.log").read_text().split() == ["a", "slow", "c"], "slow never ran twice"
    items = show("amo", store)["items"]
    assert [(i["key"], i["status"]) for i in items] == [(2, "in_doubt")]
