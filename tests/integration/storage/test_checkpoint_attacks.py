"""Signed checkpoints against the attacks they exist for, on SQLite and on a real PostgreSQL schema.

An attacker here has the database owner's rights (drops or disables the append-only triggers) but
not the signing key, except where a test swaps it. Each attack is checked twice: by ``ledger verify
--known`` on the database and by ``ledger verify --remote`` against the app served on a real
loopback port, reading nothing but the public API.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import uvicorn

from tradesignals.api.app import create_app
from tradesignals.config import load_settings
from tradesignals.domain.checkpoints import Checkpoint, sign
from tradesignals.domain.ledger import entry_body, entry_hash
from tradesignals.domain.signals import (
    Direction,
    Signal,
    SignalEvent,
    SignalEventKind,
    SignalStatus,
    SignalType,
    new_signal_id,
)
from tradesignals.engine.checkpointer import Checkpointer
from tradesignals.ledger_cli import checkpoint_command, load_known, verify_command
from tradesignals.signing import Ed25519Signer
from tradesignals.storage.tables import SignalEventRow
from tradesignals.wiring import Services, build_services

pytestmark = pytest.mark.integration

T0 = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)


@dataclass
class Node:
    services: Services
    url: str
    db_url: str
    home: Path

    @property
    def checkpointer(self) -> Checkpointer:
        assert self.services.signer is not None
        return Checkpointer(self.services.checkpoints, self.services.signer)

    def local(self, known: Path | None = None) -> tuple[int, str]:
        lines: list[str] = []
        settings = load_settings(home=self.home, database_url=self.db_url)
        code = verify_command(settings, known=known, echo=lines.append)
        assert len(lines) == 1
        return code, lines[0]

    def remote(self, known: Path | None = None) -> tuple[int, str]:
        lines: list[str] = []
        code = verify_command(remote=self.url, known=known, echo=lines.append)
        assert len(lines) == 1
        return code, lines[0]

    def save(self, file: Path) -> None:
        lines: list[str] = []
        settings = load_settings(home=self.home, database_url=self.db_url)
        assert checkpoint_command(file, settings, echo=lines.append) == 0, lines


@pytest.fixture
def node(db_url: str, tmp_path: Path) -> Iterator[Node]:
    """The embedded app over ``db_url``, served by uvicorn on a free loopback port in a thread."""
    services = asyncio.run(build_services(load_settings(home=tmp_path, database_url=db_url)))
    app = create_app(services, roles=frozenset({"api"}))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    yield Node(services, f"http://127.0.0.1:{port}", db_url, tmp_path)
    server.should_exit = True  # the lifespan closes the services
    thread.join(20)
    sock.close()


def grow(services: Services, n: int, start: int = 0) -> None:
    """``n`` signals, each created and closed (closed: the API serves them unsealed)."""
    for i in range(start, start + n):
        created = T0 + timedelta(minutes=i)
        s = Signal(
            id=new_signal_id(int(created.timestamp() * 1e9) + i),
            symbol="AAPL" if i % 2 else "MSFT",
            type=SignalType.SWING,
            direction=Direction.LONG,
            entry=100.0 + i / 10,
            stop=95.0,
            targets=(110.0,),
            confidence=0.6,
            created_at=created,
            expires_at=created + timedelta(days=3),
            model_version="m1",
        )
        services.signals.add(s)
        pnl = 2.5 if i % 3 else -1.25
        status = SignalStatus.TARGET_HIT if pnl > 0 else SignalStatus.STOPPED
        event = SignalEvent(s.id, SignalEventKind.CLOSED, created + timedelta(hours=1), {"pnl_pct": pnl})
        services.signals.set_status(s.id, status, event)


def disable_triggers(node: Node) -> None:
    """What a database owner does first; the signed checkpoints must still tell."""
    with node.services.db.begin() as conn:
        if node.services.db.dialect.name == "sqlite":
            names = conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type='trigger'").scalars()
            for name in list(names):
                conn.exec_driver_sql(f'DROP TRIGGER "{name}"')
        else:
            conn.exec_driver_sql("ALTER TABLE signal_events DISABLE TRIGGER USER")
            conn.exec_driver_sql("ALTER TABLE ledger_checkpoints DISABLE TRIGGER USER")


def history(node: Node, tmp_path: Path) -> tuple[Path, list[Checkpoint]]:
    """Two rounds of signals, a checkpoint after each, both saved by an outsider in a file."""
    known = tmp_path / "known.jsonl"
    grow(node.services, 4)  # seq 1..8
    node.checkpointer.checkpoint()
    node.save(known)
    grow(node.services, 3, start=4)  # seq 9..14
    node.checkpointer.checkpoint()
    lines: list[str] = []
    assert checkpoint_command(known, remote=node.url, echo=lines.append) == 0, lines
    saved = load_known(known)
    assert [(cp.number, cp.seq) for cp in saved] == [(1, 8), (2, 14)]
    return known, saved


# --- stored append-only --------------------------------------------------------------------------

REFUSED = "append-only"


def test_checkpoints_are_stored_in_order_and_the_database_refuses_edits(node: Node) -> None:
    grow(node.services, 2)
    first = node.checkpointer.checkpoint()
    grow(node.services, 1, start=2)
    second = node.checkpointer.checkpoint()
    repo = node.services.checkpoints
    assert repo.page() == [first, second] and repo.latest() == second
    assert (first.number, first.seq, second.number, second.seq) == (1, 4, 2, 6)
    assert second.previous_checkpoint_hash == first.hash
    assert second.head_hash == node.services.signals.ledger()[-1].hash
    assert repo.page(from_number=2, limit=1) == [second]
    statements = [
        "UPDATE ledger_checkpoints SET seq = 1 WHERE number = 2",
        "DELETE FROM ledger_checkpoints WHERE number = 2",
        "DELETE FROM ledger_checkpoints",
    ]
    if node.services.db.dialect.name == "postgresql":
        statements.append("TRUNCATE ledger_checkpoints")
    else:
        cols = "number, seq, head_hash, at, previous_checkpoint_hash, public_key, signature, hash"
        statements.append(
            f"INSERT OR REPLACE INTO ledger_checkpoints ({cols}) VALUES"
            f" (2, 0, '{'0' * 64}', '2026-01-05 15:00:00.000000', '{'0' * 64}', '{'0' * 64}', '{'0' * 128}', 'x')"
        )
    for statement in statements:
        with pytest.raises(sa.exc.DatabaseError, match=REFUSED), node.services.db.begin() as conn:
            conn.exec_driver_sql(statement)
    assert repo.page() == [first, second]


# --- honest growth -------------------------------------------------------------------------------


def test_an_honest_ledger_that_grew_since_the_saved_checkpoints_verifies(node: Node, tmp_path: Path) -> None:
    known, _ = history(node, tmp_path)
    grow(node.services, 5, start=7)  # grows past the last checkpoint, without a new one
    code, line = node.local(known)
    assert code == 0, line
    assert (
        line.startswith("ledger ok: 24 entries, head ")
        and "2 checkpoints verified (latest 2 at seq 14)" in line
    )
    assert "extends all 2 saved checkpoints" in line
    code, line = node.remote(known)
    assert code == 0, line
    assert "24 entries" in line and "extends all 2 saved checkpoints" in line


# --- the attacks ---------------------------------------------------------------------------------


def test_dropping_the_newest_entries_is_named(node: Node, tmp_path: Path) -> None:
    known, _ = history(node, tmp_path)
    disable_triggers(node)
    with node.services.db.begin() as conn:
        conn.execute(sa.delete(SignalEventRow).where(SignalEventRow.seq > 11))
    for code, line in (node.local(known), node.remote(known), node.local(), node.remote()):
        assert code == 1
        assert line.startswith("ledger contradicts checkpoint 2: ") and "ends at seq 11" in line, line
    # A careful attacker deletes the checkpoint too: the server's own then agree, the saved one not.
    with node.services.db.begin() as conn:
        conn.exec_driver_sql("DELETE FROM ledger_checkpoints WHERE number = 2")
    assert node.remote()[0] == 0  # why people keep checkpoints
    for code, line in (node.local(known), node.remote(known)):
        assert code == 1
        assert (
            line.startswith("ledger contradicts checkpoint 2: saved checkpoint 2 (seq 14")
            and "missing" in line
        )


def test_an_edited_entry_with_every_later_hash_recomputed_is_named(node: Node, tmp_path: Path) -> None:
    known, _ = history(node, tmp_path)
    disable_triggers(node)
    entries = node.services.signals.ledger()
    prev = entries[0].hash
    assert entries[1].data == {"pnl_pct": -1.25}
    with node.services.db.begin() as conn:
        for e in entries[1:]:  # seq 2, a loss, becomes a win; every later entry re-chained
            data = {"pnl_pct": 9.0} if e.seq == 2 else e.data
            assert data is not None
            digest = entry_hash(prev, entry_body(e.seq, e.signal_id, e.kind, e.at, data))
            conn.execute(
                sa.update(SignalEventRow)
                .where(SignalEventRow.seq == e.seq)
                .values(data=data, prev_hash=prev, hash=digest)
            )
            prev = digest
    plain = node.local()
    assert plain[0] == 1 and plain[1].startswith("ledger contradicts checkpoint 1: ")
    for code, line in (node.local(known), node.remote(known), node.remote()):
        assert code == 1
        assert line.startswith("ledger contradicts checkpoint 1: the ledger's entry 8 hashes to "), line
        assert "history up to checkpoint 1 was rewritten" in line


def test_swapping_the_signing_key_without_a_rotation_is_named(node: Node, tmp_path: Path) -> None:
    known, _ = history(node, tmp_path)
    intruder = Ed25519Signer.generate()
    with pytest.raises(ValueError, match="not the key in force"):
        Checkpointer(node.services.checkpoints, intruder).check_key()  # the service refuses to start

    def forge(seq: int, head: str, previous: Checkpoint | None) -> Checkpoint:
        assert previous is not None
        return sign(
            intruder, number=previous.number + 1, seq=seq, head_hash=head, at=datetime.now(UTC),
            previous_checkpoint_hash=previous.hash,
        )  # fmt: skip

    grow(node.services, 1, start=7)
    node.services.checkpoints.append(forge)
    node.services.signer = intruder  # the server now announces the new key
    for code, line in (node.local(known), node.remote(known), node.remote()):
        assert code == 1
        assert line.startswith("ledger contradicts checkpoint 3: checkpoint 3: signed by key ") and (
            "key swapped without a rotation checkpoint" in line
        ), line

    # Rewriting every checkpoint with the new key from scratch is self-consistent; the saved ones tell.
    disable_triggers(node)
    with node.services.db.begin() as conn:
        conn.exec_driver_sql("DELETE FROM ledger_checkpoints")
    Checkpointer(node.services.checkpoints, intruder).checkpoint()
    assert node.remote()[0] == 0
    for code, line in (node.local(known), node.remote(known)):
        assert code == 1
        assert (
            line.startswith("ledger contradicts checkpoint 1: saved checkpoint 1 (seq 8")
            and "differs" in line
        )


def test_a_forged_checkpoint_is_rejected_and_never_saved(node: Node, tmp_path: Path) -> None:
    known, saved = history(node, tmp_path)
    real = node.checkpointer.checkpoint()
    disable_triggers(node)
    bad = ("0" if real.signature[0] != "0" else "1") + real.signature[1:]
    with node.services.db.begin() as conn:
        conn.exec_driver_sql(f"UPDATE ledger_checkpoints SET signature = '{bad}' WHERE number = 3")
    for code, line in (node.local(known), node.remote(known)):
        assert code == 1
        assert line == "ledger contradicts checkpoint 3: checkpoint 3: bad signature (forged or altered)"
    lines: list[str] = []
    assert checkpoint_command(known, remote=node.url, echo=lines.append) == 1
    assert lines == [f"ledger checkpoint refused: {real.describe()} has a bad signature (forged or altered)"]
    assert load_known(known) == saved
