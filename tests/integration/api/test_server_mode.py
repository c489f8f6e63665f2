"""Server mode wired to the real PostgreSQL and Redis on 127.0.0.1."""

from __future__ import annotations

import asyncio

import pytest
from fastapi.testclient import TestClient

from tradesignals.api.app import create_app
from tradesignals.config import ConfigError, load_settings
from tradesignals.wiring import build_services


def test_health_in_server_mode_checks_postgres_and_redis(
    pg_url: str, redis_url: str, redis_prefix: str
) -> None:
    settings = load_settings(mode="server", database_url=pg_url, redis_url=redis_url, bus_prefix=redis_prefix)
    services = asyncio.run(build_services(settings))
    with TestClient(create_app(services)) as client:
        body = client.get("/api/health").json()
    assert body["mode"] == "server" and body["status"] == "ok"
    assert body["services"]["database"] == {"ok": True, "detail": "postgresql", "gates": True}
    assert body["services"]["bus"] == {"ok": True, "detail": "RedisStreamsBus", "gates": True}


def test_unreachable_redis_is_one_line(pg_url: str) -> None:
    settings = load_settings(mode="server", database_url=pg_url, redis_url="redis://127.0.0.1:1/0")
    with pytest.raises(ConfigError) as info:
        asyncio.run(build_services(settings))
    assert "redis://127.0.0.1:1/0" in str(info.value) and "\n" not in str(info.value)


def test_unreachable_database_is_one_line(redis_url: str) -> None:
    settings = load_settings(
        mode="server", database_url="postgresql+psycopg://postgres@127.0.0.1:1/x", redis_url=redis_url
    )
    with pytest.raises(ConfigError) as info:
        asyncio.run(build_services(settings))
    text = str(info.value)
    assert text.startswith("database:") and "127.0.0.1" in text and "\n" not in text
