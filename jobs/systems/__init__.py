"""Connectors: one package per kind of system, each a Reader and a Writer (see base.py)."""
