"""The ``--shell`` guard of ``midway each``: a value is refused wherever the shell would run it.

Each refused template is first shown to be dangerous: rendered with a hostile value, exactly as
``--shell`` renders it (every value ``shlex.quote``-d), it runs that value as code in a real
shell. Then the check must refuse it, before any record runs. Legitimate templates still pass,
and run hostile values as plain data."""

from __future__ import annotations

import contextlib
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from midway.each import placeholders
from midway.each.placeholders import TemplateError

TOUCH = "touch pwned"
SUBSCRIPT = "a[$(touch pwned)]"  # bash evaluates an array subscript found in a variable name

# (template, hostile value, the shell that shows the value running, a phrase of the refusal)
DEMONSTRATED = [
    # the bypasses found in review
    ('"eval" {}', TOUCH, "sh", "argument of eval"),
    ("e\\val {}", TOUCH, "sh", "argument of eval"),
    ("ev''al {}", TOUCH, "sh", "argument of eval"),
    ("$(echo eval) {}", TOUCH, "sh", "name is itself an expansion"),
    ("E=eval; $E {}", TOUCH, "sh", "name is itself an expansion"),
    ("trap {} EXIT", TOUCH, "sh", "argument of trap"),
    # variations: other spellings of a command that is an expansion
    ("`echo eval` {}", TOUCH, "sh", "name is itself an expansion"),
    ('E=eval; "$E" {}', TOUCH, "sh", "name is itself an expansion"),
    ("${{E:-eval}} {}", TOUCH, "sh", "name is itself an expansion"),
    ("?val {}", TOUCH, "sh", "name is itself an expansion"),  # a file named eval is here
    ("x=$(printf %s {}); $x", TOUCH, "sh", "as the command itself"),
    ("{} --version", "evil/ls", "sh", "as the command itself"),
    ("true; {}", "evil/ls", "sh", "as the command itself"),
    ("if {}; then :; fi", "evil/ls", "sh", "as the command itself"),
    # wrappers and builtins that run their arguments
    ("command eval {}", TOUCH, "sh", "argument of eval"),
    ("builtin eval {}", TOUCH, "bash", "argument of eval"),
    ("exec sh -c {}", TOUCH, "sh", "code sh runs"),
    ("env sh -c {}", TOUCH, "sh", "code sh runs"),
    ("env A=1 /bin/sh -ec {}", TOUCH, "sh", "code sh runs"),
    ("timeout 5 bash -c {}", TOUCH, "sh", "code bash runs"),
    ("nice -n 1 sh -c {}", TOUCH, "sh", "code sh runs"),
    ("find . -maxdepth 0 -exec sh -c {} ';'", TOUCH, "sh", "code sh runs"),
    ("python3 -c {}", "open('pwned', 'w')", "sh", "code python -c runs"),
    ("awk {} /dev/null", 'BEGIN { system("touch pwned") }', "sh", "program awk runs"),
    # the value kept in a variable or handed on, then run
    ('x={}; eval "$x"', TOUCH, "sh", "argument of eval"),
    ("x={}; eval 'eval $x'", TOUCH, "sh", "argument of eval"),
    ('set -- {}; eval "$1"', TOUCH, "sh", "argument of eval"),
    ("set -- {}; eval 'eval \"$1\"'", TOUCH, "sh", "eval uses as an argument of eval"),
    ('for x in {}; do eval "$x"; done', TOUCH, "sh", "argument of eval"),
    ("sh -c 'eval \"$1\"' _ {}", TOUCH, "sh", "sh -c uses as an argument of eval"),
    ("x={} sh -c 'eval \"$x\"'", TOUCH, "sh", "sh -c uses as an argument of eval"),
    ("PATH={}; ls", "evil", "sh", "in PATH"),
    ("PATH={} ls", "evil", "bash", "in PATH"),
    # the value piped into something that runs its input
    ("printf '%s\\n' {} | sh", TOUCH, "sh", "sh reads as its script"),
    ("printf '%s\\n' {} | bash -s", TOUCH, "sh", "bash reads as its script"),
    ("printf %s {} | xargs -0 sh -c", TOUCH, "sh", "code sh runs"),
    ("printf '%s\\n' {} | while read -r l; do eval \"$l\"; done", TOUCH, "sh", "argument of eval"),
    # bash evaluates array subscripts in names (when /bin/sh is bash, as on some systems)
    ("declare {}=1", SUBSCRIPT, "bash", "name given to declare"),
    ("printf -v {} x", SUBSCRIPT, "bash", "printf -v"),
    ("x={}; echo $((x))", SUBSCRIPT, "bash", "evaluates as code"),
    ("x={}; [[ $x -eq 1 ]]", SUBSCRIPT, "bash", "evaluates as code"),
    ("s=abc; x={}; echo ${{s:x}}", SUBSCRIPT, "bash", "evaluates as code"),
    ("x={}; echo ${{!x}}", SUBSCRIPT, "bash", "evaluates as code"),
    ("x={}; echo ${{x@P}}", "$(touch pwned)", "bash", "evaluates as code"),
    ("x={}; echo $[x]", SUBSCRIPT, "bash", "evaluates as code"),
    ("x={}; a[x]=1", SUBSCRIPT, "bash", "evaluates as code"),
    ("y={}; echo ${{x:-$(eval $y)}}", TOUCH, "sh", "evaluates as code"),
    ("declare -i x; x={}", SUBSCRIPT, "bash", "declare -i or -n"),
    ('declare -n r={}; echo "$r"', SUBSCRIPT, "bash", "declare -i or -n"),
    # a word that expands to nothing moves the value into the code's place
    ("sh -c $y {}", TOUCH, "sh", "may expand to no word"),
    ('set --; sh -c "$@" {}', TOUCH, "sh", "may expand to no word"),
    ("python3 -c $y {}", "open('pwned', 'w')", "sh", "may expand to no word"),
    ("env $y sh -c {}", TOUCH, "sh", "may expand to no word"),
    ("find . -maxdepth 0 -exec $y sh -c {} ';'", TOUCH, "sh", "find -exec"),
    ("x={}; $e declare a[x]=1", SUBSCRIPT, "bash", "name is itself an expansion"),
    # more ways of reaching a command: keywords, process substitution, backticks
    ("time -p eval {}", TOUCH, "bash", "argument of eval"),
    ("time e=1 eval {}", TOUCH, "bash", "argument of eval"),
    ("{{ eval {}; }}", TOUCH, "sh", "argument of eval"),
    ("set -- a; for x do eval {}; done", TOUCH, "sh", "argument of eval"),
    ("cat <(eval {})", TOUCH, "bash", "argument of eval"),
    ("x={}; `\\$x`", TOUCH, "sh", "as the command itself"),
    ("printf '%s\\n' {} | bash /dev/stdin", TOUCH, "sh", "bash reads as its script"),
    ("printf '%s\\n' {} | sh -c 'sh'", TOUCH, "sh", "sh reads as its script"),
]

