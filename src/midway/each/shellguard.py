"""Where a record's value may go in a ``--shell`` command of ``midway each``.

The template is read as ``sh`` reads it (:mod:`midway.each.shellsyntax`: quotes removed, ``$(...)``
followed), and a value, which midway inserts ``shlex.quote``-d, may only be an argument of a
command that does not run its arguments as code. Refused: a value as the command itself; as an
argument of ``eval``, ``trap``, ``source``, ``sh -c`` and the like (also behind ``exec``,
``command``, ``env``, ``sudo``, ``timeout``, ``xargs`` ...); in a command whose name is an
expansion (``$E``, ``$(...)``); in a variable that is later run or evaluated; piped into a
shell; in ``PATH``, ``LD_PRELOAD`` and other variables that decide what code runs. The tables
are of the shells' own builtins and common programs; what other programs do with their
arguments (an ``ssh`` of one's own, a script doing ``sh -c "$1"``) stays the user's to check.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from midway.each.shellsyntax import HOLE, POSITIONAL, Command, Script, Unsafe, Word, read_script


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


RUNS_CODE = _names(
    "eval let trap alias source . fc watch su runuser ssh parallel complete compgen bind "
    "script enable"
)
NAMES_VARIABLES = _names("read unset getopts mapfile readarray wait")
DECLARES = _names("export declare typeset local readonly")
SHELLS = _names("sh bash dash zsh ksh ksh93 mksh ash yash posh rbash fish csh tcsh busybox")
_SHELL_VALUES = _names("-o +o -O +O --rcfile --init-file")
# interpreter: (options whose value is code, options that take a value)
INTERPRETERS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "python": (_names("-c -m"), _names("-W -X -Q")),
    "perl": (_names("-e -E -M -m"), _names("-I")),
    "ruby": (_names("-e -r"), _names("-I -C")),
    "node": (_names("-e --eval -p --print -r --require --import"), frozenset()),
    "php": (_names("-r"), _names("-d -c")),
    "lua": (_names("-e -l"), frozenset()),
    "Rscript": (_names("-e"), frozenset()),
    "awk": (_names("-e --source"), _names("-F -v -f --file")),
    "sed": (_names("-e --expression"), _names("-f --file -l")),
}
_ALIASES = {"nodejs": "node", "gawk": "awk", "mawk": "awk", "nawk": "awk", "gsed": "sed"}
_PROGRAM_FILES = {"awk": ("-f", "--file"), "sed": ("-f", "--file")}
# wrapper: (options that take a value, operands before the command it runs)
WRAPPERS: dict[str, tuple[frozenset[str], int]] = {
    "exec": (_names("-a"), 0),
    "command": (frozenset(), 0),
    "builtin": (frozenset(), 0),
    "nohup": (frozenset(), 0),
    "setsid": (frozenset(), 0),
    "unbuffer": (frozenset(), 0),
    "nice": (_names("-n --adjustment"), 0),
    "timeout": (_names("-s --signal -k --kill-after"), 1),
    "env": (_names("-u --unset -C --chdir"), 0),
    "sudo": (_names("-u -g -C -D -h -p -r -t -U -T -R --user --group --chdir"), 0),
    "doas": (_names("-u -C"), 0),
    "pkexec": (_names("--user"), 0),
    "stdbuf": (_names("-i -o -e"), 0),
    "ionice": (_names("-c -n -p -P -u --class --classdata"), 0),
    "chrt": (frozenset(), 1),
    "taskset": (frozenset(), 1),
    "chroot": (_names("--userspec --groups"), 1),
    "xargs": (_names("-I -n -L -P -s -d -E -a --arg-file --delimiter --max-args"), 0),
    "time": (_names("-f -o --format --output"), 0),
    "flock": (_names("-w -E --timeout"), 1),
    "strace": (_names("-o -e -p -s -u"), 0),
}
# options of a wrapper that hand the rest of its arguments to a shell
_WRAPPER_SHELLS = {
    "env": ("-S", "--split-string"),
    "flock": ("-c", "--command"),
    "sudo": ("-s", "-i", "--shell", "--login"),
}
# variables that decide what code runs: the shell's own, and the dynamic loader's
_SENSITIVE = _names(
    "PATH IFS ENV BASH_ENV CDPATH FPATH PS0 PS1 PS2 PS3 PS4 PROMPT_COMMAND SHELLOPTS BASHOPTS "
    "GLOBIGNORE HISTFILE"
)
_SENSITIVE_PREFIX = ("LD_", "DYLD_", "BASH_FUNC_")
_STDIN = ("-", "/dev/stdin", "/dev/fd/0", "/proc/self/fd/0")
_PYTHON = re.compile(r"python[0-9.]*|pypy[0-9.]*")


def check(script: Script, seed: frozenset[str] = frozenset(), stdin: bool = False) -> None:
    """Raise :class:`Unsafe` where a value would be run as code; see the module's text.

    For a script inside a script: ``seed`` names the variables that already hold a value,
    ``stdin`` says whether its input carries one."""
    _check_bash_evaluation(script)
    tainted = _tainted(script, seed, stdin)
    if tainted and script.evaluating:
        where = (
            "in a variable that bash evaluates as code where the script reads it ((( )), "
            "$(( )), [[ ]], an array subscript, ${!x}, ${x@P} ...)"
        )
        raise Unsafe(-1, where, "code")
    carries = _Carries(tainted, stdin)
    for command in script.commands:
        for name, value in command.assigns:
            _check_assignment(name, value, carries)
        if not command.words:
            continue
        head, args = command.words[0], command.words[1:]
        if carries(head):
            raise Unsafe(_at(head), "as the command itself, which would name the program", "code")
        if head.dynamic and (tainted or any(carries(arg) for arg in args)):
            where = "in a command whose name is itself an expansion ($E, $(...), `...`, a glob)"
            carried = [arg for arg in args if carries(arg)]
            raise Unsafe(_at(carried[0]) if carried else -1, where, "code")
        receives = _receives(command, script, carries)
        _check_run(_program(head), args, carries, receives)


def _check_bash_evaluation(script: Script) -> None:
    """Refuse aliases and ``declare -i``/``-n`` (code the check cannot follow); note names
    with subscripts given to builtins as places where bash evaluates variables."""
    for command in script.commands:
        if not command.words:
            continue
        name, args = _program(command.words[0]), command.words[1:]
        if name == "alias":
            raise Unsafe(-1, "an alias definition", "syntax")
        options = "".join(a.text for a in args if a.text.startswith(("-", "+")))
        if name in DECLARES and ("i" in options or "n" in options):
            raise Unsafe(-1, f"{name} -i or -n, whose variables bash evaluates as code", "syntax")
        if name in NAMES_VARIABLES | DECLARES | {"printf", "test", "["}:
            script.evaluating.extend(a.start for a in args if "[" in a.text)


class _Carries:
    """Whether a word holds a value: a placeholder, or a variable that was given one."""

    def __init__(self, tainted: set[str], stdin: bool = False) -> None:
        self.tainted = tainted
        self.stdin = stdin  # the script's own input holds a value

    def __call__(self, word: Word) -> bool:
        if word.hole is not None or word.refs & self.tainted:
            return True
        return any(self(inner) for inner in word.inner)


def _at(word: Word) -> int:
    return -1 if word.hole is None else word.hole


def _program(word: Word) -> str:
    name = word.text.rsplit("/", 1)[-1]
    if _PYTHON.fullmatch(name):
        return "python"
    return _ALIASES.get(name, name)


def _receives(command: Command, script: Script, carries: _Carries) -> bool:
    """Whether a value reaches the command's input: piped in, or a file it reads."""
    if any(carries(word) for word in command.inputs) or (carries.stdin and command.stage == 0):
        return True
    return any(
        other.pipeline == command.pipeline
        and other.stage < command.stage
        and any(map(carries, [*other.words, *other.redirects, *(v for _, v in other.assigns)]))
        for other in script.commands
    )


