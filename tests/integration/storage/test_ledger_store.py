"""The ledger as stored: hashes written with every event, the database refusing edits, verify
catching tampering at rest, and migration 0002 chaining rows written before it — on SQLite and on
a real PostgreSQL schema alike."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tradesignals.config import load_settings
from tradesignals.domain.ledger import GENESIS, Chain, Problem, entry_body, entry_hash, verify
from tradesignals.domain.signals import (
    Direction,
    Signal,
    SignalEvent,
    SignalEventKind,
    SignalStatus,
    SignalType,
    new_signal_id,
)
from tradesignals.ledger_cli import verify_command, verify_ledger, walk
from tradesignals.storage.base import CloseQuery, StorageError
from tradesignals.storage.db import current_revision, downgrade, head_revision, make_engine, migrate
from tradesignals.storage.repositories import SqlSignalRepository, signal_data
from tradesignals.storage.tables import SignalEventRow, SignalRow, UtcDateTime

pytestmark = pytest.mark.integration

T0 = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)
T0_MS = int(T0.timestamp() * 1000)


@pytest.fixture
def repo(engine: Engine) -> SqlSignalRepository:
    return SqlSignalRepository(engine)


def make_signal(n: int = 0, **kw: object) -> Signal:
    created = T0 + timedelta(minutes=n)
    base: dict[str, object] = {
        "id": new_signal_id((T0_MS + n * 60_000) * 1_000_000),
        "symbol": "AAPL",
        "type": SignalType.SWING,
        "direction": Direction.LONG,
        "entry": 100.0,
        "stop": 95.0,
        "targets": (105.0, 110.0),
        "confidence": 0.6,
        "created_at": created,
        "expires_at": created + timedelta(days=5),
        "model_version": "m1",
    }
    base.update(kw)
    return Signal(**base)  # type: ignore[arg-type]


def close(repo: SqlSignalRepository, s: Signal, at: datetime, pnl: float, **data: Any) -> None:
    status = SignalStatus.TARGET_HIT if pnl > 0 else SignalStatus.STOPPED
    payload = {"outcome": "target" if pnl > 0 else "stop", "pnl_pct": pnl, **data}
    repo.set_status(s.id, status, SignalEvent(s.id, SignalEventKind.CLOSED, at, payload))


def disable_triggers(engine: Engine) -> None:
    """What an attacker with the table owner's rights does first: the chain must still tell."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            names = conn.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type='trigger' AND tbl_name='signal_events'"
            ).scalars()
            for name in list(names):
                conn.exec_driver_sql(f"DROP TRIGGER {name}")
        else:
            conn.exec_driver_sql("ALTER TABLE signal_events DISABLE TRIGGER USER")


def fill(repo: SqlSignalRepository, n: int = 6) -> list[Signal]:
    signals = [make_signal(i, symbol="AAPL" if i % 2 else "MSFT") for i in range(n)]
    for i, s in enumerate(signals):
        repo.add(s)
        repo.add_event(SignalEvent(s.id, SignalEventKind.UPDATED, s.created_at, {"stop": 96.0 + i}))
        if i % 3 == 0:
            close(repo, s, s.created_at + timedelta(hours=1), pnl=2.5 - i)
    return signals


# --- written with every event --------------------------------------------------------------------


def test_every_write_path_appends_a_linked_entry(repo: SqlSignalRepository) -> None:
    s = make_signal()
    repo.add(s)
    [created] = repo.ledger()
    assert created.seq == 1 and created.prev_hash == GENESIS
    assert created.data is not None and created.at == s.created_at
    salt = created.data["salt"]  # 128 random bits: a sealed hash cannot be confirmed by guessing
    assert created.kind == "created" and created.data == signal_data(s) | {"salt": salt}
    assert len(bytes.fromhex(salt)) == 16
    assert created.hash == entry_hash(GENESIS, entry_body(1, s.id, "created", s.created_at, created.data))
    assert created.hash != entry_hash(GENESIS, entry_body(1, s.id, "created", s.created_at, signal_data(s)))
    assert repo.events()[0].event.data == signal_data(s)  # the engine's view: no salt

    updated = repo.add_event(SignalEvent(s.id, SignalEventKind.UPDATED, T0, {"stop": 97.5}))
    close(repo, s, T0 + timedelta(hours=2), pnl=5.0)
    entries = repo.ledger()
    assert [e.seq for e in entries] == [1, 2, 3] and updated.seq == 2
    assert [e.kind for e in entries] == ["created", "updated", "closed"]
    assert entries[1].prev_hash == entries[0].hash and entries[2].prev_hash == entries[1].hash
    assert [e.seq for e in repo.events()] == [1, 2, 3]
    result = verify(entries)
    assert result.ok and result.checked == 3 and result.head == entries[2].hash


