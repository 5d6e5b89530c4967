"""Writes the command-line reference from the click commands themselves.

A page holding the line ``<!-- cli-reference -->`` gets, in its place, a section per
``midway`` command: what its ``--help`` says, its usage line, its arguments and every option
with what it means. tests/test_docs.py checks that every command and option is there.
"""

from __future__ import annotations

import html
import inspect
from typing import Any

import click

MARKER = "<!-- cli-reference -->"


def on_page_markdown(markdown: str, **_: Any) -> str:
    """The mkdocs hook: expand the marker, leave every other page as it is."""
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, cli_reference())


def cli_reference() -> str:
    """The whole reference, in Markdown: the group, then each command in name order."""
    from midway.cli.app import cli

    root = click.Context(cli, info_name="midway")
    return "\n".join(_command_sections(cli, root, level=2))


def _command_sections(command: click.Command, ctx: click.Context, level: int) -> list[str]:
    lines = _section(command, ctx, level)
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            sub_ctx = click.Context(sub, info_name=name, parent=ctx)
            lines += _command_sections(sub, sub_ctx, level + 1)
    return lines


def _section(command: click.Command, ctx: click.Context, level: int) -> list[str]:
    path = ctx.command_path
    lines = [f"{'#' * level} `{path}` {{ #{anchor(path)} }}", ""]
    lines += _help_markdown(command.help or "")
    usage = " ".join([path, *command.collect_usage_pieces(ctx)])
    lines += ["**Usage:**", "", "```text", usage, "```", ""]
    arguments = [p for p in command.get_params(ctx) if isinstance(p, click.Argument)]
    if arguments:
        lines += ["**Arguments:** " + ", ".join(f"`{a.make_metavar(ctx)}`" for a in arguments), ""]
    lines += _options_table(command, ctx)
    return lines


def anchor(command_path: str) -> str:
    """``midway each`` -> ``midway-each``: the id of the command's heading."""
    return command_path.replace(" ", "-")


def _help_markdown(text: str) -> list[str]:
    """click's help text as Markdown: a ``\\b`` paragraph (kept as written) is a code block."""
    lines: list[str] = []
    for paragraph in inspect.cleandoc(text).split("\n\n"):
        if paragraph.startswith("\b"):
            lines += ["```text", paragraph.removeprefix("\b").strip("\n"), "```", ""]
        else:
            lines += [_escape(" ".join(paragraph.split())), ""]
    return lines


def _options_table(command: click.Command, ctx: click.Context) -> list[str]:
    records = [
        record
        for param in command.get_params(ctx)
        if isinstance(param, click.Option) and (record := param.get_help_record(ctx))
    ]
    if not records:
        return []
    lines = ["**Options:**", "", "| option | meaning |", "|---|---|"]
    lines += [f"| `{_cell(names)}` | {_cell(_escape(meaning))} |" for names, meaning in records]
    return [*lines, ""]


def _escape(text: str) -> str:
    """Help text is plain text: nothing in it may turn into HTML or emphasis."""
    return html.escape(text, quote=False).replace("*", "\\*").replace("_", "\\_")


def _cell(text: str) -> str:
    return text.replace("|", "\\|")