def _tainted(script: Script, seed: frozenset[str], stdin: bool) -> set[str]:
    """The variables that may hold a value, followed until nothing new is found."""
    tainted: set[str] = set(seed)
    while True:
        carries = _Carries(tainted, stdin)
        found = set(tainted)
        for command in script.commands:
            found |= {name.rstrip("[") for name, value in command.assigns if carries(value)}
            if not command.words:
                continue
            name, args = _program(command.words[0]), command.words[1:]
            if name in DECLARES or name == "env":
                found |= {
                    arg.lead.split("=")[0] for arg in args if "=" in arg.lead and carries(arg)
                }
            elif name == "set" and any(map(carries, args)):
                found.add(POSITIONAL)
            elif name == "printf" and len(args) > 1 and args[0].text == "-v":
                found |= {args[1].text} if any(map(carries, args[2:])) else set()
            elif name in ("read", "mapfile", "readarray") and _receives(command, script, carries):
                found |= {arg.text for arg in args if not arg.text.startswith("-")}
        if found == tainted:
            return tainted
        tainted = found


def _check_assignment(name: str, value: Word, carries: _Carries) -> None:
    if carries(value) and (name in _SENSITIVE or name.startswith(_SENSITIVE_PREFIX)):
        where = f"in {name}, which decides what code the shell or its programs run"
        raise Unsafe(_at(value), where, "code")


