"""The ``midway`` command line: :mod:`midway.cli.app` is its entry point.

This package imports nothing, so :mod:`midway.cli.options` stays light to import.
"""
