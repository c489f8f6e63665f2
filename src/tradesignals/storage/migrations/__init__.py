"""Alembic migrations of the app-data schema; run them with ``tradesignals.storage.db.migrate``."""
