"""Command templates for ``midway each``: ``{}`` and ``{field}`` placeholders.

A template is the command's argv with placeholders in any element: ``{}`` is the whole record,
``{name}`` one field of it, ``{{`` and ``}}`` are literal braces. Without ``--shell`` each
element stays one argument, whatever the values hold, and no shell ever sees them. With
``--shell`` the elements are joined by spaces into one script for ``/bin/sh -c`` and every
value is quoted with :func:`shlex.quote`. A quoted value is one safe word only where the shell
reads it as a plain word, so :func:`check_shell_safe` refuses a placeholder in any place where
the shell would read the quoting differently (inside quotes, backticks, comments, heredocs,
after a backslash or ``$``) or evaluate the word as code again (arithmetic, ``[[ ]]``,
``eval``, ``let``).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from midway.errors import ConfigError


class TemplateError(ConfigError):
    """A command template that cannot be used: unbalanced braces, or an unsafe placeholder."""


@dataclass(frozen=True)
class Field:
    """A placeholder: ``name`` is None for ``{}`` (the whole record)."""

    name: str | None

    def __str__(self) -> str:
        return "{" + (self.name or "") + "}"


Part = str | Field
Lookup = Callable[[Field], str]


@dataclass(frozen=True)
class Template:
    """The command's argv, each element a tuple of literal text and placeholders."""

    elements: tuple[tuple[Part, ...], ...]

    @property
    def fields(self) -> list[str]:
        """The named fields used, in order of first use."""
        seen: dict[str, None] = {}
        for element in self.elements:
            for part in element:
                if isinstance(part, Field) and part.name is not None:
                    seen.setdefault(part.name)
        return list(seen)

    @property
    def has_placeholders(self) -> bool:
        return any(isinstance(part, Field) for element in self.elements for part in element)

    def literal_head(self) -> str | None:
        """The program's name when the first element holds no placeholder, else None."""
        first = self.elements[0] if self.elements else ()
        if any(isinstance(part, Field) for part in first):
            return None
        return "".join(part for part in first if isinstance(part, str))

    def argv(self, lookup: Lookup) -> list[str]:
        """One argument per element, values inserted as they are."""
        return ["".join(_render(element, lookup)) for element in self.elements]

    def shell(self, lookup: Lookup) -> str:
        """One ``sh -c`` script: elements joined by spaces, every value shell-quoted."""
        return " ".join(
            "".join(_render(element, lambda field: shlex.quote(lookup(field))))
            for element in self.elements
        )

    def shell_parts(self) -> list[Part]:
        """The script as ``shell`` builds it, with its placeholders still in place."""
        parts: list[Part] = []
        for index, element in enumerate(self.elements):
            if index:
                parts.append(" ")
            parts.extend(element)
        return parts


def _render(element: tuple[Part, ...], lookup: Lookup) -> Iterable[str]:
    for part in element:
        yield part if isinstance(part, str) else lookup(part)


def parse(argv: list[str]) -> Template:
    """Parse each argv element; a lone ``{`` or ``}`` is an error naming the element."""
    if not argv:
        raise TemplateError("no command given: put it after --, e.g. midway each ... -- echo {}")
    return Template(tuple(parse_element(element) for element in argv))


def parse_element(text: str) -> tuple[Part, ...]:
    parts: list[Part] = []
    literal: list[str] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == "{" and text.startswith("{{", i):
            literal.append("{")
            i += 2
        elif char == "}" and text.startswith("}}", i):
            literal.append("}")
            i += 2
        elif char == "{":
            end = text.find("}", i + 1)
            inner = text[i + 1 : end] if end >= 0 else ""
            if end < 0 or "{" in inner:
                raise TemplateError(
                    f"unclosed {{ in the command argument {text!r}: a placeholder is {{}} or "
                    "{field}; write {{ for a literal {"
                )
            if inner.strip() != inner or (inner == "" and end != i + 1):
                raise TemplateError(f"placeholder {{{inner}}} in {text!r} has stray spaces")
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(Field(inner or None))
            i = end + 1
        elif char == "}":
            raise TemplateError(
                f"a lone }} in the command argument {text!r}: write }}}} for a literal }}"
            )
        else:
            literal.append(char)
            i += 1
    if literal:
        parts.append("".join(literal))
    return tuple(parts)


# -- the shell-safety check ---------------------------------------------------------------

