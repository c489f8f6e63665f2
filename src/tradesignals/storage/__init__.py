"""Persistence: app data (SQLAlchemy: SQLite embedded, PostgreSQL server), history, cache, objects."""
