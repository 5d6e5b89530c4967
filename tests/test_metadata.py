"""What a package index shows about midway: links, classifiers, and an extra for everything.

Read from the installed distribution's metadata (``importlib.metadata``), as an index reads it.
"""

from __future__ import annotations

import importlib.metadata
import re
from email.message import Message

import pytest

# Extras that are not a part of midway one runs: the tests' tools and the docs' builders.
NOT_RUNTIME = {"all", "dev", "docs"}


@pytest.fixture(scope="module")
def metadata() -> Message:
    meta: Message = importlib.metadata.metadata("midway")  # type: ignore[assignment]
    return meta


def test_project_urls(metadata: Message) -> None:
    urls = dict(entry.split(", ", 1) for entry in metadata.get_all("Project-URL") or [])
    assert set(urls) == {"Homepage", "Documentation", "Source", "Issues", "Changelog"}
    assert all(url.startswith("https://") for url in urls.values())
    assert urls["Issues"].startswith(urls["Source"])


def test_classifiers(metadata: Message) -> None:
    classifiers = set(metadata.get_all("Classifier") or [])
    for version in ("3.11", "3.12", "3.13"):
        assert f"Programming Language :: Python :: {version}" in classifiers
    assert "Development Status :: 4 - Beta" in classifiers
    assert "Typing :: Typed" in classifiers
    assert "Environment :: Console" in classifiers
    assert not any(c.startswith("License :: ") for c in classifiers)  # see test_license
    assert any(c.startswith("Topic :: ") for c in classifiers)
    assert any(c.startswith("Intended Audience :: ") for c in classifiers)


def test_license(metadata: Message) -> None:
    """The license is an SPDX expression (PEP 639), the one field an index reads it from:
    PyPI refuses an upload that also names it in a ``License ::`` classifier."""
    assert metadata["License-Expression"] == "MIT"
    assert "LICENSE" in (metadata.get_all("License-File") or [])


def requirements_by_extra(metadata: Message) -> dict[str, set[str]]:
    """``{"ui": {"starlette>=0.40", ...}, ...}`` from the Requires-Dist lines."""
    found: dict[str, set[str]] = {}
    for line in metadata.get_all("Requires-Dist") or []:
        requirement, _, marker = line.partition(";")
        extra = re.search(r"""extra\s*==\s*["']([^"']+)["']""", marker)
        if extra:
            found.setdefault(extra[1], set()).add(requirement.strip())
    return found


def test_all_installs_every_runtime_extra(metadata: Message) -> None:
    """``pip install 'midway[all]'``: the dashboard, PostgreSQL, and any extra added later."""
    extras = set(metadata.get_all("Provides-Extra") or [])
    assert {"all", "ui", "postgres", "docs", "dev"} <= extras
    by_extra = requirements_by_extra(metadata)
    for extra in extras - NOT_RUNTIME:
        left_out = by_extra.get(extra, set()) - by_extra["all"]
        assert not left_out, f"midway[all] lacks the {extra!r} extra's {sorted(left_out)}"
    assert not any(r.startswith(("mkdocs", "pytest")) for r in by_extra["all"])
