"""Where the default store is, whatever the working directory.

The rule (the first that applies):

1. ``$MIDWAY_STORE``, if set (a relative SQLite or file path in it is taken from the
   working directory and shown absolute);
2. the nearest existing ``.midway/`` folder at or above the *start folder*, as git finds
   ``.git``: its ``state.db``;
3. else ``.midway/state.db`` in the start folder itself, created on the first run.

The start folder is the folder of the running script (``sys.modules["__main__"].__file__``),
so that a script run by cron, systemd or from another shell finds the checkpoint it left.
It is the working directory for the ``midway`` command, ``python -c``, the interactive
interpreter, and a program installed with Python (a tool such as a test runner, whose
file lives under ``sys.prefix``). ``midway worker SCRIPT`` starts from SCRIPT's folder.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path

STORE_FOLDER = ".midway"
STORE_FILE = "state.db"

_start: Path | None = None
_use_cwd = False


def use_working_directory() -> None:
    """The ``midway`` command: start from where the user is (``midway status`` in the
    project's folder, or any folder under it, finds the project's store)."""
    global _start, _use_cwd
    _start, _use_cwd = None, True


def use_script(path: str | os.PathLike[str]) -> None:
    """``midway worker SCRIPT``: start from SCRIPT's folder, as the script alone would."""
    global _start, _use_cwd
    _start, _use_cwd = Path(path).resolve().parent, False


def start_folder() -> Path:
    """The folder the search for ``.midway/`` starts from (see the module's rule)."""
    if _start is not None:
        return _start
    cwd = Path.cwd()
    if _use_cwd:
        return cwd
    main = sys.modules.get("__main__")
    name = getattr(main, "__file__", None)
    if not isinstance(name, str) or not name:
        return cwd  # python -c, the interactive interpreter, an embedded interpreter
    script = Path(name).resolve()
    if not script.is_file() or _installed(script):
        return cwd
    return script.parent


def _installed(script: Path) -> bool:
    """A program that comes with the Python installation: pytest, ipython, ``python -m``."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix}
    for key in ("purelib", "platlib", "scripts"):
        path = sysconfig.get_paths().get(key)
        if path:
            roots.add(path)
    for root in roots:
        try:
            script.relative_to(Path(root).resolve())
        except ValueError:
            continue
        return True
    return False


def default_store_path(start: Path | None = None) -> Path:
    """The nearest ``.midway/state.db`` at or above ``start``, else the one in ``start``."""
    start = start or start_folder()
    for folder in (start, *start.parents):
        if (folder / STORE_FOLDER).is_dir():
            return folder / STORE_FOLDER / STORE_FILE
    return start / STORE_FOLDER / STORE_FILE


def default_url() -> str:
    """``$MIDWAY_STORE`` if set, else ``sqlite:////abs/.midway/state.db`` by the rule above."""
    return os.environ.get("MIDWAY_STORE") or f"sqlite:///{default_store_path()}"


def fresh_at_most_once(job: str, store_url: str, source: str) -> str:
    """The first line of an at-most-once job the store has never seen: if it ran before
    with another store, every item is about to be handled a second time."""
    return (
        f"starting at-most-once job {job!r} afresh: no record of it in {store_url}. Reading "
        f"{source} from the beginning; if this job ran before with another store, stop it now "
        "and point it at that store (store= or $MIDWAY_STORE)"
    )
