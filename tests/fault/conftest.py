"""Fault tests: real processes over real PostgreSQL and Redis on loopback, killed on purpose.

Each test gets its own PostgreSQL database and its own Redis key prefix, so parallel runs (and
other helpers' suites) never see each other's streams, leases or signals.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

PG_ADMIN_URL = os.environ.get("TS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def fresh_pg_url() -> Iterator[str]:
    """A new, empty database for one test (the reference run and the faulted run must not mix)."""
    import psycopg

    name = f"ts_fault_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as err:
        msg = f"PostgreSQL at {PG_ADMIN_URL} is not reachable ({err})"
        if os.environ.get("TS_REQUIRE_SERVICES") == "1":
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    yield f"{base}/{name}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
