"""Engines, connection checks and migrations for the app-data database (SQLite or PostgreSQL).

Only two URL families are supported, because the models, the migrations and the repository tests
are written and run against exactly these two: ``sqlite:///PATH`` (embedded) and
``postgresql+psycopg://…`` (server). Every failure leaves here as a ``StorageError`` whose message is
one line naming the database with its password masked, so the CLI and the API can show it as is.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event, exc, pool
from sqlalchemy.engine import URL, Connection, Engine, make_url

from tradesignals.storage.base import DuplicateError, StorageError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

SQLITE_BUSY_TIMEOUT_MS = 10_000
PG_CONNECT_TIMEOUT_S = 5

# Execution option read by the SQLite "begin" hook. Write transactions open with BEGIN IMMEDIATE so
# that they queue on the busy timeout instead of failing with SQLITE_BUSY when a read transaction
# would have to be upgraded to a write one after another writer committed (WAL snapshot conflict).
_SQLITE_BEGIN = "ts_sqlite_begin"

# pg_advisory_xact_lock key that serialises migrations: N nodes starting at once must not race to
# create the same tables.
_PG_MIGRATION_LOCK = 0x7473_6D69_6772  # "tsmigr"

# Alembic keeps its running context in module globals (alembic.context, alembic.op), so two
# migrations in one process at once would drive each other's: they take turns here first.
_ALEMBIC_LOCK = threading.Lock()

# Compact, and strict about NaN/inf: PostgreSQL refuses them in JSON, so SQLite must refuse them too.
_json_dumps = partial(json.dumps, allow_nan=False, separators=(",", ":"))


def one_line(text: object) -> str:
    """Collapse a driver message (libpq's are multi-line, with tabs) into one line."""
    return " ".join(str(text).split())


def parse_url(url: str | URL) -> URL:
    """A supported SQLAlchemy URL, with ``postgresql://`` and ``postgres://`` pinned to psycopg 3.

    SQLAlchemy would pick psycopg2 for a bare ``postgresql://``; we ship psycopg 3 only, and people
    paste URLs from hosting dashboards, so we accept their spelling instead of failing on a missing
    module.
    """
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except exc.ArgumentError:
        # The text may hold a password; show only the scheme.
        scheme = str(url).split(":", 1)[0] if ":" in str(url) else "?"
        raise StorageError(
            f"invalid database URL (scheme {scheme!r}); expected sqlite:///PATH or postgresql+psycopg://…"
        ) from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername not in ("sqlite", "sqlite+pysqlite", "postgresql+psycopg"):
        raise StorageError(
            f"unsupported database {describe_url(parsed)}; expected sqlite:///PATH or postgresql+psycopg://…"
        )
    return parsed


def describe_url(url: str | URL) -> str:
    """The URL with its password masked: safe for logs, errors and the health endpoint."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except exc.ArgumentError:
        return "<invalid URL>"
    return parsed.render_as_string(hide_password=True)


def _sqlite_path(url: URL) -> Path | None:
    """The file behind a SQLite URL, or None for an in-memory database."""
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:") or url.query.get("mode") == "memory":
        return None
    return Path(database)


def make_engine(url: str | URL, *, echo: bool = False) -> Engine:
    """A thread-safe engine for ``url``, configured for how we use each database.

    SQLite: creates the parent directory, WAL (readers never block the writer), foreign keys on
    (SQLite leaves them off by default), a busy timeout (engine and API threads share the file),
    and SQLAlchemy — not the sqlite3 module — emitting BEGIN, so that DDL and SELECTs are truly
    transactional (the sqlite3 module's legacy mode autocommits DDL and skips BEGIN on reads).

    PostgreSQL: pre-ping (a restarted server must not hand a dead pooled connection to a request)
    and a short connect timeout (an unreachable server must fail a request, not hang it).
    """
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _make_sqlite_engine(parsed, echo=echo)
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in parsed.query:
        connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT_S
    if "application_name" not in parsed.query:
        connect_args["application_name"] = "tradesignals"
    return sa.create_engine(
        parsed,
        echo=echo,
        pool_pre_ping=True,
        connect_args=connect_args,
        json_serializer=_json_dumps,
    )


def _make_sqlite_engine(url: URL, *, echo: bool) -> Engine:
    path = _sqlite_path(url)
    kwargs: dict[str, Any] = {}
    if path is None:
        # One shared connection: with the default per-thread pool every worker thread would see
        # its own, empty, in-memory database. Meant for tests; use a file for anything else.
        kwargs["poolclass"] = pool.StaticPool
    else:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StorageError(
                f"cannot create the directory of SQLite database {path}: {one_line(err)}"
            ) from None
    engine = sa.create_engine(
        url,
        echo=echo,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        json_serializer=_json_dumps,
        **kwargs,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, see _on_begin
        cursor = dbapi_connection.cursor()
        try:
            if path is not None:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(_SQLITE_BEGIN, "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def writer(engine: Engine) -> Engine:
    """The same engine (same pool) whose transactions take SQLite's write lock up front.

    Use it for transactions that write. On PostgreSQL the option is ignored.
    """
    return engine.execution_options(**{_SQLITE_BEGIN: "IMMEDIATE"})


def check_connection(url: str | URL, *, timeout_s: int = 3) -> None:
    """Raise ``StorageError`` (one line, password masked) unless the database can be used.

    Called before anything is written, so that a failed start leaves no half-made state: for SQLite
    it therefore opens nothing for writing, it only checks that the file could be created or opened.
    """
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        _check_sqlite(parsed)
        return
    connect_args = {"connect_timeout": max(2, timeout_s), "application_name": "tradesignals-check"}
    engine = sa.create_engine(parsed, poolclass=pool.NullPool, connect_args=connect_args)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except exc.DBAPIError as err:
        raise StorageError(
            f"cannot reach PostgreSQL at {describe_url(parsed)}: {_driver_message(err, parsed)}"
        ) from None
    finally:
        engine.dispose()


def _check_sqlite(url: URL) -> None:
    path = _sqlite_path(url)
    if path is None:
        return
    where = f"SQLite database {path}"
    if path.is_dir():
        raise StorageError(f"{where} is a directory, not a file")
    if path.exists():
        if not os.access(path, os.R_OK | os.W_OK):
            raise StorageError(f"{where} is not readable and writable by this user")
        import sqlite3

        try:
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=2)
            try:
                conn.execute("PRAGMA schema_version").fetchone()
            finally:
                conn.close()
        except sqlite3.Error as err:
            raise StorageError(f"{where} cannot be opened: {one_line(err)}") from None
        return
    ancestor = path.parent.resolve()
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        raise StorageError(f"{where} cannot be created: {ancestor} is not a writable directory")


def _driver_message(err: exc.DBAPIError, url: URL) -> str:
    text = one_line(err.orig) if err.orig is not None else one_line(err)
    if url.password:
        text = text.replace(str(url.password), "***")
    return text


_UNIQUE_SQLSTATE = "23505"
_FK_SQLSTATE = "23503"


def _is_unique_violation(err: exc.IntegrityError) -> bool:
    orig = err.orig
    if getattr(orig, "sqlstate", None) == _UNIQUE_SQLSTATE:
        return True
    name = getattr(orig, "sqlite_errorname", "")
    return name in ("SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY")


def _is_foreign_key_violation(err: exc.IntegrityError) -> bool:
    orig = err.orig
    if getattr(orig, "sqlstate", None) == _FK_SQLSTATE:
        return True
    return getattr(orig, "sqlite_errorname", "") == "SQLITE_CONSTRAINT_FOREIGNKEY"


@contextmanager
def storage_errors(what: str, engine: Engine, *, missing_reference: str | None = None) -> Iterator[None]:
    """Turn SQLAlchemy/driver errors into one-line ``StorageError``s (``DuplicateError`` for a key).

    ``what`` says what was being done ("adding signal X"), so the one line is enough to act on;
    ``missing_reference`` replaces the driver's wording of a foreign-key violation, which names
    constraints rather than the missing thing. Errors that are not the database's (a bug in our
    code, a bad argument) pass through untouched.
    """
    try:
        yield
    except exc.IntegrityError as err:
        message = f"{what}: {_driver_message(err, engine.url)}"
        if _is_unique_violation(err):
            raise DuplicateError(message) from None
        if missing_reference is not None and _is_foreign_key_violation(err):
            raise StorageError(missing_reference) from None
        raise StorageError(message) from None
    except exc.DBAPIError as err:
        raise StorageError(
            f"{what}: database {describe_url(engine.url)}: {_driver_message(err, engine.url)}"
        ) from None
    except exc.SQLAlchemyError as err:
        if isinstance(err, exc.StatementError) and not isinstance(err, exc.DBAPIError):
            raise  # a bind-parameter conversion failed in our own code: a bug, keep the traceback
        raise StorageError(f"{what}: database {describe_url(engine.url)}: {one_line(err)}") from None


# ---------------------------------------------------------------------------------------------
# Migrations


def alembic_config(url: str | URL | None = None) -> Config:
    """An Alembic config pointing at the migrations shipped inside the package.

    Built in code so that migrating never depends on the current directory or an alembic.ini.
    (Alembic is imported where it is used: it costs a third of a second that the CLI need not pay.)
    """
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        # ConfigParser interpolates '%', which URL-encoded passwords contain.
        config.set_main_option(
            "sqlalchemy.url", parse_url(url).render_as_string(hide_password=False).replace("%", "%%")
        )
    return config


def head_revision() -> str:
    """The newest revision this code knows."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships 0001
        raise StorageError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


def migrate(engine_or_url: Engine | str | URL, revision: str = "head") -> None:
    """Upgrade the schema to ``revision``; a database already there is left untouched.

    Runs in one transaction (both databases have transactional DDL), so a failed upgrade leaves the
    schema as it was; on PostgreSQL an advisory lock makes concurrent starts take turns.
    """
    _run_alembic(engine_or_url, "upgrade", revision)


def downgrade(engine_or_url: Engine | str | URL, revision: str) -> None:
    """Downgrade the schema to ``revision`` (``"base"``: drop everything). Destroys data."""
    _run_alembic(engine_or_url, "downgrade", revision)


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None when it has never been migrated."""
    from alembic.runtime.migration import MigrationContext

    with storage_errors("reading the schema revision", engine), engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _run_alembic(engine_or_url: Engine | str | URL, action: str, revision: str) -> None:
    from alembic.util import CommandError

    owned = not isinstance(engine_or_url, Engine)
    engine = make_engine(engine_or_url) if not isinstance(engine_or_url, Engine) else engine_or_url
    what = f"{action} of {describe_url(engine.url)} to {revision}"
    try:
        with _ALEMBIC_LOCK, storage_errors(what, engine):
            _run_alembic_on(engine, action, revision)
    except CommandError as err:
        message = one_line(err)
        if "Can't locate revision" in message:
            message += " (the database was migrated by a newer release of tradesignals)"
        raise StorageError(f"{what} failed: {message}") from None
    finally:
        if owned:
            engine.dispose()


def _run_alembic_on(engine: Engine, action: str, revision: str) -> None:
    from alembic import command

    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as conn:
        if sqlite:
            # SQLite's documented procedure for schema changes: foreign keys off outside the
            # transaction (table rebuilds would otherwise cascade or fail), checked before commit.
            conn.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
            conn = conn.execution_options(**{_SQLITE_BEGIN: "IMMEDIATE"})
        try:
            with conn.begin():
                if engine.dialect.name == "postgresql":
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_MIGRATION_LOCK)))
                config = alembic_config()
                config.attributes["connection"] = conn
                if action == "upgrade":
                    command.upgrade(config, revision)
                else:
                    command.downgrade(config, revision)
                if sqlite:
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise StorageError(
                            f"{action} to {revision} would leave {len(broken)} rows with dangling foreign keys"
                            f" (first in table {broken[0][0]})"
                        )
        finally:
            if sqlite:
                try:
                    conn.connection.driver_connection.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]
                except Exception:
                    # Never hand a connection with foreign keys off back to the pool.
                    conn.invalidate()
