"""Command templates for ``midway each``: ``{}`` and ``{field}`` placeholders.

A template is the command's argv with placeholders in any element: ``{}`` is the whole record,
``{name}`` one field of it, ``{{`` and ``}}`` are literal braces. Without ``--shell`` each
element stays one argument, whatever the values hold, and no shell ever sees them. With
``--shell`` the elements are joined by spaces into one script for ``/bin/sh -c`` and every
value is quoted with :func:`shlex.quote`. A quoted value is one safe word only where the shell
reads it as a plain argument, so :func:`check_shell_safe` reads the script as the shell does
and refuses a placeholder anywhere else (see :mod:`midway.each.shellguard`).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterable, Sequence
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
        return " ".join(self.argv(_quoting(lookup)))

    def argv_per_record(self, lookups: Sequence[Lookup]) -> list[str]:
        """``--batch``: an element with a placeholder becomes one argument per record (its
        literal text repeated with each, as GNU parallel's ``-X``); the others stay one."""
        argv: list[str] = []
        for element in self.elements:
            if any(isinstance(part, Field) for part in element):
                argv.extend("".join(_render(element, lookup)) for lookup in lookups)
            else:
                argv.append("".join(_render(element, lookups[0])))
        return argv

    def shell_per_record(self, lookups: Sequence[Lookup]) -> str:
        """``--batch`` with ``--shell``: :meth:`argv_per_record`'s words, values quoted."""
        quoted = [_quoting(lookup) for lookup in lookups]
        return " ".join(self.argv_per_record(quoted))

    def shell_parts(self) -> list[Part]:
        """The script as ``shell`` builds it, with its placeholders still in place."""
        parts: list[Part] = []
        for index, element in enumerate(self.elements):
            if index:
                parts.append(" ")
            parts.extend(element)
        return parts


def _quoting(lookup: Lookup) -> Lookup:
    return lambda field: shlex.quote(lookup(field))


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

_USE_ENV = "pass such values with --env (as $MIDWAY_FIELD_...) or --stdin instead"
_TAILS = {
    "quote": "where a quoted value would not stay one plain word (a hostile value could run "
    "commands). --shell quotes every value for you: write {part} bare, outside quotes; or "
    + _USE_ENV,
    "code": "a hostile value could run any command. Give values only as arguments of "
    "commands that do not run them; or " + _USE_ENV + ", to a script that checks them",
    "syntax": "which midway does not follow to check where {part} goes (a hostile value "
    "could run commands). Put that logic in a script file that takes the values as its "
    "arguments; or " + _USE_ENV,
}


def check_shell_safe(template: Template) -> None:
    """Refuse placeholders where the shell would not take a ``shlex.quote``-d value as one
    plain argument (see :mod:`midway.each.shellguard`). A template without placeholders puts no
    value in the script and is not checked."""
    from midway.each import shellguard, shellsyntax

    parts = template.shell_parts()
    fields = [part for part in parts if isinstance(part, Field)]
    if not fields:
        return
    if any(isinstance(part, str) and shellsyntax.HOLE in part for part in parts):
        raise TemplateError("a --shell command cannot hold a NUL character")
    script = "".join(shellsyntax.HOLE if isinstance(part, Field) else part for part in parts)
    try:
        shellguard.check(shellsyntax.read_script(script))
    except shellsyntax.Unsafe as unsafe:
        before = script.count(shellsyntax.HOLE, 0, unsafe.pos) if unsafe.pos >= 0 else 0
        part = fields[min(before, len(fields) - 1)]
        tail = _TAILS[unsafe.kind].format(part=part)
        if unsafe.kind == "syntax":
            message = f"the --shell command uses {unsafe.where}, {tail}."
        elif unsafe.kind == "code":
            message = f"placeholder {part} in the --shell command sits {unsafe.where}: {tail}."
        else:
            message = f"placeholder {part} sits {unsafe.where} in the --shell command, {tail}."
        raise TemplateError(message) from None