# refused too; showing them run needs more than a shell (a network, a second user)
REFUSED = [
    ("ssh localhost ls {}", "argument of ssh"),
    ("sudo -u root sh -c {}", "code sh runs"),
    ("source {}", "argument of source"),
    (". {}", "argument of ."),
    ("alias e=eval\ne {}", "alias"),
    ('f() {{ eval "$1"; }}; f {}', "function definition"),
    ("case {} in a) ;; esac", "case statement"),
    ("cat <<EOF\n{}\nEOF", "heredoc"),
    ("read {}", "argument of read"),
    ("LD_PRELOAD={} ls", "in LD_PRELOAD"),
    ("export PATH={}", "in PATH"),
    ("a[1]={}", "evaluates as code"),
    ("sh {}", "script file sh runs"),
    ("sh < {}", "sh reads as its script"),
    ("env -S {}", "env -S"),
    ("xargs {}", "words of xargs"),
    ("sed {} file.txt", "program sed runs"),
    ("sed -e {} file.txt", "code sed -e runs"),
    ("python3 -m {}", "code python -m runs"),
    ("touch {}; sh -c *", "glob or unquoted expansion as the code sh runs"),  # a file name
    ("touch {}; eval *", "glob or unquoted expansion as the code of eval"),
    ('echo "{}"', 'inside "..." quotes'),
    ("echo '{}'", "inside '...' quotes"),
    ('echo "$(echo {})"', 'inside "..." quotes'),
    ("echo ${{x:-{}}}", "inside ${...}"),
]

# legitimate templates; each prints the value exactly once, whatever it holds
LEGITIMATE = [
    "printf %s {}",
    "printf %s {} | cat",
    'x={}; printf %s "$x"',
    "sh -c 'printf %s \"$1\"' _ {}",
    "env A=1 printf %s {}",
    "timeout 5 printf %s {}",
    "command printf %s {}",
    "nice -n 1 printf %s {}",
    "if true; then printf %s {}; fi",
    "(cd . && printf %s {})",
    "printf %s {} | xargs -0 printf %s",
    'export X={}; printf %s "$X"',
    "[ -n {} ] || [ -z {} ]; printf %s {}",
    "true && printf %s {} >> out.txt; cat out.txt",
]
HOSTILE = [TOUCH, "$(touch pwned)", "`touch pwned`", "'; touch pwned; '", "a\ntouch pwned", "-n"]


def render(template: str, value: str) -> str:
    return placeholders.parse([template]).shell(lambda field: value)


def plant(folder: Path) -> None:
    """A file named eval (for the glob) and a program evil/ls that leaves a mark."""
    (folder / "eval").write_text("")
    evil = folder / "evil"
    evil.mkdir()
    (evil / "ls").write_text("#!/bin/sh\n: > pwned\n")  # no touch on a PATH of evil alone
    (evil / "ls").chmod(0o755)


