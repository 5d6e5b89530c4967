"""Acceptance tests: real processes, killed for real, on every store."""
