"""Start-up: ``import midway``, ``midway --help`` and ``midway status`` load only what they use.

Checked by the modules a fresh interpreter holds afterwards (``sys.modules``), not by a time:
a heavy module that comes back shows here on any machine. benchmarks/startup.py measures the
time itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

import midway
from midway.cli.app import COMMANDS, cli

# Slow to import, and needed by no job's start: each is loaded by the code that uses it.
NOT_ON_IMPORT = [
    "asyncio",  # async handlers, executor="async"
    "concurrent.futures",  # workers=N
    "multiprocessing",
    "email",  # Retry-After given as an HTTP date
    "hashlib",  # job keys with params, idempotency keys
    "socket",  # the owner's host name
    "sqlite3",  # the stores
    "logging",
    "pathlib",
    "uuid",
    "decimal",
    "rich",
    "click",
    "midway.run.engine",
    "midway.run.parallel",
    "midway.distributed",
    "midway.stores",
    "midway.sources.base",
    "midway.sources.csvfile",
    "midway.sources.sqlquery",
    "midway.sources._sqldb",
    "midway.sources.dataframe",
    # The public names other than the exceptions load on first use (midway/__init__.py).
    "midway.job",
    "midway.ops",
    "midway.run",
    "midway._model",
    "dataclasses",
]

COMMAND_MODULES = [
    "midway.cli.reading",
    "midway.cli.ledger",
    "midway.cli.running",
    "midway.each",
    "midway.web",
    "midway.views",
]

# What no plain command and no plain run needs.
NEVER_FOR_A_PLAIN_RUN = [
    "asyncio",
    "concurrent.futures",
    "multiprocessing",
    "email",
    "midway.run.parallel",
    "midway.run.workers",
    "midway.distributed",
]


def loaded_after(
    code: str, *, cwd: Path | None = None, env: dict[str, str] | None = None
) -> set[str]:
    """The modules a new interpreter holds after running ``code``."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)), file=sys.stderr)"
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stderr.splitlines()[-1]))


def found(modules: set[str], names: list[str]) -> list[str]:
    """Those of ``names`` loaded, a package counting when any module of it is."""
    return [n for n in names if any(m == n or m.startswith(n + ".") for m in modules)]


def run_command(*args: str) -> str:
    """``midway ARGS`` in-process of a new interpreter, as the entry point runs it."""
    return (
        f"import sys\nsys.argv = ['midway', *{list(args)!r}]\n"
        "from midway.cli.app import main\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
    )


def test_import_midway_loads_no_heavy_module() -> None:
    modules = loaded_after("import midway")
    assert found(modules, NOT_ON_IMPORT) == []


def test_every_public_name_still_loads_on_use() -> None:
    """The lazy parts are there when a name needs them (a fresh interpreter: this one has
    imported everything already)."""
    code = (
        "import midway\n"
        "from midway.sources import *\n"
        "assert callable(midway.sources.sql) and callable(csv)\n"
        "assert set(midway.sources.__all__) <= set(dir(midway.sources))\n"
        "assert set(midway.__all__) <= set(dir(midway))\n"
    )
    modules = loaded_after(code)
    assert {"midway.sources.sqlquery", "midway.sources.csvfile"} <= modules


@pytest.mark.parametrize("name", ["sequence", "jsonl", "iterable", "shards", "dataframe"])
def test_a_source_module_imported_first_leaves_the_function_in_its_place(name: str) -> None:
    """``midway.sources.sequence`` is the function, even after ``import
    midway.sources.sequence`` ran before anything asked for the name."""
    code = (
        f"import midway.sources.{name}\n"
        "import midway, types\n"
        f"assert callable(midway.sources.{name}), midway.sources.{name}\n"
        f"assert not isinstance(midway.sources.{name}, types.ModuleType)\n"
    )
    loaded_after(code)


