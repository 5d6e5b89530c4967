"""Helpers shared by the tests (real processes, real stores; no mocks)."""
