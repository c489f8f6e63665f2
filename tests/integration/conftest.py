"""Shared by the integration suites: the app database on SQLite and on the real PostgreSQL, and the
two stacks a node runs on (SQLite + in-process bus; PostgreSQL + Redis)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url


@contextmanager
def pg_schema(pg_url: str) -> Iterator[str]:
    """A new, empty PostgreSQL schema on ``pg_url`` (dropped afterwards); yields its URL."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(pg_url, poolclass=sa.NullPool)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url = make_url(pg_url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database with nothing in it: a new SQLite file, or a new PostgreSQL schema on ``pg_url``."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'app.db'}"
        return
    with pg_schema(request.getfixturevalue("pg_url")) as url:
        yield url


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A local S3-compatible server (moto) on 127.0.0.1, for the stores that speak S3 through boto3."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


StackSettings = dict[str, object]


@pytest.fixture(params=["embedded", pytest.param("server", marks=pytest.mark.integration)])
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StackSettings]:
    """Settings overrides for one stack: ``embedded`` (SQLite + in-process bus and channel log) or
    ``server`` (a fresh PostgreSQL schema + Redis under the test's own key prefix)."""
    if request.param == "embedded":
        yield {"home": tmp_path, "mode": "embedded"}
        return
    redis_url = request.getfixturevalue("redis_url")
    prefix = request.getfixturevalue("redis_prefix")
    with pg_schema(request.getfixturevalue("pg_url")) as url:
        yield {
            "home": tmp_path,
            "mode": "server",
            "database_url": url,
            "redis_url": redis_url,
            "bus_prefix": prefix,
        }


@pytest.fixture
def server_db_url(pg_url: str) -> Iterator[str]:
    """A new, empty PostgreSQL schema (for tests that start several server-mode nodes on one database)."""
    with pg_schema(pg_url) as url:
        yield url