def test_stored_data_is_exactly_what_was_hashed(repo: SqlSignalRepository) -> None:
    """Values whose JSON text is easy to get subtly wrong must read back to the same hash."""
    s = make_signal(reasons=("RSI 74 → 61", 'quote " and \\ slash'))
    repo.add(s)
    tricky: dict[str, object] = {
        "tenth": 0.1,
        "sum": 0.1 + 0.2,
        "whole": 5.0,
        "int": 5,
        "big": 1e22,
        "tiny": 5e-324,
        "neg_zero": -0.0,
        "huge_int": 2**70,
        "text": "naïve ünïcode ✓ \u2028 \x00",
        "nested": {"b": [1, 2.5, None, True], "a": {}},
        "when": datetime(2026, 1, 5, 17, 30, 0, 123456, tzinfo=UTC),
    }
    repo.add_event(SignalEvent(s.id, SignalEventKind.UPDATED, T0 + timedelta(microseconds=7), tricky))
    entries = repo.ledger()
    assert verify(entries).ok
    stored = entries[-1].data
    assert stored is not None
    assert type(stored["whole"]) is float and type(stored["int"]) is int and stored["huge_int"] == 2**70
    assert str(stored["neg_zero"]) == "-0.0"
    assert entries[-1].at == T0 + timedelta(microseconds=7)


def test_the_chain_verifies_after_many_writes(repo: SqlSignalRepository) -> None:
    fill(repo, 30)
    entries = repo.ledger(limit=10_000)
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    assert len(entries) == 30 * 2 + 10
    # Recomputed from the entries' content alone (salts included), independently of the stored hashes.
    chain = Chain()
    for e in entries:
        assert e.data is not None
        chain.append(e.signal_id, e.kind, e.at, e.data)
    assert verify(entries).head == chain.head
    # Paging (the CLI walks the ledger this way) sees the same chain.
    assert list(walk(repo, page=7)) == entries


def test_ledger_ranges_are_inclusive_and_clamped(repo: SqlSignalRepository) -> None:
    fill(repo, 4)
    assert [e.seq for e in repo.ledger(3, 5)] == [3, 4, 5]
    assert [e.seq for e in repo.ledger(from_seq=9)] == [9, 10]
    assert [e.seq for e in repo.ledger(2, limit=2)] == [2, 3]
    assert repo.ledger(5, 4) == []
    assert len(repo.ledger(limit=0)) == 1


def test_concurrent_writers_keep_one_gapless_chain(db_url: str, repo: SqlSignalRepository) -> None:
    """Threads sharing a pool and threads with engines of their own (as separate processes would)."""
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        own = make_engine(db_url) if worker % 2 else None
        writer = SqlSignalRepository(own) if own is not None else repo
        try:
            for n in range(6):
                s = make_signal(worker * 100 + n, symbol=f"S{worker}")
                writer.add(s)
                writer.add_event(SignalEvent(s.id, SignalEventKind.UPDATED, s.created_at, {"w": worker}))
                if n % 2:
                    close(writer, s, s.created_at + timedelta(hours=1), pnl=1.0)
        except BaseException as err:
            errors.append(err)
        finally:
            if own is not None:
                own.dispose()

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    entries = repo.ledger(limit=10_000)
    assert len(entries) == 8 * (6 * 2 + 3)
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    result = verify(entries)
    assert result.ok, result.reason
    assert len({e.hash for e in entries}) == len(entries)


# --- the database refuses edits ------------------------------------------------------------------

