"""The ``midway`` command line."""

from midway.cli.commands import cli, main

__all__ = ["cli", "main"]