def _check_run(name: str, args: Sequence[Word], carries: _Carries, receives: bool) -> None:
    """The rules for the program ``name`` run with ``args``."""
    carried = [arg for arg in args if carries(arg)]
    first = _at(carried[0]) if carried else -1
    if name in RUNS_CODE and (carried or receives):
        raise Unsafe(first, f"as an argument of {name}, which runs its arguments as code", "code")
    if name in ("eval", "trap", "source", ".") and any(arg.shifts for arg in args):
        where = f"a glob or unquoted expansion as the code of {name} (a file name, known only then)"
        raise Unsafe(-1, where, "syntax")
    if name in ("eval", "trap") and carries.tainted:
        _check_inner(" ".join(arg.text for arg in args), carries.tainted, name, -1, False)
    if name in NAMES_VARIABLES and carried:
        where = f"as an argument of {name}, which takes variable names (bash evaluates an "
        raise Unsafe(first, where + "array subscript in a name as code)", "code")
    if name in DECLARES:
        for arg in carried:
            assigned = arg.lead.split("=")[0] if "=" in arg.lead else ""
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", assigned):
                where = f"in a name given to {name} (bash evaluates an array subscript as code)"
                raise Unsafe(_at(arg), where, "code")
            _check_assignment(assigned, arg, carries)
    elif name == "printf" and args and args[0].text == "-v" and carried:
        raise Unsafe(first, "in printf -v, whose variable's subscript bash evaluates", "code")
    elif name in ("test", "[") and carried and any(a.text in ("-v", "-R") for a in args):
        raise Unsafe(first, f"in {name} -v, whose variable's subscript bash evaluates", "code")
    if name in SHELLS | WRAPPERS.keys() | INTERPRETERS.keys():
        _check_shifts(name, args, carries)
    if name in SHELLS:
        _check_interpreter(name, args, carries, receives, frozenset(["-c"]), _SHELL_VALUES)
    elif name in INTERPRETERS:
        _check_interpreter(name, args, carries, receives, *INTERPRETERS[name])
    elif name in WRAPPERS:
        _check_wrapper(name, args, carries, receives)
    elif name == "find":
        _check_find(args, carries)


def _check_shifts(name: str, args: Sequence[Word], carries: _Carries) -> None:
    """A word that may expand to no word or several moves the words after it: a value after
    it could land where the program takes code (``sh -c $opts {}`` with $opts empty)."""
    for index, arg in enumerate(args):
        if arg.shifts:
            later = next((word for word in args[index + 1 :] if carries(word)), None)
            if later is not None:
                where = (
                    f"after a word of {name} that may expand to no word or several (quote it: "
                    f'"$x"), so the value could land where {name} takes code'
                )
                raise Unsafe(_at(later), where, "code")
            return


def _check_interpreter(
    name: str,
    args: Sequence[Word],
    carries: _Carries,
    receives: bool,
    code: frozenset[str],
    values: frozenset[str],
) -> None:
    """``sh -c CODE``, ``python -c CODE``, ``awk PROGRAM``, or a script file and its arguments."""
    index, shell_code, program_given = 0, False, False
    program_files = _PROGRAM_FILES.get(name, ())
    while index < len(args):
        arg, text = args[index], args[index].text
        if text == "--":
            index += 1
            break
        if not text.startswith(("-", "+")) or text in ("-", "+"):
            break
        if carries(arg):
            raise Unsafe(_at(arg), f"in an option of {name}", "code")
        following = args[index + 1] if index + 1 < len(args) else None
        option = next((o for o in code if text == o or _glued(text, o, name)), None)
        if option and name in SHELLS:
            shell_code = True
        elif option:
            if text == option and following is not None and carries(following):
                raise Unsafe(_at(following), f"as the code {name} {option} runs", "code")
            if not program_files:
                return  # python -c CODE ARGS...: the rest are the code's arguments
            program_given = True
            index += text == option
        elif text in values:
            if following is not None and carries(following) and text in program_files:
                raise Unsafe(_at(following), f"as the program file {name} {text} runs", "code")
            program_given = program_given or text in program_files
            index += 1
        index += 1
    operand = args[index] if index < len(args) else None
    if program_files:
        if not program_given and operand is not None and carries(operand):
            raise Unsafe(_at(operand), f"as the program {name} runs", "code")
        return
    if operand is not None and carries(operand):
        kind = "code" if shell_code else "script file"
        raise Unsafe(_at(operand), f"as the {kind} {name} runs", "code")
    if operand is not None and operand.shifts:
        kind = "code" if shell_code else "script file"
        where = (
            f"a glob or unquoted expansion as the {kind} {name} runs (a file name, known only then)"
        )
        raise Unsafe(-1, where, "syntax")
    rest = [arg for arg in args[index + 1 :] if carries(arg)]
    if operand is not None and shell_code and (rest or carries.tainted or receives):
        seed = carries.tainted | ({POSITIONAL} if rest else set())
        _check_inner(operand.text, seed, f"{name} -c", _at(rest[0]) if rest else -1, receives)
    if receives and not shell_code and (operand is None or operand.text in _STDIN):
        raise Unsafe(-1, f"in a pipe or file that {name} reads as its script", "code")