_WORD_END = frozenset(" \t\n;&|()<>")
_EVAL_WORDS = re.compile(r"(?:^|[\s;&|(])(eval|let)(?=\s)")
_USE_ENV = "pass such values with --env (as $MIDWAY_FIELD_...) or --stdin instead"


def check_shell_safe(template: Template) -> None:
    """Refuse placeholders where a ``shlex.quote``-d value would not be one plain word.

    A small scanner of POSIX shell syntax: it follows quotes, backslashes, backticks,
    comments and heredocs through the literal text, and looks at the state each placeholder
    lands in. It is deliberately strict: a refusal names the place and the way out."""
    scanner = _Scanner()
    for part in template.shell_parts():
        if isinstance(part, str):
            scanner.feed(part)
            continue
        where = scanner.unsafe_place()
        if where:
            raise TemplateError(
                f"placeholder {part} sits {where} in the --shell command, where a quoted value "
                "would not stay one plain word (a hostile value could run commands). --shell "
                f"quotes every value for you: write {part} bare, outside quotes; or {_USE_ENV}."
            )
        scanner.value()


class _Scanner:
    def __init__(self) -> None:
        self.state = "plain"  # plain, single, double, backtick, comment
        self.escaped = False
        self.heredoc = False
        self.word_start = True
        self.after_dollar = False
        self.arith = 0  # unclosed (( of arithmetic
        self.cond = 0  # unclosed [[
        self.evaluates = False  # an eval or let word was seen
        self.plain_text: list[str] = []  # the text read in the plain state, for word checks

    def feed(self, text: str) -> None:
        for char in text:
            self._char(char)

    def value(self) -> None:
        """A quoted value was inserted here: a plain word, in the plain state."""
        self.word_start = False
        self.after_dollar = False
        self.escaped = False
        self.plain_text.append("x")

    def unsafe_place(self) -> str:
        if self.state == "single":
            return "inside '...' quotes"
        if self.state == "double":
            return 'inside "..." quotes'
        if self.state == "backtick":
            return "inside `...` (use $(...) instead)"
        if self.state == "comment":
            return "in a # comment"
        if self.escaped:
            return "right after a backslash"
        if self.after_dollar:
            return "right after a $"
        if self.heredoc:
            return "after a << heredoc"
        if self.arith > 0:
            return "inside (( )) arithmetic, which evaluates words as code"
        if self.cond > 0:
            return "inside [[ ]], whose arithmetic tests evaluate words as code"
        if self.evaluates or _EVAL_WORDS.search("".join(self.plain_text)):
            self.evaluates = True
            return "in a command with eval or let, which run their words as code"
        return ""

    def _char(self, char: str) -> None:
        state = self.state
        if state == "single":
            if char == "'":
                self.state = "plain"
            return
        if state == "comment":
            if char == "\n":
                self.state = "plain"
                self.word_start = True
            return
        if self.escaped:
            self.escaped = False
            if state == "plain":
                self.plain_text.append("_")
                self.word_start = False
            return
        if char == "\\":
            self.escaped = True
            self.after_dollar = False
            return
        if state == "double":
            if char == '"':
                self.state = "plain"
            return
        if state == "backtick":
            if char == "`":
                self.state = "plain"
            return
        # the plain state
        self.plain_text.append(char)
        text = "".join(self.plain_text[-3:])
        if char == "'":
            self.state = "single"
        elif char == '"':
            self.state = "double"
        elif char == "`":
            self.state = "backtick"
        elif char == "#" and self.word_start:
            self.state = "comment"
        elif text.endswith("<<"):  # a heredoc; or bash's <<< here-string, which dash lacks
            self.heredoc = True
        elif text.endswith("(("):
            self.arith += 1
            self.plain_text.append(" ")  # so that ((( counts once per pair
        elif text.endswith("))") and self.arith:
            self.arith -= 1
            self.plain_text.append(" ")
        elif text.endswith("[[") and self.word_start_before(2):
            self.cond += 1
        elif text.endswith("]]") and self.cond:
            self.cond -= 1
        self.after_dollar = char == "$"
        self.word_start = char in _WORD_END

    def word_start_before(self, length: int) -> bool:
        """Whether the last ``length`` plain characters began a word."""
        before = self.plain_text[-length - 1] if len(self.plain_text) > length else " "
        return before in _WORD_END
