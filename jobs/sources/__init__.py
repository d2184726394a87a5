"""Sources: read rows from a kind of system as typed batches (db: SQL databases), and detect changes."""
