"""Targets: apply change logs to a kind of system (db: SQL databases; stream: while reading)."""
