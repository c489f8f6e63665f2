"""What an anonymous caller or a start-up error may show of the deployment: nothing secret.

On the real PostgreSQL and Redis: a 503 body names no host, user or database (the log does); a
Redis URL's password never reaches a start-up error; provider keys are ``SecretStr``; server mode
refuses to start without an explicit database URL.
"""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url
from structlog.testing import capture_logs

from tradesignals.api.app import STORAGE_UNAVAILABLE, create_app
from tradesignals.config import ConfigError, load_settings
from tradesignals.wiring import build_feed, build_services


def test_a_503_body_is_generic_and_the_log_has_the_detail(
    pg_url: str, pg_admin_url: str, tmp_path: object
) -> None:
    """A database dropped under a running node: the caller learns that storage is down, not where."""
    name = f"ts_leak_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    services = asyncio.run(build_services(load_settings(mode="embedded", home=tmp_path, database_url=url)))
    try:
        with TestClient(create_app(services)) as client:
            assert client.get("/api/history").status_code == 200
            with psycopg.connect(pg_admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            services.db.dispose()  # no pooled connection survives: the next read must connect
            with capture_logs() as logs:
                r = client.get("/api/history")
            assert r.status_code == 503
            assert r.json() == {"detail": STORAGE_UNAVAILABLE}
            for leak in (name, "127.0.0.1", "postgres", "psycopg", "5432"):
                assert leak not in r.text
            logged = [e for e in logs if e["event"] == "api.storage_unavailable"]
            assert logged and name in logged[0]["error"] and logged[0]["path"] == "/api/history"
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_redis_password_never_reaches_a_start_up_error(pg_url: str) -> None:
    settings = load_settings(
        mode="server", database_url=pg_url, redis_url="redis://ops:s3cr3t-pw@127.0.0.1:1/0"
    )
    with pytest.raises(ConfigError) as info:
        asyncio.run(build_services(settings))
    text = str(info.value)
    assert "s3cr3t-pw" not in text and "redis://ops:***@127.0.0.1:1/0" in text and "\n" not in text


def test_a_malformed_redis_url_shows_no_password(pg_url: str) -> None:
    settings = load_settings(
        mode="server", database_url=pg_url, redis_url="redis://ops:s3cr3t-pw@127.0.0.1:notaport/0"
    )
    with pytest.raises((ConfigError, ValueError)) as info:
        asyncio.run(build_services(settings))
    assert "s3cr3t-pw" not in str(info.value)


def test_server_mode_refuses_to_start_without_a_database_url(redis_url: str) -> None:
    settings = load_settings(mode="server", redis_url=redis_url)
    with pytest.raises(ConfigError) as info:
        asyncio.run(build_services(settings))
    text = str(info.value)
    assert text.startswith("server mode needs TS_DATABASE_URL") and "\n" not in text


@pytest.mark.parametrize(
    ("env", "value"),
    [
        ("TS_ALPACA_KEY", "AKIAREALKEY123"),
        ("TS_ALPACA_SECRET", "sEcReT-99"),
        ("TS_POLYGON_KEY", "pk_live_77"),
    ],
)
def test_provider_keys_are_secret_in_every_message(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str
) -> None:
    monkeypatch.setenv(env, value)
    settings = load_settings(feed="polygon:AAPL" if "POLYGON" in env else "alpaca:AAPL")
    field = env.removeprefix("TS_").lower()
    assert getattr(settings, field).get_secret_value() == value
    for text in (repr(settings), str(settings), settings.model_dump_json()):
        assert value not in text
    if "ALPACA" in env:  # one half of the pair: the missing half is named, the given one not shown
        with pytest.raises(ConfigError) as info:
            build_feed(settings)
        assert "TS_ALPACA_KEY and TS_ALPACA_SECRET" in str(info.value) and value not in str(info.value)


def test_a_bad_secret_setting_is_named_not_echoed() -> None:
    """A value refused for a key or URL setting is named, not echoed (it may be the credential)."""
    with pytest.raises(ConfigError) as info:
        load_settings(redis_url=["redis://ops:s3cr3t-pw@h:6379/0"], alpaca_key=["AKIAREALKEY123"])
    text = str(info.value)
    assert "TS_REDIS_URL" in text and "TS_ALPACA_KEY" in text and "value not shown" in text
    assert "s3cr3t-pw" not in text and "AKIAREALKEY123" not in text
    with pytest.raises(ConfigError) as other:
        load_settings(bus_partitions=0)
    assert "(got 0)" in str(other.value)  # ordinary settings still show what was given
