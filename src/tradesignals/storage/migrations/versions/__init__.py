"""Migration scripts, one per revision, each hand-checked on SQLite and PostgreSQL."""