def _check_inner(code: str, seed: set[str], runner: str, pos: int, stdin: bool) -> None:
    """The code that ``eval`` or ``sh -c`` runs, where the ``seed`` variables hold a value."""
    try:
        check(read_script(code), frozenset(seed), stdin)
    except Unsafe as unsafe:
        where = f"in a variable or argument that {runner} uses {unsafe.where}"
        if unsafe.kind == "syntax":
            where = f"in a variable or argument given to {runner} code that uses {unsafe.where}"
        raise Unsafe(pos, where, "code") from None


def _glued(text: str, option: str, name: str) -> bool:
    """``-ec`` for ``-e -c`` in a shell; ``-cCODE`` for ``-c CODE`` elsewhere."""
    if name in SHELLS:
        return len(option) == 2 and not text.startswith("--") and option[1] in text[1:]
    return len(option) == 2 and text.startswith(option) and len(text) > 2


def _check_wrapper(name: str, args: Sequence[Word], carries: _Carries, receives: bool) -> None:
    """``sudo -u x CMD ARGS``: the wrapper's own words hold no value; then CMD's rules."""
    values, operands = WRAPPERS[name]
    index = 0
    while index < len(args):
        arg, text = args[index], args[index].text
        # NAME=value: env's, or bash's after its time keyword; a program so named is unlikely
        if re.match(r"[A-Za-z_][A-Za-z0-9_]*=", arg.lead):
            _check_assignment(arg.lead.split("=")[0], arg, carries)
            index += 1
            continue
        if carries(arg):
            where = f"in the words of {name} before the command it runs"
            raise Unsafe(_at(arg), where, "code")
        if text in _WRAPPER_SHELLS.get(name, ()) and (any(map(carries, args)) or receives):
            raise Unsafe(-1, f"after {name} {text}, which hands it to a shell", "code")
        if text == "--":
            index += 1
            break
        if text in values:
            index += 2
            continue
        if not text.startswith("-") or text == "-":
            if not operands:
                break
            operands -= 1
        index += 1
    if index >= len(args):
        return
    rest = list(args[index + 1 :])
    if name == "xargs" and receives:
        replace = any(a.text.startswith(("-I", "-i", "--replace")) for a in args[:index])
        carrier = Word(-1, HOLE, hole_at=-1)
        rest = [carrier] * len(rest) if replace else [*rest, carrier]
    if carries(args[index]):
        raise Unsafe(_at(args[index]), f"as the command {name} runs", "code")
    if args[index].dynamic and any(map(carries, rest)):
        raise Unsafe(_at(rest[0]), f"in a command run by {name} whose name is an expansion", "code")
    _check_run(_program(args[index]), rest, carries, receives and name != "xargs")


def _check_find(args: Sequence[Word], carries: _Carries) -> None:
    """``find ... -exec CMD ARGS ;``: CMD's rules for its arguments."""
    for index, arg in enumerate(args):
        if arg.text in ("-exec", "-execdir", "-ok", "-okdir") and index + 1 < len(args):
            end = next(
                (i for i in range(index + 1, len(args)) if args[i].text in (";", "+")), len(args)
            )
            command = args[index + 1 : end]
            if command and carries(command[0]):
                raise Unsafe(_at(command[0]), "as the command find -exec runs", "code")
            if command and command[0].shifts and any(map(carries, command)):
                where = "in a command run by find -exec whose name is an expansion"
                raise Unsafe(-1, where, "code")
            if command:
                _check_run(_program(command[0]), command[1:], carries, False)
