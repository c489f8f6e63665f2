"""Shared fixtures: real PostgreSQL and Redis on 127.0.0.1, the real-data folder.

A missing service skips the tests that need it, unless TS_REQUIRE_SERVICES=1 (CI), where it fails
them: CI must never pass having silently skipped the storage and bus suites.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

REQUIRE_SERVICES = os.environ.get("TS_REQUIRE_SERVICES") == "1"
PG_ADMIN_URL = os.environ.get("TS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _unavailable(what: str, err: Exception) -> None:
    msg = f"{what} is not reachable ({type(err).__name__}: {err})"
    if REQUIRE_SERVICES:
        pytest.fail(msg + " and TS_REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(msg)


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    """The server's maintenance database (for CREATE/DROP DATABASE). A fixture, not an import:
    a dependency installs a top-level ``tests`` package, so ``from tests.conftest`` is ambiguous."""
    return PG_ADMIN_URL


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """SQLAlchemy URL of a fresh, empty PostgreSQL database, dropped after the session."""
    import psycopg

    name = f"ts_test_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as err:
        _unavailable("PostgreSQL at " + PG_ADMIN_URL, err)
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    yield f"{base}/{name}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def redis_url() -> str:
    import redis

    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        client.ping()
        client.close()
    except redis.RedisError as err:
        _unavailable("Redis at " + REDIS_URL, err)
    return REDIS_URL


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix unique to one test; every key under it is deleted afterwards."""
    import redis

    prefix = f"tstest:{uuid.uuid4().hex[:8]}"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """../shared/data (or TS_DATA_DIR). CI sets TS_DATA_DIR and so requires it."""
    env = os.environ.get("TS_DATA_DIR")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"
    if not path.is_dir():
        if env:
            pytest.fail(f"TS_DATA_DIR={env} is not a directory", pytrace=False)
        pytest.skip(f"real data folder {path} is absent (set TS_DATA_DIR)")
    return path


@pytest.fixture(autouse=True)
def _structlog_reset() -> Iterator[None]:
    """Each test starts from structlog's defaults: a CLI run configures it globally (level, stream),
    which would otherwise filter or misdirect the log lines that later tests capture."""
    yield
    structlog.reset_defaults()


STREAM_WAIT_S = 5.0


async def _take(stream: AsyncIterator[Any], count: int) -> list[Any]:
    """The next ``count`` items of ``stream``, or a TimeoutError naming how many came."""
    out: list[Any] = []
    try:
        async with asyncio.timeout(STREAM_WAIT_S):
            while len(out) < count:
                out.append(await anext(stream))
    except TimeoutError:
        raise TimeoutError(f"got {len(out)} of {count} items: {out}") from None
    return out


@pytest.fixture
def take() -> Callable[..., Any]:
    """``await take(stream, n)``: the next n items of a feed's stream, bounded by a timeout."""
    return _take