def test_a_plain_run_loads_no_parallel_async_or_distributed_part(tmp_path: Path) -> None:
    code = (
        "import midway\n"
        f"job = midway.Job('plain', store='sqlite:///{tmp_path / 's.db'}', quiet=True)\n"
        "assert job.run(range(10), lambda item, ctx: None).processed == 10\n"
    )
    modules = loaded_after(code)
    assert found(modules, NEVER_FOR_A_PLAIN_RUN) == []
    assert "midway.run.engine" in modules


def test_help_imports_no_command(tmp_path: Path) -> None:
    modules = loaded_after(run_command("--help"), cwd=tmp_path)
    assert found(modules, [*COMMAND_MODULES, "rich", "sqlite3", "asyncio"]) == []


def test_status_of_an_empty_store_loads_no_table_and_no_run(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'state.db'}"
    midway.Job("made-the-store", store=store).info()  # the store, with no job in it
    modules = loaded_after(run_command("status", "--store", store), cwd=tmp_path)
    assert "midway.cli.status" in modules
    unused = ["rich", "importlib.resources", "zipfile", "midway.run.engine", "midway.each"]
    unused += ["midway.cli.reading", "midway.ops.actions", "midway.ops.digest"]
    assert found(modules, [*unused, "midway.web", *NEVER_FOR_A_PLAIN_RUN]) == []


def test_status_draws_its_table_without_rich_or_logging(tmp_path: Path) -> None:
    """The most typed command, with jobs to show: its table is drawn with what click
    brings (see ``midway.cli.columns``)."""
    store = f"sqlite:///{tmp_path / 'state.db'}"
    for name in ("one", "two"):
        midway.Job(name, store=store, quiet=True, progress=False).run(range(3), lambda i, c: None)
    modules = loaded_after(run_command("status", "--store", store), cwd=tmp_path)
    assert "midway.cli.columns" in modules
    unused = ["rich", "logging", "midway.console", "midway.run.engine", "midway.cli.reading"]
    assert found(modules, [*unused, *NEVER_FOR_A_PLAIN_RUN]) == []


def test_the_help_listed_without_importing_is_each_commands_own() -> None:
    """``midway --help`` shows the table's line for a command not yet imported: it must
    be the command's own (the first paragraph of its help), at every terminal width."""
    assert cli.list_commands(click.Context(cli)) == sorted(COMMANDS)
    for name, (_, help_text) in COMMANDS.items():
        command = cli.get_command(click.Context(cli), name)
        assert command is not None, name
        assert command.name == name
        stand_in = click.Command(name, help=help_text)
        for width in (30, 45, 70, 400):
            assert stand_in.get_short_help_str(width) == command.get_short_help_str(width), name


def test_help_lists_every_command_as_when_they_are_imported() -> None:
    """The listing is the same whether the commands were imported before or not."""
    code = (
        "import click, sys\n"
        "from midway.cli.app import COMMANDS, cli, main\n"
        "for name in COMMANDS if sys.argv[1] == 'imported' else ():\n"
        "    cli.get_command(click.Context(cli), name)\n"
        "sys.argv = ['midway', '--help']\n"
        "main()\n"
    )
    shown = [
        subprocess.run(
            [sys.executable, "-c", code, imported],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "COLUMNS": "80"},
        ).stdout
        for imported in ("lazy", "imported")
    ]
    assert "resume, and..." in shown[0]
    assert shown[0] == shown[1]


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_the_sql_files_read_from_disk_are_the_package_resources(dialect: str) -> None:
    """sqlfiles reads its folder from disk, and through importlib.resources only when the
    package is not on disk: both must name the same files."""
    from importlib import resources

    from midway.stores import sqlfiles

    folder = sqlfiles._folder(dialect)
    assert isinstance(folder, Path)
    packaged = resources.files("midway.stores").joinpath("sql", dialect)
    assert sorted(e.name for e in folder.iterdir()) == sorted(e.name for e in packaged.iterdir())
    assert sqlfiles.queries(dialect)