REFUSED = "append-only"


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE signal_events SET data = '{}' WHERE seq = 2",
        "UPDATE signal_events SET hash = prev_hash WHERE seq = 3",
        "UPDATE signal_events SET seq = seq + 100",
        "DELETE FROM signal_events WHERE seq = 2",
        "DELETE FROM signal_events",
    ],
)
def test_update_and_delete_are_refused_by_the_database(
    repo: SqlSignalRepository, engine: Engine, statement: str
) -> None:
    fill(repo, 3)
    before = repo.ledger()
    with pytest.raises(sa.exc.DatabaseError, match=REFUSED), engine.begin() as conn:
        conn.exec_driver_sql(statement)
    assert repo.ledger() == before
    assert verify(before).ok


def test_postgresql_refuses_truncate_and_sqlite_a_replacing_insert(
    repo: SqlSignalRepository, engine: Engine
) -> None:
    fill(repo, 3)
    before = repo.ledger()
    e = before[1]
    if engine.dialect.name == "postgresql":
        attempts = ["TRUNCATE signal_events", "TRUNCATE signals CASCADE"]
    else:
        # INSERT OR REPLACE deletes the row it collides with without firing delete triggers.
        values = f"'{e.signal_id}', 'updated', '2026-01-05 15:00:00.000000', '{{}}', '{e.prev_hash}'"
        attempts = [
            f"INSERT OR REPLACE INTO signal_events (seq, signal_id, kind, at, data, prev_hash, hash)"
            f" VALUES (2, {values}, '{'f' * 64}')",
            f"INSERT OR REPLACE INTO signal_events (seq, signal_id, kind, at, data, prev_hash, hash)"
            f" VALUES (999, {values}, '{e.hash}')",
            f"INSERT INTO signal_events (signal_id, kind, at, data, prev_hash, hash) VALUES ({values}, 'ab')",
        ]
    for statement in attempts:
        with pytest.raises(sa.exc.DatabaseError, match=REFUSED), engine.begin() as conn:
            conn.exec_driver_sql(statement)
    assert repo.ledger() == before


def test_a_refused_edit_leaves_the_ledger_writable(repo: SqlSignalRepository, engine: Engine) -> None:
    s = make_signal()
    repo.add(s)
    with pytest.raises(sa.exc.DatabaseError, match=REFUSED), engine.begin() as conn:
        conn.execute(sa.delete(SignalEventRow).where(SignalEventRow.signal_id == s.id))
    repo.add_event(SignalEvent(s.id, SignalEventKind.UPDATED, T0, {}))
    assert verify(repo.ledger()).ok


# --- tampering at rest, triggers disabled --------------------------------------------------------


def tamper(engine: Engine, *statements: str) -> None:
    disable_triggers(engine)
    with engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)


def test_a_changed_row_is_named(repo: SqlSignalRepository, engine: Engine) -> None:
    fill(repo, 4)
    tamper(engine, "UPDATE signal_events SET data = '{\"pnl_pct\": 99.0}' WHERE seq = 5")
    result = verify(repo.ledger())
    assert (result.ok, result.first_bad, result.problem) == (False, 5, Problem.HASH_MISMATCH)


def test_a_changed_time_is_named(repo: SqlSignalRepository, engine: Engine) -> None:
    fill(repo, 4)
    ts = (
        "'2026-01-05 15:00:00.000001'" if engine.dialect.name == "sqlite" else "at + interval '1 microsecond'"
    )
    tamper(engine, f"UPDATE signal_events SET at = {ts} WHERE seq = 3")
    result = verify(repo.ledger())
    assert (result.first_bad, result.problem) == (3, Problem.HASH_MISMATCH)


def test_a_deleted_row_is_named(repo: SqlSignalRepository, engine: Engine) -> None:
    fill(repo, 4)
    tamper(engine, "DELETE FROM signal_events WHERE seq = 4")
    result = verify(repo.ledger())
    assert (result.first_bad, result.problem) == (4, Problem.SEQ_GAP)
    assert result.checked == 3


def test_a_deleted_row_with_the_rest_renumbered_is_named(repo: SqlSignalRepository, engine: Engine) -> None:
    fill(repo, 4)
    tamper(
        engine,
        "DELETE FROM signal_events WHERE seq = 4",
        # Renumber downwards one row at a time so the primary key never collides.
        *[f"UPDATE signal_events SET seq = {n - 1} WHERE seq = {n}" for n in range(5, 11)],
    )
    result = verify(repo.ledger())
    assert (result.first_bad, result.problem) == (4, Problem.HASH_MISMATCH)


