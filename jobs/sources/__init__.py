"""Sources: read a kind of system as typed batches (db: SQL databases); change detection."""
