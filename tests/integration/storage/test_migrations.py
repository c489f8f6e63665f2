"""Migrations, engines and connection checks on a real SQLite file and a real PostgreSQL schema."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine

from tradesignals.storage.base import StorageError
from tradesignals.storage.db import (
    SQLITE_BUSY_TIMEOUT_MS,
    check_connection,
    current_revision,
    downgrade,
    head_revision,
    make_engine,
    migrate,
)
from tradesignals.storage.repositories import SqlUserRepository
from tradesignals.storage.tables import metadata

pytestmark = pytest.mark.integration

APP_TABLES = {
    "ingest_positions",
    "users",
    "watchlist",
    "signals",
    "signal_events",
    "ledger_checkpoints",
    "refresh_tokens",
    "signal_upgrades",
    "subscriptions",
    "payments",
    "webhook_events",
    "news_items",
    "news_symbols",
    "llm_results",
    "push_subscriptions",
}


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on the empty database, not migrated."""
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


def tables(engine: Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def test_migrate_creates_the_schema_on_an_empty_database(engine: Engine) -> None:
    assert current_revision(engine) is None
    assert tables(engine) == set()
    migrate(engine)
    assert current_revision(engine) == head_revision() == "0012_ops"
    assert tables(engine) == APP_TABLES | {"alembic_version"}


def test_the_migrations_build_exactly_the_models(engine: Engine) -> None:
    """The hand-written migration and tables.py must not drift apart on either database."""
    migrate(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    assert diff == []
    inspector = sa.inspect(engine)
    assert {ix["name"] for ix in inspector.get_indexes("signals")} == {
        "ix_signals_symbol_created_at",
        "ix_signals_symbol_id",
        "ix_signals_status",
    }
    checks = {ck["name"] for ck in inspector.get_check_constraints("signals")}
    assert checks == {"ck_signals_type", "ck_signals_direction", "ck_signals_status"}
    [fk] = inspector.get_foreign_keys("signal_events")
    assert fk["referred_table"] == "signals"
    assert fk["constrained_columns"] == ["signal_id"]


def test_migrate_twice_is_a_no_op(engine: Engine) -> None:
    migrate(engine)
    user = SqlUserRepository(engine).create("keep@example.com", "h")
    migrate(engine)
    assert current_revision(engine) == head_revision()
    assert SqlUserRepository(engine).get(user.id) == user


def test_0007_indexes_the_latest_close_of_each_signal_and_goes_back(engine: Engine) -> None:
    """The index exists on both databases, SQLite's plan for "no later close" probes it, and a
    downgrade to the revision before drops only it."""
    migrate(engine)
    names = {ix["name"] for ix in sa.inspect(engine).get_indexes("signal_events")}
    assert "ix_signal_events_signal_id_kind_seq" in names
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            plan = " ".join(
                str(row[-1])
                for row in conn.exec_driver_sql(
                    "EXPLAIN QUERY PLAN SELECT e.seq FROM signal_events e WHERE e.kind = 'closed'"
                    " AND NOT EXISTS (SELECT 1 FROM signal_events l WHERE l.signal_id = e.signal_id"
                    " AND l.kind = 'closed' AND l.seq > e.seq)"
                )
            )
        assert "ix_signal_events_signal_id_kind_seq (signal_id=? AND kind=? AND seq>?)" in plan, plan
    downgrade(engine, "0006_news")
    after = {ix["name"] for ix in sa.inspect(engine).get_indexes("signal_events")}
    assert after == names - {"ix_signal_events_signal_id_kind_seq"}
    migrate(engine)
    assert current_revision(engine) == head_revision()


def test_0009_adds_push_subscriptions_and_goes_back(engine: Engine) -> None:
    migrate(engine)
    inspector = sa.inspect(engine)
    assert "ix_push_subscriptions_user_id" in {
        ix["name"] for ix in inspector.get_indexes("push_subscriptions")
    }
    assert [u["column_names"] for u in inspector.get_unique_constraints("push_subscriptions")] == [
        ["endpoint"]
    ]
    [fk] = inspector.get_foreign_keys("push_subscriptions")
    assert (fk["referred_table"], fk["options"].get("ondelete")) == ("users", "CASCADE")
    downgrade(engine, "0007_summary_index")
    assert "push_subscriptions" not in tables(engine) and current_revision(engine) == "0007_summary_index"
    migrate(engine)
    assert "push_subscriptions" in tables(engine)


def test_0012_adds_ingest_positions_and_goes_back(engine: Engine) -> None:
    """0012 only adds the ingest positions table; a downgrade to 0010 drops only it."""
    migrate(engine)
    assert "ingest_positions" in tables(engine)
    downgrade(engine, "0010_llm")
    assert tables(engine) == APP_TABLES - {"ingest_positions"} | {"alembic_version"}
    migrate(engine)
    assert "ingest_positions" in tables(engine)


def test_downgrade_to_base_then_up_again(engine: Engine) -> None:
    migrate(engine)
    SqlUserRepository(engine).create("gone@example.com", "h")
    downgrade(engine, "base")
    assert current_revision(engine) is None
    assert tables(engine) & APP_TABLES == set()
    migrate(engine)
    assert current_revision(engine) == head_revision()
    users = SqlUserRepository(engine)
    assert users.by_email("gone@example.com") is None
    assert users.create("gone@example.com", "h").email == "gone@example.com"


def test_migrate_takes_a_url_and_needs_no_alembic_ini_in_the_cwd(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # nothing here: no alembic.ini, no migrations folder
    migrate(db_url)
    engine = make_engine(db_url)
    try:
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


MIGRATE_SCRIPT = "import sys; from tradesignals.storage.db import migrate; migrate(sys.argv[1])"


def test_nodes_starting_at_once_all_migrate(db_url: str) -> None:
    """Several processes migrating one database at once must all succeed, the schema made once."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATE_SCRIPT, db_url], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(3)
    ]
    results = [(p.wait(timeout=60), p.stderr.read().decode() if p.stderr else "") for p in procs]
    for p in procs:
        for stream in (p.stdout, p.stderr):
            if stream:
                stream.close()
    assert [rc for rc, _ in results] == [0, 0, 0], [err for _, err in results]
    engine = make_engine(db_url)
    try:
        assert current_revision(engine) == head_revision()
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM alembic_version")).scalar() == 1
    finally:
        engine.dispose()


def test_migrations_in_threads_take_turns(db_url: str) -> None:
    """The engine and API may migrate from worker threads; Alembic's globals must not be shared."""
    errors: list[BaseException] = []

    def start() -> None:
        try:
            migrate(db_url)
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    engine = make_engine(db_url)
    try:
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_a_database_from_a_newer_release_is_a_one_line_error(engine: Engine) -> None:
    migrate(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(StorageError) as info:
        migrate(engine)
    text = str(info.value)
    assert "9999" in text
    assert "\n" not in text


def test_a_failed_migration_changes_nothing(engine: Engine) -> None:
    """Transactional DDL on both databases: a half-applied upgrade must not remain."""
    with engine.begin() as conn:
        # Make the last table of 0001 impossible to create.
        conn.exec_driver_sql("CREATE TABLE signal_events (x INTEGER)")
    with pytest.raises(StorageError) as info:
        migrate(engine)
    assert "\n" not in str(info.value)
    assert current_revision(engine) is None
    assert tables(engine) == {"signal_events"}


def test_sqlite_engine_settings(tmp_path: Path) -> None:
    path = tmp_path / "deeper" / "still" / "app.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        assert path.parent.is_dir()
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == SQLITE_BUSY_TIMEOUT_MS
    finally:
        engine.dispose()


def test_sqlite_timestamps_sort_chronologically_as_stored(tmp_path: Path) -> None:
    """SQLite compares the stored text: the format must be fixed-width UTC for ranges to work."""
    engine = make_engine(f"sqlite:///{tmp_path / 'app.db'}")
    try:
        migrate(engine)
        SqlUserRepository(engine).create("t@example.com", "h")
        with engine.connect() as conn:
            raw = conn.exec_driver_sql("SELECT created_at FROM users").scalar()
        assert isinstance(raw, str)
        assert len(raw) == len("2026-01-05 15:00:00.000000")
        parsed = datetime.fromisoformat(raw).replace(tzinfo=UTC)
        assert abs((datetime.now(UTC) - parsed).total_seconds()) < 60
    finally:
        engine.dispose()


def test_postgresql_url_spellings_use_psycopg_3() -> None:
    for url in ("postgresql://u@127.0.0.1/x", "postgres://u@127.0.0.1/x"):
        engine = make_engine(url)
        try:
            assert engine.dialect.driver == "psycopg"
        finally:
            engine.dispose()


def test_unsupported_or_invalid_urls_are_one_line_errors() -> None:
    with pytest.raises(StorageError, match="unsupported database mysql://u:\\*\\*\\*@h/x"):
        make_engine("mysql://u:secret@h/x")
    with pytest.raises(StorageError, match="invalid database URL") as info:
        check_connection("not a url at all")
    assert "\n" not in str(info.value)


def test_check_connection_passes_on_a_live_database(db_url: str) -> None:
    check_connection(db_url)


def test_check_connection_on_sqlite_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "new" / "app.db"
    check_connection(f"sqlite:///{path}")
    assert not path.parent.exists()


def test_check_connection_refuses_a_directory_or_a_non_database(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="is a directory"):
        check_connection(f"sqlite:///{tmp_path}")
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a SQLite file, not even close" * 100)
    with pytest.raises(StorageError, match="cannot be opened") as info:
        check_connection(f"sqlite:///{junk}")
    assert "\n" not in str(info.value)


def test_check_connection_on_an_unreachable_postgresql_is_one_line_and_quick() -> None:
    started = time.monotonic()
    with pytest.raises(StorageError) as info:
        check_connection("postgresql+psycopg://ts:s3cret@127.0.0.1:1/appdb")
    elapsed = time.monotonic() - started
    text = str(info.value)
    assert "\n" not in text
    assert "127.0.0.1:1/appdb" in text
    assert "s3cret" not in text
    assert "***" in text
    assert elapsed < 10


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port whose listener completes handshakes (backlog) but never says a word."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def test_check_connection_gives_up_on_a_silent_server(silent_server: int) -> None:
    """A server that accepts and hangs must cost the connect timeout, not forever."""
    started = time.monotonic()
    with pytest.raises(StorageError) as info:
        check_connection(f"postgresql+psycopg://ts@127.0.0.1:{silent_server}/appdb", timeout_s=2)
    elapsed = time.monotonic() - started
    assert "\n" not in str(info.value)
    assert f"127.0.0.1:{silent_server}/appdb" in str(info.value)
    assert elapsed < 10
