"""``midway status``'s table (``midway.cli.columns``): columns that line up (wide
characters included: a store someone edited may hold any text), text from the store that
cannot act on the terminal, and colour only for the status word, only on a terminal, never
with ``NO_COLOR``."""

from __future__ import annotations

from pathlib import Path

import pytest
from click import unstyle
from click.testing import CliRunner

import midway
from midway.cli import columns
from midway.cli.app import cli

ESC = "\x1b"


def status_lines(
    store: str, *, color: bool = False, env: dict[str, str] | None = None
) -> list[str]:
    result = CliRunner().invoke(cli, ["status", "--store", store], color=color, env=env)
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


def make_store(tmp_path: Path, names: list[str]) -> str:
    store = f"sqlite:///{tmp_path / 'state.db'}"
    for name in names:
        job = midway.Job(name, store=store, quiet=True, progress=False)
        job.run(range(3), lambda item, ctx: None)
    return store


def test_width_counts_wide_characters_twice_and_combining_marks_not() -> None:
    assert columns.width("abc") == 3
    assert columns.width("東京") == 4
    assert columns.width("e\u0301") == 1  # e and a combining acute: one column
    assert columns.width("Zürich") == 6


def test_columns_line_up_under_their_headers() -> None:
    drawn = columns.render(
        ("name", "count"),
        [["東京", "1"], ["São Paulo", "12,345"]],
        right=frozenset({"count"}),
    )
    lines = [unstyle(line) for line in drawn]
    assert lines[0] == "name        count"
    assert lines[1] == "─────────  ──────"
    assert lines[2] == "東京" + " " * 12 + "1"
    assert lines[3] == "São Paulo  12,345"
    assert {columns.width(line) for line in lines} == {17}


def test_text_from_the_store_cannot_act_on_the_terminal() -> None:
    lines = columns.render(("job",), [[f"evil{ESC}[2J{ESC}]0;title\x07"]])
    assert lines[2] == "evil\\x1b[2J\\x1b]0;title\\x07"
    assert ESC not in unstyle("".join(lines))  # only the header's bold


def test_status_table_lines_up_its_columns(tmp_path: Path) -> None:
    names = ["import-contacts-2026", "a", "invoices"]
    store = make_store(tmp_path, names)
    lines = status_lines(store)
    assert lines[0].startswith("midway jobs in sqlite:///")
    header = lines[2]
    assert header.split() == [
        "job",
        "status",
        "progress",
        "failed",
        "checkpoint",
        "rate",
        "ETA",
        "owner",
    ]
    rows = {line.split()[0]: line for line in lines[4:]}
    assert set(rows) == set(names)
    starts = {columns.width(row[: row.index("completed")]) for row in rows.values()}
    assert starts == {columns.width(header[: header.index("status")])}


def test_status_colours_the_status_word_on_a_terminal_only(tmp_path: Path) -> None:
    store = make_store(tmp_path, ["contacts"])
    coloured = status_lines(store, color=True)
    row = coloured[4]
    assert f"{ESC}[32mcompleted{ESC}[0m" in row  # green, as rich drew it
    assert row.startswith("contacts ")  # the name never coloured
    assert ESC not in "".join(status_lines(store))  # not a terminal: no colour at all
    no_color = status_lines(store, color=True, env={"NO_COLOR": "1"})
    assert ESC not in "".join(no_color)


@pytest.mark.parametrize(
    ("style", "codes"),
    [("bold red", ["[31m", "[1m"]), ("green", ["[32m"]), ("bold", ["[1m"]), ("", [])],
)
def test_a_style_is_rich_words_drawn_with_click(
    style: str, codes: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    line = columns.render(("status",), [[("word", style)]])[2]
    assert [code for code in codes if ESC + code not in line] == []
    assert (ESC in line) == bool(codes)
    assert unstyle(line) == "word"
