"""Shared by the storage suites: every app-data test runs on SQLite and on the real PostgreSQL
(``db_url``, in tests/integration/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from tradesignals.storage.db import make_engine, migrate


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A migrated database (test_migrations overrides this with an unmigrated one)."""
    engine = make_engine(db_url)
    migrate(engine)
    yield engine
    engine.dispose()