@pytest.mark.parametrize(("template", "value", "shell", "phrase"), DEMONSTRATED)
def test_a_template_that_runs_the_value_is_refused(
    tmp_path: Path, template: str, value: str, shell: str, phrase: str
) -> None:
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    plant(tmp_path)
    script = render(template, value)
    subprocess.run([shell, "-c", script], capture_output=True, check=False, timeout=30)
    assert (tmp_path / "pwned").exists(), f"{script!r} did not run the value: not a bypass"
    with pytest.raises(TemplateError) as info:
        placeholders.check_shell_safe(placeholders.parse([template]))
    assert phrase in str(info.value)
    assert "{}" in str(info.value), "the refusal names the placeholder"
    assert "--env" in str(info.value), "the refusal says what to do instead"


@pytest.mark.parametrize(("template", "phrase"), REFUSED)
def test_other_places_that_run_the_value_are_refused(template: str, phrase: str) -> None:
    with pytest.raises(TemplateError) as info:
        placeholders.check_shell_safe(placeholders.parse([template]))
    assert phrase in str(info.value)
    assert "--env" in str(info.value)


@pytest.mark.parametrize("template", LEGITIMATE)
def test_legitimate_templates_pass_and_keep_values_plain(tmp_path: Path, template: str) -> None:
    placeholders.check_shell_safe(placeholders.parse([template]))
    for value in HOSTILE:
        (tmp_path / "out.txt").unlink(missing_ok=True)
        done = subprocess.run(
            ["/bin/sh", "-c", render(template, value)], capture_output=True, check=False
        )
        assert done.stdout.decode() == value, (template, value, done.stderr)
        assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize(
    "template", ["grep -c x {} | wc -l", "cp {} /tmp/out/ && echo done", "wc -c {} >> sizes.txt"]
)
def test_common_templates_pass(template: str) -> None:
    placeholders.check_shell_safe(placeholders.parse([template]))


def test_the_command_line_refuses_before_any_record_runs(tmp_path: Path) -> None:
    plant(tmp_path)
    source = tmp_path / "in.txt"
    source.write_text(f"{TOUCH}\necho second\n")
    store = tmp_path / "state.db"
    for command in (["E=eval;", "$E", "{}"], ["trap {} EXIT"], ['"eval"', "{}"]):
        args = [sys.executable, "-m", "midway", "each", "job", "--input", str(source)]
        args += ["--store", f"sqlite:///{store}", "--shell", "--", *command]
        done = subprocess.run(args, capture_output=True, text=True, check=False, timeout=60)
        assert done.returncode == 2, done.stderr
        assert "placeholder {}" in done.stderr
        assert "--env" in done.stderr
        assert "Traceback" not in done.stderr
        assert not (tmp_path / "pwned").exists()
        assert not store.exists(), "nothing was written before the refusal"


# The words a generated template is made of (separated by ¦): commands, wrappers, quoting,
# expansions.
def _pieces(text: str) -> list[str]:
    return text.split("¦")


PIECES = _pieces(
    '{}¦echo¦eval¦sh¦bash¦-c¦\'¦"¦`¦$(¦)¦$¦;¦|¦&&¦\n¦<¦>¦x={}¦$x¦"$x"¦\\¦for x in¦do¦done¦if¦'
    'then¦fi¦env¦xargs¦-0¦time¦-p¦command¦exec¦printf¦%s¦set --¦"$1"¦$1¦$@¦_¦read¦-r¦y¦$y¦'
    "while¦trap¦EXIT¦cat¦x=$(printf %s {})¦{{¦}}¦E=eval¦$E¦true¦!¦declare¦-n¦-i¦${{!x}}¦"
    "$((x))¦[[¦]]¦a[x]=1¦${{x@P}}¦printf -v¦local¦export¦find . -maxdepth 0 -exec¦\\;¦"
    "'eval \"$1\"'¦eval\\ ¦ev\\al¦'ev'al¦`echo eval`¦xargs -0 sh -c¦python3 -c¦awk¦nice¦"
    'timeout 1¦source¦.¦/dev/stdin¦-s¦<(¦$[x]¦$(eval¦"$("'
)


def test_generated_templates_that_pass_never_run_the_value(tmp_path: Path) -> None:
    """Random templates from shell pieces (a fixed seed): each one the check lets through is
    run with hostile values in dash and bash, and none may run them."""
    generator = random.Random(20261207)
    shells = [shell for shell in ("dash", "bash") if shutil.which(shell)]
    accepted = 0
    while accepted < 100:
        template = " ".join(generator.choice(PIECES) for _ in range(generator.randint(2, 7)))
        try:
            parsed = placeholders.parse([template + " {}"])
            placeholders.check_shell_safe(parsed)
        except TemplateError:
            continue
        accepted += 1
        for value in (TOUCH, "$(touch pwned)", SUBSCRIPT):
            folder = tmp_path / f"t{accepted}"
            folder.mkdir(exist_ok=True)
            for shell in shells:
                script = parsed.shell(lambda field: value)  # noqa: B023 (used at once)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    subprocess.run(
                        [shell, "-c", script],
                        cwd=folder,
                        stdin=subprocess.DEVNULL,
                        capture_output=True,
                        timeout=10,
                        check=False,
                    )
                assert not (folder / "pwned").exists(), (shell, template, value)
