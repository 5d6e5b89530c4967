"""A reader of POSIX shell syntax (with bash's extras) for the ``--shell`` check of ``midway each``.

It reads a script the way ``sh`` does, with every placeholder marked by :data:`HOLE`: quotes and
backslashes are removed from words, ``$(...)`` is read as a script of its own, and the result is
a flat list of simple commands. It raises :class:`Unsafe` where a quoted value would not stay
one plain word (inside quotes, backticks, ``${...}``, arithmetic, comments, heredocs, after a
backslash or ``$``) or where the script uses something it does not follow (functions, ``case``,
unbalanced quotes). What the commands then do with their words is for :mod:`midway.each.shellguard`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

HOLE = "\x00"  # no argv element can hold a NUL, so it cannot clash with the template's text
_BLANK = " \t"
_META = " \t\n;&|()<>"
_NAME_START = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"
_NAME = _NAME_START + "0123456789"
_SPECIAL = "@*#?-$!0123456789"
POSITIONAL = "@"  # the name :attr:`Word.refs` uses for $1, $@, $* and the like
_KEEP_START = frozenset(["!", "{", "if", "then", "else", "elif", "do", "while", "until"])
_KEEP_START |= {"fi", "done", "}", "coproc"}  # time is read as a program (time -p CMD)
_NOT_FOLLOWED = {"case": "a case statement", "function": "a function definition"}
_NOT_FOLLOWED |= {"select": "a select loop"}
_EVALUATES = re.compile(r"^!|[\[@$`]|:[^-=?+]")
_REDIRECTIONS = ("<<<", "<<-", "<<", ">>", "<&", ">&", "<>", ">|", "<", ">")


class Unsafe(Exception):
    """A placeholder at ``pos`` of the script sits where its value is not safe.

    ``kind`` is ``quote`` (the value's quoting would be read differently), ``code`` (the shell
    would run the value) or ``syntax`` (the script uses something the check does not follow)."""

    def __init__(self, pos: int, where: str, kind: str) -> None:
        super().__init__(where)
        self.pos = pos
        self.where = where
        self.kind = kind


@dataclass
class Word:
    """One word after quote removal: ``text`` holds :data:`HOLE` where a value goes."""

    start: int
    text: str = ""
    lead: str = ""  # the unquoted literal text it starts with (NAME= of an assignment)
    bare: str = ""  # its unquoted literal characters, for globs and braces
    hole_at: int | None = None  # the script position of its first placeholder
    quoted: bool = False
    dynamic: bool = False  # its text is known only when it runs: $x, $(...), `...`, globs
    shifts: bool = False  # it may expand to no word or several ($x unquoted, "$@", globs)
    refs: set[str] = field(default_factory=set)  # the variables it expands
    inner: list[Word] = field(default_factory=list)  # the words of its $(...) substitutions

    @property
    def hole(self) -> int | None:
        """The script position of a placeholder in it or in its substitutions, else None."""
        if self.hole_at is not None:
            return self.hole_at
        return next((word.hole for word in self.inner if word.hole is not None), None)


@dataclass
class Command:
    """A simple command: ``words`` are its name and arguments."""

    words: list[Word] = field(default_factory=list)
    assigns: list[tuple[str, Word]] = field(default_factory=list)  # NAME=value before it
    inputs: list[Word] = field(default_factory=list)  # files given to it with < or <>
    redirects: list[Word] = field(default_factory=list)  # every redirection's file
    pipeline: int = 0  # the pipeline it is part of, and its place there
    stage: int = 0


@dataclass
class Script:
    commands: list[Command] = field(default_factory=list)
    # where bash evaluates a variable's text as code: (( )), $(( )), [[ ]], ${a[i]}, ${!x} ...
    evaluating: list[int] = field(default_factory=list)


def read_script(text: str) -> Script:
    reader = _Reader(text)
    reader.read_list(None)
    return reader.script


class _Reader:
    def __init__(self, text: str) -> None:
        self.src = text
        self.pos = 0
        self.double = 0  # nesting of "..." around the reading point
        self.script = Script()
        self.pipelines = 0

    # -- helpers ----------------------------------------------------------------------------

    def peek(self, offset: int = 0) -> str:
        at = self.pos + offset
        return self.src[at] if at < len(self.src) else ""

    def refuse_holes(self, start: int, end: int, where: str, kind: str = "quote") -> None:
        hole = self.src.find(HOLE, start, end)
        if hole >= 0:
            raise Unsafe(hole, where, kind)

    def skip_blanks(self) -> None:
        while True:
            char = self.peek()
            if char in _BLANK and char:
                self.pos += 1
            elif char == "\\" and self.peek(1) == "\n":
                self.pos += 2
            elif char == "#":
                end = self.src.find("\n", self.pos)
                end = len(self.src) if end < 0 else end
                self.refuse_holes(self.pos, end, "in a # comment")
                self.pos = end
            else:
                return

    # -- lists and commands -------------------------------------------------------------------

    def read_list(self, closer: str | None) -> None:
        """Commands up to ``closer`` (``)``), or to the end; the closer is left unread."""
        self.pipelines += 1
        pipeline, stage = self.pipelines, 0
        while True:
            self.skip_blanks()
            char = self.peek()
            if not char:
                if closer:
                    raise Unsafe(len(self.src), "an unclosed ( or $(", "syntax")
                return
            if char == closer:
                return
            if char == ")":
                raise Unsafe(self.pos, "a ) that closes nothing", "syntax")
            if char == "|" and self.peek(1) != "|":
                self.pos += 2 if self.peek(1) == "&" else 1
                stage += 1
                continue
            if char in "\n;&|":
                self.pos += 2 if self.src.startswith(("&&", "||", ";;"), self.pos) else 1
                self.pipelines += 1
                pipeline, stage = self.pipelines, 0
                continue
            self.read_command(pipeline, stage)

    def read_command(self, pipeline: int, stage: int) -> None:
        command = Command(pipeline=pipeline, stage=stage)
        start = True
        while True:
            self.skip_blanks()
            char = self.peek()
            if not char or char in "\n;&|)":
                break
            if char == "(":
                if not start:
                    kind = (
                        "a function definition"
                        if len(command.words) == 1
                        else "a ( inside a command"
                    )
                    raise Unsafe(self.pos, kind, "syntax")
                if self.peek(1) == "(":
                    self.read_arithmetic(2)
                    continue
                self.pos += 1
                self.read_list(")")
                self.pos += 1
                continue
            if char in "<>":
                self.read_redirection(command)
                continue
            word = self.read_word()
            if word.text.isdigit() and not word.quoted and self.peek() in ("<", ">"):
                continue  # the file descriptor of a redirection
            if start and not word.quoted and not word.dynamic and not command.words:
                if word.text in _KEEP_START:
                    continue
                if word.text in _NOT_FOLLOWED:
                    raise Unsafe(word.start, _NOT_FOLLOWED[word.text], "syntax")
                if word.text == "[[":
                    self.read_condition(word.start)
                    continue
                if word.text == "for":
                    self.read_for(command)
                    continue
            name = _assigned(word) if start else None
            if name:
                command.assigns.append((name, word))
                if name.endswith("["):  # bash evaluates the subscript as arithmetic
                    self.script.evaluating.append(word.start)
                continue
            start = False
            command.words.append(word)
        self.script.commands.append(command)

    def read_for(self, command: Command) -> None:
        self.skip_blanks()
        name = self.read_word()
        if name.hole is not None:
            raise Unsafe(name.start, "as the variable of a for loop", "code")
        while True:
            self.skip_blanks()
            if not self.peek() or self.peek() in _META:
                return
            word = self.read_word()
            if word.text == "do" and not word.quoted:  # for x do ...: the body starts
                self.pos = word.start
                return
            if word.text != "in" or word.quoted:
                command.assigns.append((name.text, word))

    def read_condition(self, start: int) -> None:
        """``[[ ... ]]``: bash evaluates words of its arithmetic tests as code."""
        self.read_evaluating(
            start, "[[", "]]", "inside [[ ]], whose arithmetic tests evaluate words as code"
        )

    def read_evaluating(self, start: int, opener: str, closer: str, why: str) -> None:
        """From ``pos`` to ``closer``: a stretch the shell evaluates as code, where no
        placeholder may stand."""
        end = self.src.find(closer, self.pos)
        if end < 0:
            raise Unsafe(start, f"an unclosed {opener}", "syntax")
        self.refuse_holes(start, end, why)
        self.script.evaluating.append(start)
        self.pos = end + len(closer)

    def read_arithmetic(self, skip: int) -> None:
        """``((`` or ``$((`` at ``pos``: to the matching ``))``."""
        start = self.pos
        depth, self.pos = 2, self.pos + skip
        while depth:
            char = self.peek()
            if not char:
                raise Unsafe(start, "an unclosed ((", "syntax")
            depth += {"(": 1, ")": -1}.get(char, 0)
            self.pos += 1
        where = "inside (( )) arithmetic, which evaluates words as code"
        self.refuse_holes(start, self.pos, where)
        self.script.evaluating.append(start)

    def read_redirection(self, command: Command) -> None:
        operator = next(op for op in _REDIRECTIONS if self.src.startswith(op, self.pos))
        self.pos += len(operator)
        if operator.startswith("<<"):
            self.refuse_holes(0, len(self.src), "a << heredoc", "syntax")
        self.skip_blanks()
        if self.peek() == "(":  # bash's <(...) and >(...)
            self.pos += 1
            self.read_list(")")
            self.pos += 1
            return
        target = self.read_word()
        command.redirects.append(target)
        if operator in ("<", "<>"):
            command.inputs.append(target)

    # -- words --------------------------------------------------------------------------------

    def read_word(self) -> Word:
        word = Word(self.pos)
        lead = True
        while True:
            char = self.peek()
            if not char or char in _META:
                break
            if char == HOLE:
                if self.double:
                    raise Unsafe(self.pos, 'inside "..." quotes', "quote")
                word.text += HOLE
                if word.hole_at is None:
                    word.hole_at = self.pos
                self.pos += 1
            elif char == "\\":
                following = self.peek(1)
                if following == HOLE:
                    raise Unsafe(self.pos + 1, "right after a backslash", "quote")
                self.pos += 2
                if following != "\n":
                    word.text += following
                    word.quoted = True
            elif char == "'":
                word.text += self.read_single()
                word.quoted = True
            elif char == '"':
                self.read_double(word)
                word.quoted = True
            elif not self.read_expansion(word, char):
                word.text += char
                word.bare += char
                if lead:
                    word.lead += char
                self.pos += 1
                continue
            lead = False
        word.dynamic = word.dynamic or _expands(word.bare)
        word.shifts = word.shifts or _expands(word.bare)
        return word

    def read_expansion(self, word: Word, char: str) -> bool:
        """Read the command substitution or ``$`` expansion that starts at ``char`` into
        ``word`` (the same outside and inside double quotes); False when ``char`` starts
        neither."""
        if char == "`":
            self.read_backtick(word)
        elif char == "$":
            self.read_dollar(word)
        else:
            return False
        return True

    def read_single(self) -> str:
        end = self.src.find("'", self.pos + 1)
        if end < 0:
            raise Unsafe(self.pos, "an unclosed '", "syntax")
        self.refuse_holes(self.pos, end, "inside '...' quotes")
        text = self.src[self.pos + 1 : end]
        self.pos = end + 1
        return text

    def read_double(self, word: Word) -> None:
        start = self.pos
        self.pos += 1
        self.double += 1
        while True:
            char = self.peek()
            if not char:
                raise Unsafe(start, 'an unclosed "', "syntax")
            if char == '"':
                break
            if char == HOLE:
                raise Unsafe(self.pos, 'inside "..." quotes', "quote")
            if char == "\\" and self.peek(1) in ("$", "`", '"', "\\", "\n"):
                word.text += self.peek(1)
                self.pos += 2
            elif not self.read_expansion(word, char):
                word.text += char
                self.pos += 1
        self.double -= 1
        self.pos += 1

    def read_backtick(self, word: Word) -> None:
        start = self.pos
        end = self.pos + 1
        while end < len(self.src) and self.src[end] != "`":
            end += 2 if self.src[end] == "\\" else 1
        if end >= len(self.src):
            raise Unsafe(start, "an unclosed `", "syntax")
        self.refuse_holes(start, end, "inside `...` (use $(...) instead)")
        word.shifts = word.shifts or not self.double
        text = re.sub(r"\\([$`\\])", r"\1", self.src[start + 1 : end])  # as sh reads it
        inner = _Reader(text)
        inner.read_list(None)
        self.script.commands.extend(inner.script.commands)
        self.script.evaluating.extend(inner.script.evaluating)
        word.dynamic = True
        self.pos = end + 1

    def read_dollar(self, word: Word) -> None:
        start = self.pos
        following = self.peek(1)
        if following == HOLE:
            raise Unsafe(self.pos + 1, "right after a $", "quote")
        unquoted = not self.double and bool(following) and following in "({[" + _NAME + _SPECIAL
        word.shifts = word.shifts or unquoted or following == "@"
        word.dynamic = word.dynamic or (
            bool(following) and following in "({['\"" + _NAME + _SPECIAL
        )
        if self.src.startswith("$((", self.pos):
            self.read_arithmetic(3)
        elif following == "(":
            self.pos += 2
            first = len(self.script.commands)
            self.read_list(")")
            self.pos += 1
            for command in self.script.commands[first:]:
                word.inner.extend(command.words)
                word.inner.extend(value for _, value in command.assigns)
                word.inner.extend(command.redirects)
        elif following == "{":
            end = self.src.find("}", self.pos)
            if end < 0:
                raise Unsafe(start, "an unclosed ${", "syntax")
            self.refuse_holes(start, end, "inside ${...}")
            body = self.src[self.pos + 2 : end]
            word.refs.add(_name_of(body.lstrip("#!")))
            word.shifts = word.shifts or "@" in body  # "${@}", "${a[@]}"
            if _EVALUATES.search(body):  # ${a[i]}, ${s:i}, ${!x}, ${x@P}, ${x:-$(...)}
                self.script.evaluating.append(start)
            self.pos = end + 1
        elif following == "[":  # bash's old $[ arithmetic ]
            self.read_evaluating(
                start, "$[", "]", "inside $[ ] arithmetic, which evaluates words as code"
            )
        elif following == "'" and not self.double:  # bash's $'...'
            self.pos += 1
            word.text += self.read_single()
        elif following == '"' and not self.double:  # bash's $"..."
            self.pos += 1
            self.read_double(word)
        elif following and following in _NAME_START:
            end = self.pos + 1
            while end < len(self.src) and self.src[end] in _NAME:
                end += 1
            word.refs.add(self.src[self.pos + 1 : end])
            self.pos = end
        elif following and following in _SPECIAL:
            word.refs.add(_name_of(following))
            self.pos += 2
        else:
            word.text += "$"
            self.pos += 1


def _name_of(text: str) -> str:
    name = ""
    for char in text:
        if char not in _NAME:
            break
        name += char
    if not name or name[0].isdigit() or text[:1] in ("@", "*"):
        return POSITIONAL
    return name


def _assigned(word: Word) -> str | None:
    """The variable a NAME=value word assigns (``NAME[`` for an array element), else None."""
    head = word.lead.partition("=")[0] if "=" in word.lead else word.lead
    name = head.partition("[")[0].removesuffix("+")
    if not name or name[0] not in _NAME_START or any(c not in _NAME for c in name):
        return None
    if "[" in head and "=" in word.text:
        return name + "["
    return name if "=" in word.lead else None


def _expands(bare: str) -> bool:
    """Whether unquoted text is subject to pathname, tilde or (bash) brace expansion."""
    if "*" in bare or "?" in bare or bare.startswith("~"):
        return True
    if "[" in bare and "]" in bare.partition("[")[2]:
        return True
    return "{" in bare and ("," in bare or ".." in bare)