def test_two_swapped_rows_are_named(repo: SqlSignalRepository, engine: Engine) -> None:
    fill(repo, 4)
    tamper(
        engine,
        # Every column of rows 3 and 6 exchanged: park row 3 at seq -3, move row 6 to 3, then back.
        "UPDATE signal_events SET seq = -3 WHERE seq = 3",
        "UPDATE signal_events SET seq = 3 WHERE seq = 6",
        "UPDATE signal_events SET seq = 6 WHERE seq = -3",
    )
    result = verify(repo.ledger())
    assert (result.first_bad, result.problem) == (3, Problem.HASH_MISMATCH)


def test_cli_names_the_first_bad_entry(
    db_url: str, repo: SqlSignalRepository, engine: Engine, tmp_path: Path
) -> None:
    fill(repo, 4)
    settings = load_settings(home=tmp_path, database_url=db_url)
    lines: list[str] = []
    assert verify_command(settings, echo=lines.append) == 0
    head = repo.ledger()[-1].hash
    assert lines == [f"ledger ok: 10 entries, head {head}"]
    assert verify_ledger(settings, page=3).head == head

    tamper(engine, "UPDATE signal_events SET kind = 'closed' WHERE seq = 7")
    lines.clear()
    assert verify_command(settings, echo=lines.append) == 1
    assert lines[0].startswith("ledger broken at seq 7: hash mismatch: seq 7 content hashes to ")


def test_cli_reads_nothing_it_cannot_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "nothing-here.db"
    lines: list[str] = []
    settings = load_settings(home=tmp_path, database_url=f"sqlite:///{missing}")
    assert verify_command(settings, echo=lines.append) == 2
    assert "no database at" in lines[0] and not missing.exists()

    old = tmp_path / "old.db"
    migrate(f"sqlite:///{old}", "0001")
    lines.clear()
    assert (
        verify_command(load_settings(home=tmp_path, database_url=f"sqlite:///{old}"), echo=lines.append) == 2
    )
    assert "revision 0001" in lines[0] and "migrate" in lines[0]


# --- migration 0002 ------------------------------------------------------------------------------

_events_0001 = sa.table(
    "signal_events",
    sa.column("seq", sa.BigInteger()),
    sa.column("signal_id", sa.String()),
    sa.column("kind", sa.String()),
    sa.column("at", UtcDateTime()),
    sa.column("data", sa.JSON()),
)


def write_at_0001(engine: Engine, signals: list[Signal], seqs: list[int] | None = None) -> None:
    """Rows as release 0001 wrote them: a created and an updated event per signal, no hashes."""
    rows = [
        {k: v for k, v in signal_data(s).items() if k not in ("decided_at", "base_rate", "confidence_rank")}
        | {"created_at": s.created_at, "expires_at": s.expires_at}
        for s in signals
    ]
    events: list[dict[str, Any]] = []
    for i, s in enumerate(signals):
        events.append({"signal_id": s.id, "kind": "created", "at": s.created_at, "data": signal_data(s)})
        events.append({"signal_id": s.id, "kind": "updated", "at": s.created_at, "data": {"stop": 90.0 + i}})
    if seqs is not None:
        for event, seq in zip(events, seqs, strict=True):
            event["seq"] = seq
    with engine.begin() as conn:
        conn.execute(sa.insert(SignalRow), rows)
        for event in events:  # one at a time: seq order is insertion order
            conn.execute(sa.insert(_events_0001), event)


