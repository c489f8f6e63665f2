"""PostgreSQL backup and restore as docs/operations.md tells an operator to do it.

`pg_dump --format=custom` of a database holding signals and a signed checkpoint, `pg_restore` into a
scratch database this test creates (and drops), then `tradesignals ledger verify` against the
restored copy: it passes and reports the same entries and checkpoint, the rows are the same, the
append-only triggers came back (an UPDATE of the ledger is refused), and the schema is at head.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from tradesignals.domain.signals import Direction, Signal, SignalType, new_signal_id
from tradesignals.engine.checkpointer import Checkpointer
from tradesignals.signing import Ed25519Signer
from tradesignals.storage.checkpoints import SqlCheckpointRepository
from tradesignals.storage.db import current_revision, head_revision, make_engine, migrate
from tradesignals.storage.repositories import SqlSignalRepository

pytestmark = pytest.mark.integration


@pytest.fixture
def two_databases(pg_admin_url: str) -> Iterator[tuple[str, str]]:
    """A source and an empty scratch database, both created here and dropped afterwards."""
    names = [f"ts_backup_{uuid.uuid4().hex[:8]}", f"ts_restore_{uuid.uuid4().hex[:8]}"]
    try:
        with psycopg.connect(pg_admin_url, autocommit=True, connect_timeout=3) as conn:
            for name in names:
                conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as err:
        if os.environ.get("TS_REQUIRE_SERVICES") == "1":
            pytest.fail(f"PostgreSQL is not reachable ({err})", pytrace=False)
        pytest.skip(f"PostgreSQL is not reachable ({err})")
    base = pg_admin_url.rsplit("/", 1)[0]
    yield f"{base}/{names[0]}", f"{base}/{names[1]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        for name in names:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def sqla(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def rows(url: str) -> dict[str, list[tuple[object, ...]]]:
    engine = make_engine(sqla(url))
    with engine.connect() as conn:
        out = {
            "signals": list(conn.execute(sa.text("SELECT id, status FROM signals ORDER BY id"))),
            "signal_events": list(
                conn.execute(sa.text("SELECT seq, signal_id, kind, hash FROM signal_events ORDER BY seq"))
            ),
            "ledger_checkpoints": list(
                conn.execute(
                    sa.text(
                        "SELECT number, seq, head_hash, signature FROM ledger_checkpoints ORDER BY number"
                    )
                )
            ),
        }
    engine.dispose()
    return out


@pytest.mark.skipif(
    shutil.which("pg_dump") is None or shutil.which("pg_restore") is None, reason="no pg_dump/pg_restore"
)
def test_pg_dump_then_pg_restore_into_a_scratch_database_verifies(
    two_databases: tuple[str, str], tmp_path: Path
) -> None:
    source, scratch = two_databases
    engine = make_engine(sqla(source))
    migrate(engine)
    repo = SqlSignalRepository(engine)
    now = datetime(2026, 3, 2, 15, tzinfo=UTC)
    for i in range(6):
        repo.add(
            Signal(
                id=new_signal_id(),
                symbol=f"S{i % 3}",
                type=SignalType.SWING,
                direction=Direction.LONG,
                entry=100.0 + i,
                stop=95.0,
                targets=(110.0 + i,),
                confidence=0.6,
                created_at=now + timedelta(minutes=i),
                expires_at=now + timedelta(days=3),
                model_version="m",
            )
        )
    key = tmp_path / "ledger-key.pem"
    signer = Ed25519Signer.generate()
    key.write_bytes(signer.pem())
    key.chmod(0o600)
    Checkpointer(SqlCheckpointRepository(engine), signer).checkpoint()
    engine.dispose()

    dump = tmp_path / "tradesignals.dump"
    host = ["--host", "127.0.0.1", "--username", "postgres", "--no-password"]
    subprocess.run(
        ["pg_dump", *host, "--format=custom", "--file", str(dump), "--dbname", source.rsplit("/", 1)[1]],
        check=True,
        timeout=120,
    )
    restore = subprocess.run(
        [
            "pg_restore",
            *host,
            "--exit-on-error",
            "--no-owner",
            "--dbname",
            scratch.rsplit("/", 1)[1],
            str(dump),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert restore.returncode == 0, restore.stderr

    env = {
        **os.environ,
        "TS_MODE": "server",
        "TS_DATABASE_URL": sqla(scratch),
        "TS_HOME": str(tmp_path / "home"),
    }
    verify = subprocess.run(
        [sys.executable, "-m", "tradesignals.cli", "ledger", "verify"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "ledger ok: 6 entries" in verify.stdout and "checkpoint" in verify.stdout
    assert rows(scratch) == rows(source)
    restored = make_engine(sqla(scratch))
    assert current_revision(restored) == head_revision()
    with pytest.raises(sa.exc.DBAPIError), restored.begin() as conn:  # the append-only triggers came back
        conn.execute(sa.text("UPDATE signal_events SET kind = kind WHERE seq = 1"))
    restored.dispose()
