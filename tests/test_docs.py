"""The documentation says what the code does.

- Every ``midway`` command and every option of each appears in the command-line reference
  (docs/reference/cli.md, written by the hook docs/hooks/cli_reference.py at build time).
- Every public name of ``midway`` and ``midway.sources`` has its entry in the API reference.
- The Python code blocks of the documentation pages run as written, page by page, in a
  fresh folder with ``MIDWAY_STORE`` pointing into it; so do README.md's blocks that follow
  the line ``<!-- test: run -->``. A page's block that cannot run here (it needs a server)
  follows ``<!-- test: skip -->``. Code in a comment ``<!-- test: setup`` ... ``-->`` runs
  too, where it stands, unseen by readers: the input files and stand-ins (a ``crm``) that
  the examples take for granted.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from types import ModuleType

import click
import markdown
import pytest

import midway
import midway.sources
from midway.cli.app import cli

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
RUN_MARKER = "<!-- test: run -->"
SKIP_MARKER = "<!-- test: skip -->"
SETUP_OPENING = "<!-- test: setup"
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w-]*)[^\n]*$")


def load_hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cli_reference", DOCS / "hooks/cli_reference.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HOOK = load_hook()


# --- the command-line reference -------------------------------------------------------------


class _Sections(HTMLParser):
    """The text under each heading that has an id, by that id."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, str] = {}
        self._current: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if re.fullmatch(r"h[1-6]", tag):
            self._current = dict(attrs).get("id") or self._current
            if self._current is not None:
                self.sections.setdefault(self._current, "")

    def handle_data(self, data: str) -> None:
        if self._current is not None:
            self.sections[self._current] += data


def cli_reference_sections() -> dict[str, str]:
    """The CLI reference page as mkdocs builds it: the hook, then Markdown to HTML."""
    page = (DOCS / "reference/cli.md").read_text(encoding="utf-8")
    text = HOOK.on_page_markdown(page, page=None, config=None, files=None)
    parser = _Sections()
    parser.feed(markdown.markdown(text, extensions=["attr_list", "tables", "fenced_code"]))
    return parser.sections


def every_command() -> list[tuple[str, click.Command, click.Context]]:
    """``midway`` and each command under it, found by walking the click group."""
    found = []

    def walk(command: click.Command, ctx: click.Context) -> None:
        found.append((ctx.command_path, command, ctx))
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None
                walk(sub, click.Context(sub, info_name=name, parent=ctx))

    walk(cli, click.Context(cli, info_name="midway"))
    return found


def missing_from_reference(sections: dict[str, str]) -> list[str]:
    """What the reference lacks: ``midway x`` for a command, ``midway x --opt`` for an option."""
    missing = []
    for path, command, ctx in every_command():
        section = sections.get(HOOK.anchor(path))
        if section is None:
            missing.append(path)
            continue
        for param in command.get_params(ctx):
            if not isinstance(param, click.Option) or param.hidden:
                continue
            for name in (*param.opts, *param.secondary_opts):
                if not re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", section):
                    missing.append(f"{path} {name}")
    return missing


def test_every_command_and_option_is_in_the_cli_reference() -> None:
    sections = cli_reference_sections()
    assert len(every_command()) > 10
    assert missing_from_reference(sections) == []


def test_a_missing_command_or_option_is_noticed() -> None:
    """The check above would fail: take a command's section away, or one option from one."""
    sections = cli_reference_sections()
    without_ui = {key: text for key, text in sections.items() if key != "midway-ui"}
    assert missing_from_reference(without_ui) == ["midway ui"]
    cut = dict(sections, **{"midway-reset": sections["midway-reset"].replace("--yes", "")})
    assert missing_from_reference(cut) == ["midway reset --yes"]


def test_help_paragraphs_kept_as_written_become_code_blocks() -> None:
    lines = HOOK._help_markdown("Say hello.\n\n\b\nExample:\n  midway status\n")
    assert lines == ["Say hello.", "", "```text", "Example:\n  midway status", "```", ""]


# --- the API reference ----------------------------------------------------------------------


def documented_objects(page: str) -> set[str]:
    """The names the page's ``::: path`` directives document (the last part of each path)."""
    text = (DOCS / page).read_text(encoding="utf-8")
    return {path.rsplit(".", 1)[-1] for path in re.findall(r"^::: ([\w.]+)", text, re.M)}


