"""SqlSignalRepository against a real SQLite file and a real PostgreSQL schema, same tests on both."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tradesignals.domain.signals import (
    Direction,
    Signal,
    SignalEvent,
    SignalEventKind,
    SignalStatus,
    SignalType,
    new_signal_id,
)
from tradesignals.storage.base import DuplicateError, SignalQuery, StorageError
from tradesignals.storage.db import make_engine
from tradesignals.storage.repositories import SqlSignalRepository, signal_data
from tradesignals.storage.tables import SignalRow

pytestmark = pytest.mark.integration

T0 = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)
T0_MS = int(T0.timestamp() * 1000)


@pytest.fixture
def repo(engine: Engine) -> SqlSignalRepository:
    return SqlSignalRepository(engine)


def make_signal(n: int = 0, **kw: object) -> Signal:
    """Signal number ``n``: its id and created_at both grow with ``n`` (one minute apart)."""
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


def test_every_field_round_trips(repo: SqlSignalRepository) -> None:
    est = timezone(timedelta(hours=-5))
    signal = Signal(
        id=new_signal_id(),
        symbol="BRK.B",
        type=SignalType.EVENT,
        direction=Direction.SHORT,
        entry=412.37,
        stop=419.1,
        targets=(401.123456789, 395.5, 380.0),
        confidence=0.734512,
        created_at=datetime(2026, 3, 2, 9, 31, 7, 123456, tzinfo=est),
        expires_at=datetime(2026, 3, 9, 16, 0, tzinfo=est),
        model_version="lgbm-2026.03.01+abc123",
        status=SignalStatus.TARGET_HIT,
        timeframe="15m",
        reasons=("earnings beat", "gap down faded", "RSI 74 → 61"),
    )
    repo.add(signal)
    got = repo.get(signal.id)
    assert got == signal
    assert got is not None
    # Same instants, now expressed in UTC, with the microseconds kept.
    assert got.created_at.tzinfo is UTC
    assert got.expires_at.tzinfo is UTC
    assert got.created_at.isoformat() == "2026-03-02T14:31:07.123456+00:00"
    assert isinstance(got.targets, tuple)
    assert all(type(t) is float for t in got.targets)
    assert isinstance(got.reasons, tuple)
    assert got.reasons[2] == "RSI 74 → 61"
    assert got.type is SignalType.EVENT
    assert got.direction is Direction.SHORT
    assert got.status is SignalStatus.TARGET_HIT


def test_get_of_an_unknown_id_is_none(repo: SqlSignalRepository) -> None:
    assert repo.get(new_signal_id()) is None


def test_add_records_a_created_event_with_the_signal_fields(repo: SqlSignalRepository) -> None:
    signal = make_signal(reasons=("trend",))
    repo.add(signal)
    [stored] = repo.events(signal.id)
    assert stored.event.kind is SignalEventKind.CREATED
    assert stored.event.at == signal.created_at
    assert stored.event.at.tzinfo is UTC
    assert stored.event.data == signal_data(signal)
    assert stored.event.data["targets"] == [105.0, 110.0]
    assert stored.event.data["created_at"] == "2026-01-05T15:00:00+00:00"
    assert stored.event.data["type"] == "swing"
    assert stored.event.data["reasons"] == ["trend"]


def test_duplicate_id_raises_and_changes_nothing(repo: SqlSignalRepository) -> None:
    first = make_signal()
    repo.add(first)
    clash = make_signal(id=first.id, symbol="MSFT")
    with pytest.raises(DuplicateError) as info:
        repo.add(clash)
    assert first.id in str(info.value)
    assert "\n" not in str(info.value)
    assert repo.get(first.id) == first
    assert len(repo.events(first.id)) == 1  # the second created event was rolled back too


def test_query_filters(repo: SqlSignalRepository) -> None:
    a = make_signal(0, symbol="AAPL")
    b = make_signal(1, symbol="MSFT", type=SignalType.DAY)
    c = make_signal(2, symbol="AAPL", status=SignalStatus.STOPPED)
    d = make_signal(3, symbol="AAPL", type=SignalType.DAY, status=SignalStatus.EXPIRED)
    e = make_signal(4, symbol="MSFT")
    for s in (a, b, c, d, e):
        repo.add(s)

    def ids(**kw: object) -> list[str]:
        return [s.id for s in repo.query(SignalQuery(**kw))]  # type: ignore[arg-type]

    assert ids() == [e.id, d.id, c.id, b.id, a.id]
    assert ids(symbol="AAPL") == [d.id, c.id, a.id]
    assert ids(status=SignalStatus.STOPPED) == [c.id]
    assert ids(open_only=True) == [e.id, b.id, a.id]
    assert ids(closed_only=True) == [d.id, c.id]
    assert ids(open_only=True, closed_only=True) == []
    assert ids(type=SignalType.DAY) == [d.id, b.id]
    assert ids(symbol="AAPL", type=SignalType.DAY, closed_only=True) == [d.id]
    # since is inclusive, until exclusive; an offset other than UTC means the same instant.
    assert ids(since=b.created_at, until=d.created_at) == [c.id, b.id]
    assert ids(since=b.created_at.astimezone(timezone(timedelta(hours=9)))) == [e.id, d.id, c.id, b.id]
    assert ids(until=a.created_at) == []
    assert ids(symbol="NONE") == []


def test_query_pages_newest_first_with_the_cursor(repo: SqlSignalRepository) -> None:
    signals = [make_signal(n, symbol="AAPL" if n % 3 else "MSFT") for n in range(10)]
    # Insertion order must not matter: the order is the id's.
    for s in reversed(signals):
        repo.add(s)
    expected = [s.id for s in sorted(signals, key=lambda s: s.id, reverse=True)]

    seen: list[str] = []
    before: str | None = None
    while True:
        page = repo.query(SignalQuery(before_id=before, limit=3))
        seen += [s.id for s in page]
        if len(page) < 3:
            break
        before = page[-1].id
    assert seen == expected

    aapl = [s.id for s in sorted(signals, key=lambda s: s.id, reverse=True) if s.symbol == "AAPL"]
    first = repo.query(SignalQuery(symbol="AAPL", limit=4))
    rest = repo.query(SignalQuery(symbol="AAPL", before_id=first[-1].id, limit=4))
    assert [s.id for s in first + rest] == aapl[:8]


def test_query_limit_is_clamped_to_1_and_500(repo: SqlSignalRepository) -> None:
    for n in range(3):
        repo.add(make_signal(n))
    assert len(repo.query(SignalQuery(limit=0))) == 1
    assert len(repo.query(SignalQuery(limit=-5))) == 1
    # 500 more rows in one statement, to reach the upper clamp without 500 round trips.
    more = [make_signal(n) for n in range(3, 503)]
    rows = [{**signal_data(s), "created_at": s.created_at, "expires_at": s.expires_at} for s in more]
    with repo.engine.begin() as conn:
        conn.execute(sa.insert(SignalRow), rows)
    page = repo.query(SignalQuery(limit=10_000))
    assert len(page) == 500
    assert page[0] == more[-1]


def test_set_status_changes_the_row_and_appends_the_event(repo: SqlSignalRepository) -> None:
    signal = make_signal()
    repo.add(signal)
    at = signal.created_at + timedelta(hours=3)
    closing = SignalEvent(signal.id, SignalEventKind.CLOSED, at, {"status": "target_hit", "pnl_pct": 5.0})
    repo.set_status(signal.id, SignalStatus.TARGET_HIT, closing)

    got = repo.get(signal.id)
    assert got == signal.with_status(SignalStatus.TARGET_HIT)
    created, closed = repo.events(signal.id)
    assert created.seq < closed.seq
    assert closed.event == closing
    assert repo.query(SignalQuery(open_only=True)) == []


def test_set_status_writes_nothing_when_the_event_cannot_be_written(
    repo: SqlSignalRepository, engine: Engine
) -> None:
    signal = make_signal()
    repo.add(signal)
    with engine.begin() as conn:
        # Make the second statement of set_status fail inside the database, after the UPDATE.
        conn.exec_driver_sql("DROP TABLE signal_events")
    event = SignalEvent(signal.id, SignalEventKind.CLOSED, T0 + timedelta(hours=1), {})
    with pytest.raises(StorageError) as info:
        repo.set_status(signal.id, SignalStatus.STOPPED, event)
    assert "\n" not in str(info.value)
    assert signal.id in str(info.value)
    got = repo.get(signal.id)
    assert got is not None
    assert got.status is SignalStatus.OPEN


def test_set_status_of_an_unknown_signal_raises(repo: SqlSignalRepository) -> None:
    missing = new_signal_id()
    event = SignalEvent(missing, SignalEventKind.CLOSED, T0, {})
    with pytest.raises(StorageError, match=f"no signal with id {missing}"):
        repo.set_status(missing, SignalStatus.EXPIRED, event)
    assert repo.events() == []


def test_set_status_refuses_an_event_of_another_signal(repo: SqlSignalRepository) -> None:
    signal = make_signal()
    repo.add(signal)
    with pytest.raises(ValueError, match="event for signal"):
        repo.set_status(
            signal.id, SignalStatus.EXPIRED, SignalEvent("0" * 22, SignalEventKind.CLOSED, T0, {})
        )
    assert repo.get(signal.id) == signal


def test_close_once_writes_one_close_even_when_two_writers_race(repo: SqlSignalRepository) -> None:
    """A redelivered bar (or a zombie engine beside the new owner) closes the same signal again."""
    signal = make_signal()
    repo.add(signal)
    at = signal.created_at + timedelta(hours=3)
    closing = SignalEvent(signal.id, SignalEventKind.CLOSED, at, {"outcome": "stop"})
    results: list[bool] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def close() -> None:
        try:
            barrier.wait()
            results.append(repo.close_once(signal.id, SignalStatus.STOPPED, closing))
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=close) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(results) == [False, False, False, True]
    assert [e.event.kind for e in repo.events(signal.id)] == [SignalEventKind.CREATED, SignalEventKind.CLOSED]
    assert repo.get(signal.id) == signal.with_status(SignalStatus.STOPPED)
    # Already closed as something else: still nothing written.
    assert repo.close_once(signal.id, SignalStatus.EXPIRED, closing) is False
    assert len(repo.events(signal.id)) == 2


def test_close_once_refuses_an_open_status_and_an_unknown_signal(repo: SqlSignalRepository) -> None:
    signal = make_signal()
    repo.add(signal)
    event = SignalEvent(signal.id, SignalEventKind.CLOSED, T0, {})
    with pytest.raises(ValueError, match="closed status"):
        repo.close_once(signal.id, SignalStatus.OPEN, event)
    missing = new_signal_id()
    with pytest.raises(StorageError, match=f"no signal with id {missing}"):
        repo.close_once(missing, SignalStatus.EXPIRED, SignalEvent(missing, SignalEventKind.CLOSED, T0, {}))
    assert [e.event.kind for e in repo.events()] == [SignalEventKind.CREATED]


def test_events_are_global_insertion_order_with_after_seq(repo: SqlSignalRepository) -> None:
    a, b = make_signal(0, symbol="AAPL"), make_signal(1, symbol="MSFT")
    repo.add(b)  # b first: seq order is insertion order, not id order
    repo.add(a)
    returned = [
        repo.add_event(SignalEvent(s.id, SignalEventKind.UPDATED, T0 + timedelta(minutes=i), {"i": i}))
        for i, s in enumerate([a, b, a, b, a])
    ]
    everything = repo.events()
    assert [e.event.signal_id for e in everything] == [b.id, a.id, a.id, b.id, a.id, b.id, a.id]
    seqs = [e.seq for e in everything]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)
    assert everything[2:] == returned

    assert [e.event.data.get("i") for e in repo.events(a.id)] == [None, 0, 2, 4]
    assert repo.events(after_seq=returned[2].seq) == returned[3:]
    assert repo.events(a.id, after_seq=returned[0].seq, limit=1) == [returned[2]]
    assert repo.events(after_seq=everything[-1].seq) == []
    assert len(repo.events(limit=0)) == 1  # clamped up to 1


def test_a_reader_never_sees_a_later_seq_before_an_earlier_one(
    repo: SqlSignalRepository, engine: Engine
) -> None:
    """A consumer resuming from ``after_seq`` must never skip an event that commits late.

    One writer is held inside its transaction right after inserting its event (its seq is taken);
    a second writer must not be able to commit a higher seq meanwhile.
    """
    signal = make_signal()
    repo.add(signal)
    start = repo.events()[-1].seq
    inserted, release = threading.Event(), threading.Event()

    def hold(conn: object, cursor: object, statement: str, *args: object) -> None:
        if threading.current_thread().name == "slow" and statement.startswith("INSERT INTO signal_events"):
            inserted.set()
            release.wait(10)

    first = SignalEvent(signal.id, SignalEventKind.UPDATED, T0, {"n": 1})
    second = SignalEvent(signal.id, SignalEventKind.UPDATED, T0, {"n": 2})
    sa.event.listen(engine, "after_cursor_execute", hold)
    try:
        slow = threading.Thread(target=repo.add_event, args=(first,), name="slow")
        slow.start()
        assert inserted.wait(10)
        fast = threading.Thread(target=repo.add_event, args=(second,), name="fast")
        fast.start()
        fast.join(0.5)  # ample time to commit, were it allowed to
        seen_meanwhile = repo.events(after_seq=start)
        release.set()
        slow.join(10)
        fast.join(10)
    finally:
        release.set()
        sa.event.remove(engine, "after_cursor_execute", hold)
    assert seen_meanwhile == []
    assert [e.event.data for e in repo.events(after_seq=start)] == [{"n": 1}, {"n": 2}]


def test_add_event_returns_what_events_reads_back(repo: SqlSignalRepository) -> None:
    signal = make_signal()
    repo.add(signal)
    plus2 = timezone(timedelta(hours=2))
    data: dict[str, object] = {
        "stop": 97.5,
        "when": datetime(2026, 1, 5, 17, 30, tzinfo=plus2),
        "status": SignalStatus.OPEN,
        "targets": (106.0, 111.0),
        "nested": {"news": ["a", "b"], "score": None, "ok": True},
    }
    stored = repo.add_event(
        SignalEvent(signal.id, SignalEventKind.UPDATED, datetime(2026, 1, 5, 17, 0, tzinfo=plus2), data)
    )
    assert stored.event.at == datetime(2026, 1, 5, 15, 0, tzinfo=UTC)
    assert stored.event.at.tzinfo is UTC
    assert stored.event.data == {
        "stop": 97.5,
        "when": "2026-01-05T15:30:00+00:00",
        "status": "open",
        "targets": [106.0, 111.0],
        "nested": {"news": ["a", "b"], "score": None, "ok": True},
    }
    assert repo.events(signal.id)[-1] == stored


def test_add_event_refuses_what_cannot_be_stored(repo: SqlSignalRepository) -> None:
    signal = make_signal()
    repo.add(signal)
    with pytest.raises(ValueError, match=r"data\.pnl is nan"):
        repo.add_event(SignalEvent(signal.id, SignalEventKind.UPDATED, T0, {"pnl": float("nan")}))
    with pytest.raises(ValueError, match="naive"):
        repo.add_event(SignalEvent(signal.id, SignalEventKind.UPDATED, datetime(2026, 1, 5), {}))
    missing = new_signal_id()
    with pytest.raises(StorageError, match=f"no signal with id {missing}"):
        repo.add_event(SignalEvent(missing, SignalEventKind.UPDATED, T0, {}))
    assert len(repo.events()) == 1


def test_query_refuses_naive_bounds(repo: SqlSignalRepository) -> None:
    with pytest.raises(ValueError, match="since is a naive datetime"):
        repo.query(SignalQuery(since=datetime(2026, 1, 1)))


def test_concurrent_writers_on_threads(repo: SqlSignalRepository) -> None:
    """The engine and the API write from worker threads; nothing may fail or lose a seq."""
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for n in range(8):
                s = make_signal(worker * 100 + n, symbol=f"S{worker}")
                repo.add(s)
                repo.add_event(SignalEvent(s.id, SignalEventKind.UPDATED, s.created_at, {"w": worker}))
                repo.query(SignalQuery(symbol=s.symbol, limit=5))
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    events = repo.events(limit=10_000)
    assert len(events) == 6 * 8 * 2
    seqs = [e.seq for e in events]
    assert seqs == sorted(set(seqs))
    assert len(repo.query(SignalQuery(limit=500))) == 48


def test_an_unreachable_database_is_a_one_line_storage_error() -> None:
    engine = make_engine("postgresql+psycopg://ts:s3cret@127.0.0.1:1/appdb")
    try:
        with pytest.raises(StorageError) as info:
            SqlSignalRepository(engine).get(new_signal_id())
    finally:
        engine.dispose()
    text = str(info.value)
    assert "\n" not in text
    assert "127.0.0.1" in text
    assert "appdb" in text
    assert "s3cret" not in text
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__
