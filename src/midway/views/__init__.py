"""Typed read models of the store (status, detail, report) for every screen."""