def test_every_public_name_is_in_the_api_reference() -> None:
    undocumented = set(midway.__all__) - documented_objects("reference/api.md")
    assert undocumented == {"__version__", "sources"}  # both described in prose there
    assert set(midway.sources.__all__) - documented_objects("reference/sources.md") == set()


# --- the code blocks of the pages run -------------------------------------------------------


@dataclass(frozen=True)
class Block:
    line: int  # of the block's first line of code, counting from 1
    code: str


def python_blocks(text: str, *, only_marked: bool) -> list[Block]:
    """The page's ``python`` blocks, indented ones (in a list item) dedented.

    ``only_marked``: only the blocks right after ``<!-- test: run -->`` (README.md), else every
    block but those right after ``<!-- test: skip -->``. Setup comments count either way.
    """
    lines = text.splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        if lines[index].strip() == SETUP_OPENING:
            end = index + 1
            while end < len(lines) and lines[end].strip() != "-->":
                end += 1
            blocks.append(Block(index + 2, "\n".join(lines[index + 1 : end])))
            index = end + 1
            continue
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        end = index + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        marker = _marker_before(lines, index)
        wanted = marker == RUN_MARKER if only_marked else marker != SKIP_MARKER
        if opening["lang"] == "python" and wanted:
            indent = len(opening["indent"])
            code = "\n".join(line[indent:] for line in lines[index + 1 : end])
            blocks.append(Block(index + 2, code))
        index = end + 1
    return blocks


def _marker_before(lines: list[str], fence: int) -> str | None:
    before = [line.strip() for line in lines[:fence] if line.strip()]
    return before[-1] if before and before[-1].startswith("<!--") else None


def script_of(blocks: list[Block]) -> str:
    """The blocks as one script whose line numbers are the page's: a traceback names them."""
    lines: list[str] = []
    for block in blocks:
        lines += [""] * (block.line - 1 - len(lines))
        lines += block.code.splitlines()
    return "\n".join(lines) + "\n"


def test_blocks_are_found_marked_or_not() -> None:
    page = "\n".join(
        [
            "```python",
            "a = 1",
            "```",
            "<!-- test: skip -->",
            "```python",
            "needs_a_server()",
            "```",
            "- a list item:",
            "",
            "  " + RUN_MARKER,
            "  ```python",
            "  b = a + 1",
            "  ```",
            "```sh",
            "midway status",
            "```",
            SETUP_OPENING,
            "c = 3",
            "-->",
        ]
    )
    setup = Block(18, "c = 3")
    assert python_blocks(page, only_marked=False) == [
        Block(2, "a = 1"),
        Block(12, "b = a + 1"),
        setup,
    ]
    assert python_blocks(page, only_marked=True) == [Block(12, "b = a + 1"), setup]
    assert script_of([Block(2, "a = 1"), Block(12, "b = a + 1")]).splitlines()[11] == "b = a + 1"


PAGES = sorted(p for p in DOCS.rglob("*.md"))
PAGE_BLOCKS = [
    (path, python_blocks(path.read_text(encoding="utf-8"), only_marked=False)) for path in PAGES
]
README_BLOCKS = python_blocks((ROOT / "README.md").read_text(encoding="utf-8"), only_marked=True)


@pytest.mark.parametrize(
    ("path", "blocks"),
    [
        pytest.param(path, blocks, id=str(path.relative_to(ROOT)))
        for path, blocks in [*PAGE_BLOCKS, (ROOT / "README.md", README_BLOCKS)]
        if blocks
    ],
)
def test_the_code_blocks_run_as_written(path: Path, blocks: list[Block], tmp_path: Path) -> None:
    """One process per page, its blocks in order, as a reader would paste them."""
    script = tmp_path / f"{path.stem}.py"
    script.write_text(script_of(blocks), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    where = f"{path.relative_to(ROOT)} (line numbers are the page's)"
    assert done.returncode == 0, f"{where}:\n{done.stdout}\n{done.stderr}"


def _environment(folder: Path) -> dict[str, str]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MIDWAY_", "PYTEST_")) and key != "COVERAGE_PROCESS_START"
    }
    environment["MIDWAY_STORE"] = f"sqlite:///{folder / 'state.db'}"
    return environment


def test_some_pages_have_code_to_run() -> None:
    assert sum(len(blocks) for _, blocks in PAGE_BLOCKS) >= 10
