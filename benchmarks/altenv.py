"""The alternatives' own virtual environment: benchmarks/.venv-alt from requirements-alt.txt.

midway never depends on the tools it is compared with. They are installed here, once (a
stamp holds the hash of the requirements file), and each runs in a subprocess with this
environment's Python. When they cannot be installed (no network, a package gone), the
benchmark still runs and shows why in the table.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import venv
from dataclasses import dataclass, field
from pathlib import Path

from measure import progress

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "requirements-alt.txt"
DEFAULT_VENV = HERE / ".venv-alt"
TOOLS = ("batchledger", "dbos")  # the top-level packages; the rest of the file pins their deps
PIP = ("-m", "pip", "install", "--disable-pip-version-check", "--quiet", "--retries", "1")
PIP_TIMEOUT = 600


@dataclass
class AltEnv:
    """Where the alternatives run, and why any of them cannot."""

    python: Path | None
    missing: dict[str, str] = field(default_factory=dict)  # tool -> reason

    def reason(self, tool: str) -> str | None:
        if self.python is None:
            return self.missing.get(tool) or "no environment for the alternatives"
        return self.missing.get(tool)


def requirement_lines() -> list[str]:
    lines = REQUIREMENTS.read_text(encoding="utf-8").splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


def pin_of(tool: str) -> str:
    for line in requirement_lines():
        name = re.split(r"[=<>!~ ;\[]", line, maxsplit=1)[0]
        if name.lower() == tool:
            return line
    return tool


def digest() -> str:
    return hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()


def last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("ERROR")]
    return (errors or lines or ["pip gave no reason"])[-1][:200]


def pip_install(python: Path, *args: str) -> str | None:
    """Run pip in the environment; None when it worked, else pip's last error line."""
    try:
        done = subprocess.run(
            [str(python), *PIP, *args],
            capture_output=True,
            text=True,
            timeout=PIP_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"pip gave up after {PIP_TIMEOUT} s"
    return None if done.returncode == 0 else last_line(done.stderr or done.stdout)


def prepare(path: Path = DEFAULT_VENV, install: bool = True) -> AltEnv:
    """The environment, created and filled if needed (and ``install`` allows it)."""
    python = path / "bin" / "python"
    stamp, status_file = path / ".installed", path / ".status.json"
    if python.exists() and stamp.exists() and stamp.read_text().strip() == digest():
        return AltEnv(python)
    if not install:
        known = {}
        if status_file.exists():
            known = json.loads(status_file.read_text(encoding="utf-8"))
        why = "not installed (run without --no-install to install it)"
        return AltEnv(python if python.exists() else None, {t: known.get(t, why) for t in TOOLS})
    if not python.exists():
        progress(f"creating {path.name} for the alternatives ({', '.join(TOOLS)})")
        try:
            venv.EnvBuilder(with_pip=True, clear=True).create(path)
        except (OSError, subprocess.CalledProcessError) as exc:
            return AltEnv(None, dict.fromkeys(TOOLS, f"could not create a venv: {exc}"))
    progress(f"installing {REQUIREMENTS.name} into {path.name}")
    error = pip_install(python, "-r", str(REQUIREMENTS))
    missing: dict[str, str] = {}
    if error is not None:
        # Try each tool alone with its own pin, so one that installs still gets measured.
        progress(f"pip failed ({error}); trying each alternative alone")
        for tool in TOOLS:
            alone = pip_install(python, pin_of(tool))
            if alone is not None:
                missing[tool] = f"not installed: {alone}"
    status_file.write_text(json.dumps(missing), encoding="utf-8")
    if not missing and error is None:
        stamp.write_text(digest() + "\n", encoding="utf-8")
    return AltEnv(python, missing)


def python_for(explicit: Path | None, install: bool) -> AltEnv:
    """``--alt-python`` as given, else the benchmark's own environment."""
    if explicit is not None:
        return AltEnv(explicit)
    return prepare(install=install)