def test_migration_chains_the_rows_written_at_0001(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        migrate(engine, "0001")
        signals = [make_signal(i) for i in range(5)]
        write_at_0001(engine, signals)
        migrate(engine)
        assert current_revision(engine) == head_revision()
        repo = SqlSignalRepository(engine)
        entries = repo.ledger()
        assert len(entries) == 10 and verify(entries).ok
        expected = Chain()
        for s in signals:
            expected.append(s.id, "created", s.created_at, signal_data(s))
            expected.append(s.id, "updated", s.created_at, {"stop": 90.0 + signals.index(s)})
        assert entries[-1].hash == expected.head

        # New writes extend the backfilled chain.
        later = make_signal(10)
        repo.add(later)
        close(repo, later, later.created_at + timedelta(days=1), pnl=-1.0)
        after = repo.ledger()
        assert [e.seq for e in after] == list(range(1, 13)) and verify(after).ok

        # Down and up again: the same content gives the same hashes; 0001 can write in between.
        downgrade(engine, "0001")
        assert "hash" not in {c["name"] for c in sa.inspect(engine).get_columns("signal_events")}
        with engine.begin() as conn:
            conn.execute(
                sa.insert(_events_0001), {"signal_id": later.id, "kind": "updated", "at": T0, "data": {}}
            )
            conn.exec_driver_sql("UPDATE signal_events SET data = data WHERE seq = 1")  # no trigger at 0001
        migrate(engine)
        again = repo.ledger()
        assert again[:12] == after and again[12].seq == 13 and verify(again).ok
    finally:
        engine.dispose()


def test_migration_refuses_a_ledger_with_a_gap_and_changes_nothing(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        migrate(engine, "0001")
        write_at_0001(engine, [make_signal(0), make_signal(1)], seqs=[1, 2, 4, 5])
        with pytest.raises(StorageError, match="seq 3 is missing") as info:
            migrate(engine)
        assert "\n" not in str(info.value)
        assert current_revision(engine) == "0001"
        assert "hash" not in {c["name"] for c in sa.inspect(engine).get_columns("signal_events")}
    finally:
        engine.dispose()


# --- reads for the history and the public ledger -------------------------------------------------


def test_closes_newest_first_with_filters_and_cursor(repo: SqlSignalRepository) -> None:
    a = make_signal(0, symbol="AAPL")
    b = make_signal(1, symbol="MSFT", type=SignalType.DAY)
    c = make_signal(2, symbol="AAPL")
    d = make_signal(3, symbol="AAPL")  # stays open
    for s in (a, b, c, d):
        repo.add(s)
    close(repo, c, datetime(2026, 1, 31, 23, 59, 59, tzinfo=UTC), pnl=3.0)
    close(repo, a, datetime(2026, 2, 1, 0, 0, tzinfo=UTC), pnl=-1.0)
    close(repo, b, datetime(2026, 2, 3, tzinfo=UTC), pnl=2.0)
    # A second close of a (the ledger keeps what was appended): only the latest counts.
    repo.add_event(
        SignalEvent(a.id, SignalEventKind.CLOSED, datetime(2026, 2, 4, tzinfo=UTC), {"pnl_pct": -0.5})
    )

    def ids(**kw: Any) -> list[str]:
        return [x.signal.id for x in repo.closes(CloseQuery(**kw))]

    assert ids() == [a.id, b.id, c.id]
    latest = repo.closes(CloseQuery(limit=1))[0]
    assert latest.close.event.data == {"pnl_pct": -0.5} and latest.signal.status is SignalStatus.STOPPED
    assert ids(symbol="AAPL") == [a.id, c.id]
    assert ids(type=SignalType.DAY) == [b.id]
    feb = {"closed_since": datetime(2026, 2, 1, tzinfo=UTC), "closed_until": datetime(2026, 3, 1, tzinfo=UTC)}
    assert ids(**feb) == [a.id, b.id]
    assert ids(closed_until=datetime(2026, 2, 1, tzinfo=UTC)) == [c.id]
    first = repo.closes(CloseQuery(limit=2))
    assert ids(before_seq=first[-1].close.seq) == [c.id]
    # The outcomes of a page of signals: only those named, open or unknown ones simply absent.
    assert ids(signal_ids=(c.id, d.id, new_signal_id(), c.id)) == [c.id]
    assert ids(signal_ids=()) == []
    with pytest.raises(ValueError, match="naive"):
        repo.closes(CloseQuery(closed_since=datetime(2026, 1, 1)))


def test_closed_among(repo: SqlSignalRepository) -> None:
    signals = [make_signal(i) for i in range(3)]
    for s in signals:
        repo.add(s)
    close(repo, signals[1], T0 + timedelta(hours=1), pnl=1.0)
    unknown = new_signal_id()
    assert repo.closed_among([s.id for s in signals] + [unknown]) == {signals[1].id}
    assert repo.closed_among([]) == set()
