from pathlib import Path

import pytest

from tradesignals.config import ConfigError, Mode, load_settings


def test_defaults_are_embedded_sqlite_in_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TS_HOME", str(tmp_path))
    s = load_settings()
    assert s.mode is Mode.EMBEDDED
    assert s.db_url == f"sqlite:///{tmp_path.as_posix()}/tradesignals.db"
    assert str(s.premium_price_usd) == "19.99" and s.dynamic_duration_hours == 72


def test_server_mode_has_no_default_database(monkeypatch: pytest.MonkeyPatch) -> None:
    """A guessed database (the superuser on a local test database) is worse than none."""
    monkeypatch.setenv("TS_MODE", "server")
    with pytest.raises(ConfigError, match=r"^server mode needs TS_DATABASE_URL"):
        load_settings().db_url  # noqa: B018 - the property is what refuses
    monkeypatch.setenv("TS_DATABASE_URL", "postgresql+psycopg://app@db:5432/signals")
    assert load_settings().db_url == "postgresql+psycopg://app@db:5432/signals"


@pytest.mark.parametrize(
    ("env", "value", "message"),
    [
        ("TS_MODE", "cloud", "TS_MODE: Input should be 'embedded' or 'server' (got 'cloud')"),
        ("TS_FEED", "kraken", "TS_FEED: unknown feed 'kraken'; expected 'sim', 'replay:PATH'"),
        ("TS_PREMIUM_PRICE_USD", "-1", "TS_PREMIUM_PRICE_USD"),
        ("TS_BUS_PARTITIONS", "zero", "TS_BUS_PARTITIONS"),
        ("TS_LOG_LEVEL", "loud", "unknown log level 'loud'"),
        ("TS_MODEL_STORE", "ftp://models", "unknown object store 'ftp://models'"),
        ("TS_BUS_PREFIX", "ts{a}", "TS_BUS_PREFIX"),  # braces would move the cluster hash tag
        ("TS_REDIS_CLUSTER", "perhaps", "TS_REDIS_CLUSTER"),
        ("TS_BUS_WAIT_REPLICAS", "-1", "TS_BUS_WAIT_REPLICAS"),
        ("TS_BUS_ENTRY_MESSAGES", "0", "TS_BUS_ENTRY_MESSAGES"),
    ],
)
def test_bad_values_give_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, message: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    text = str(info.value)
    assert message in text
    assert "\n" not in text
