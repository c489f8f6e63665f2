"""SQL implementations of the repository protocols in ``storage.base`` (SQLite and PostgreSQL).

Every call is synchronous and opens its own short session: the async engine and the API call these
from worker threads, and a SQLAlchemy engine (unlike a session) is safe to share between them.
Database failures leave as one-line ``StorageError``s; a bad argument (a naive datetime, an event
for another signal) is a bug in the caller and raises ``ValueError``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from enum import Enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, aliased, sessionmaker

from tradesignals.domain.ledger import GENESIS, LedgerEntry, entry_body, entry_hash, new_salt
from tradesignals.domain.risk import ProfileName
from tradesignals.domain.signals import Signal, SignalEvent, SignalEventKind, SignalStatus
from tradesignals.domain.tiers import Role, Tier
from tradesignals.storage.base import CloseQuery, SignalQuery, StorageError, StoredClose, StoredEvent, User
from tradesignals.storage.db import storage_errors, writer
from tradesignals.storage.tables import SignalEventRow, SignalRow, UserRow

MAX_QUERY_LIMIT = 500
MAX_EVENTS_LIMIT = 10_000

# pg_advisory_xact_lock key held by every transaction that appends signal events. It makes the
# ledger a single line: each append reads the head (last seq and hash) and writes head + 1 while no
# other append can, so seq order is commit order (a reader resuming "after_seq=8" never misses a 7
# that commits late), seqs have no gaps, and no two entries ever extend the same head. Event writes
# are rare (one per signal and per outcome), so serialising them costs nothing measurable. SQLite
# needs nothing: write transactions begin IMMEDIATE (``db.writer``), one writer at a time.
_PG_EVENTS_LOCK = 0x7473_6576_7473  # "tsevts"


def lock_ledger(session: Session) -> None:
    """Take the ledger's write lock for this transaction (PostgreSQL; SQLite writers are serial anyway).

    Held by every append of an event and of a checkpoint, so a checkpoint reads a head that no
    append is about to move past, and two nodes never both write the next checkpoint.
    """
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        session.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_EVENTS_LOCK)))


def json_safe(value: object, path: str = "data") -> Any:
    """``value`` as plain JSON types: datetimes as ISO 8601, enums as their value, tuples as lists.

    Event data crosses two databases, the bus and the ledger, so it is normalised once, here, and
    what ``add_event`` returns is exactly what ``events`` will read back. Non-finite floats and
    unknown types are refused rather than silently changed (PostgreSQL rejects NaN in JSON anyway).
    """
    if isinstance(value, Enum):
        return json_safe(value.value, path)
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{path} is {value}, which JSON cannot hold")
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"{path} is a naive datetime; timestamps must be aware")
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{path} has a non-string key {key!r}")
            out[key] = json_safe(item, f"{path}.{key}")
        return out
    if isinstance(value, list | tuple):
        return [json_safe(item, f"{path}[{i}]") for i, item in enumerate(value)]
    raise ValueError(f"{path} is a {type(value).__name__}, which is not JSON-safe")


def signal_data(signal: Signal) -> dict[str, Any]:
    """Every field of ``signal`` in JSON types: the data of its ``created`` event."""
    data: dict[str, Any] = json_safe(
        {
            "id": signal.id,
            "symbol": signal.symbol,
            "type": signal.type,
            "direction": signal.direction,
            "entry": signal.entry,
            "stop": signal.stop,
            "targets": signal.targets,
            "confidence": signal.confidence,
            "created_at": signal.created_at,
            "expires_at": signal.expires_at,
            "model_version": signal.model_version,
            "status": signal.status,
            "timeframe": signal.timeframe,
            "reasons": signal.reasons,
            "decided_at": signal.decided_at,
            "base_rate": signal.base_rate,
            "confidence_rank": signal.confidence_rank,
        }
    )
    return data


def _require_aware(value: datetime | None, name: str) -> None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise ValueError(f"{name} is a naive datetime; timestamps must be aware")


def _clamp(limit: int, top: int) -> int:
    return max(1, min(int(limit), top))


def _to_signal(row: SignalRow) -> Signal:
    return Signal(
        id=row.id,
        symbol=row.symbol,
        type=row.type,
        direction=row.direction,
        entry=row.entry,
        stop=row.stop,
        # float(): a JSON number such as 1e22 may come back as an int.
        targets=tuple(float(t) for t in row.targets),
        confidence=row.confidence,
        created_at=row.created_at,
        expires_at=row.expires_at,
        model_version=row.model_version,
        status=row.status,
        timeframe=row.timeframe,
        reasons=tuple(str(r) for r in row.reasons),
        decided_at=row.decided_at,
        base_rate=row.base_rate,
        confidence_rank=row.confidence_rank,
    )


def _to_stored(row: SignalEventRow) -> StoredEvent:
    """An event as the engine and the API use it: without the ledger's salt (only ``ledger`` serves it)."""
    data = {k: v for k, v in row.data.items() if k != "salt"}
    return StoredEvent(
        seq=row.seq,
        event=SignalEvent(signal_id=row.signal_id, kind=row.kind, at=row.at, data=data),
    )


class SqlSignalRepository:
    """Signals and their events (the ledger); implements ``storage.base.SignalRepository``.

    Events are append-only: there is deliberately no method to change or remove one.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._read = sessionmaker(engine, expire_on_commit=False)
        self._write = sessionmaker(writer(engine), expire_on_commit=False)

    def _lock_events(self, session: Session) -> None:
        lock_ledger(session)

    def _insert_event(self, session: Session, event: SignalEvent, data: dict[str, Any]) -> StoredEvent:
        """Append ``event`` as the next ledger entry; the caller holds the events lock.

        The head is read in this transaction, after the lock: under PostgreSQL's default READ
        COMMITTED each statement sees every append committed before it, so the head is current.
        (Under a stricter isolation level a stale head would give a seq that exists: the primary
        key refuses it, so the worst case is a failed write, never a forked chain.)
        """
        head = session.execute(
            sa.select(SignalEventRow.seq, SignalEventRow.hash).order_by(SignalEventRow.seq.desc()).limit(1)
        ).first()
        seq, prev_hash = (head.seq + 1, head.hash) if head is not None else (1, GENESIS)
        kind = SignalEventKind(event.kind)
        given = data
        if kind is not SignalEventKind.CLOSED and "salt" not in data:
            data = {**data, "salt": new_salt()}  # sealed until close: unguessable (domain.ledger)
        at = event.at.astimezone(UTC)
        digest = entry_hash(prev_hash, entry_body(seq, event.signal_id, kind, at, data))
        session.add(
            SignalEventRow(
                seq=seq,
                signal_id=event.signal_id,
                kind=kind,
                at=at,
                data=data,
                prev_hash=prev_hash,
                hash=digest,
            )
        )
        session.flush()
        return StoredEvent(
            seq=seq, event=SignalEvent(signal_id=event.signal_id, kind=kind, at=at, data=given)
        )

    def add(self, signal: Signal) -> None:
        """Insert ``signal`` and its ``created`` event together: a signal never exists without it."""
        created = SignalEvent(signal.id, SignalEventKind.CREATED, signal.created_at, signal_data(signal))
        with storage_errors(f"adding signal {signal.id}", self.engine), self._write.begin() as session:
            session.add(
                SignalRow(
                    id=signal.id,
                    symbol=signal.symbol,
                    type=signal.type,
                    direction=signal.direction,
                    entry=signal.entry,
                    stop=signal.stop,
                    targets=list(signal.targets),
                    confidence=signal.confidence,
                    created_at=signal.created_at,
                    expires_at=signal.expires_at,
                    model_version=signal.model_version,
                    status=signal.status,
                    timeframe=signal.timeframe,
                    reasons=list(signal.reasons),
                    decided_at=signal.decided_at,
                    base_rate=signal.base_rate,
                    confidence_rank=signal.confidence_rank,
                )
            )
            # The signal row first, so that a duplicate id fails on the signals key (DuplicateError)
            # before the advisory lock is taken.
            session.flush()
            self._lock_events(session)
            self._insert_event(session, created, created.data)

    def get(self, signal_id: str) -> Signal | None:
        with storage_errors(f"reading signal {signal_id}", self.engine), self._read() as session:
            row = session.get(SignalRow, signal_id)
            return _to_signal(row) if row is not None else None

    def query(self, query: SignalQuery) -> list[Signal]:
        """Newest first (by id, which sorts by creation time); ``before_id`` continues a page.

        ``since``/``until`` bound ``created_at`` as [since, until). ``open_only`` and
        ``closed_only`` together match nothing. The limit is clamped to [1, 500].
        """
        _require_aware(query.since, "since")
        _require_aware(query.until, "until")
        stmt = sa.select(SignalRow)
        if query.symbol is not None:
            stmt = stmt.where(SignalRow.symbol == query.symbol)
        if query.status is not None:
            stmt = stmt.where(SignalRow.status == query.status)
        if query.open_only:
            stmt = stmt.where(SignalRow.status == SignalStatus.OPEN)
        if query.closed_only:
            stmt = stmt.where(SignalRow.status != SignalStatus.OPEN)
        if query.type is not None:
            stmt = stmt.where(SignalRow.type == query.type)
        if query.since is not None:
            stmt = stmt.where(SignalRow.created_at >= query.since)
        if query.until is not None:
            stmt = stmt.where(SignalRow.created_at < query.until)
        if query.before_id is not None:
            stmt = stmt.where(SignalRow.id < query.before_id)
        stmt = stmt.order_by(SignalRow.id.desc()).limit(_clamp(query.limit, MAX_QUERY_LIMIT))
        with storage_errors("querying signals", self.engine), self._read() as session:
            return [_to_signal(row) for row in session.scalars(stmt)]

    def set_status(self, signal_id: str, status: SignalStatus, event: SignalEvent) -> None:
        """Change the status and append ``event`` in one transaction: both happen or neither."""
        if event.signal_id != signal_id:
            raise ValueError(f"event for signal {event.signal_id} given to set_status of {signal_id}")
        _require_aware(event.at, "event.at")
        data = json_safe(event.data)
        what = f"setting status of signal {signal_id} to {SignalStatus(status).value}"
        with storage_errors(what, self.engine), self._write.begin() as session:
            result = session.execute(
                sa.update(SignalRow).where(SignalRow.id == signal_id).values(status=SignalStatus(status))
            )
            if getattr(result, "rowcount", 0) == 0:
                raise StorageError(f"{what}: no signal with id {signal_id}")
            self._lock_events(session)
            self._insert_event(session, event, data)

    def close_once(self, signal_id: str, status: SignalStatus, event: SignalEvent) -> bool:
        """Close an open signal once: the conditional UPDATE takes the row lock, so of two writers
        racing (a dead engine's bar redelivered while its zombie still runs) exactly one appends the
        ``closed`` event; the other sees the new status and writes nothing. False for that one."""
        if not SignalStatus(status).is_closed:
            raise ValueError(f"close_once needs a closed status, not {SignalStatus(status).value}")
        if event.signal_id != signal_id:
            raise ValueError(f"event for signal {event.signal_id} given to close_once of {signal_id}")
        _require_aware(event.at, "event.at")
        data = json_safe(event.data)
        what = f"closing signal {signal_id} as {SignalStatus(status).value}"
        with storage_errors(what, self.engine), self._write.begin() as session:
            result = session.execute(
                sa.update(SignalRow)
                .where(SignalRow.id == signal_id, SignalRow.status == SignalStatus.OPEN)
                .values(status=SignalStatus(status))
            )
            if getattr(result, "rowcount", 0) == 0:
                if session.scalar(sa.select(SignalRow.id).where(SignalRow.id == signal_id)) is None:
                    raise StorageError(f"{what}: no signal with id {signal_id}")
                return False
            self._lock_events(session)
            self._insert_event(session, event, data)
            return True

    def add_event(self, event: SignalEvent) -> StoredEvent:
        """Append ``event``; returned as stored (UTC time, JSON-normalised data) with its seq."""
        _require_aware(event.at, "event.at")
        data = json_safe(event.data)
        what = f"adding a {SignalEventKind(event.kind).value} event to signal {event.signal_id}"
        missing = f"{what}: no signal with id {event.signal_id}"
        with storage_errors(what, self.engine, missing_reference=missing), self._write.begin() as session:
            self._lock_events(session)
            return self._insert_event(session, event, data)

    def events(
        self, signal_id: str | None = None, after_seq: int = 0, limit: int = 1000
    ) -> list[StoredEvent]:
        """Events in insertion order (seq ascending) after ``after_seq``; limit clamped to [1, 10000]."""
        stmt = sa.select(SignalEventRow).where(SignalEventRow.seq > after_seq)
        if signal_id is not None:
            stmt = stmt.where(SignalEventRow.signal_id == signal_id)
        stmt = stmt.order_by(SignalEventRow.seq).limit(_clamp(limit, MAX_EVENTS_LIMIT))
        with storage_errors("reading signal events", self.engine), self._read() as session:
            return [_to_stored(row) for row in session.scalars(stmt)]

    def ledger(self, from_seq: int = 0, to_seq: int | None = None, limit: int = 1000) -> list[LedgerEntry]:
        """Ledger entries with ``from_seq <= seq <= to_seq``, seq ascending; limit clamped to [1, 10000].

        What is read is exactly what is stored: ``verify`` must judge the rows, not a cleaned copy.
        """
        ev = SignalEventRow
        # kind as plain text: a row whose kind was tampered with must reach verify, not fail here.
        stmt = sa.select(
            ev.seq, ev.signal_id, sa.type_coerce(ev.kind, sa.String), ev.at, ev.data, ev.prev_hash, ev.hash
        ).where(ev.seq >= from_seq)
        if to_seq is not None:
            stmt = stmt.where(ev.seq <= to_seq)
        stmt = stmt.order_by(ev.seq).limit(_clamp(limit, MAX_EVENTS_LIMIT))
        with storage_errors("reading the ledger", self.engine), self._read() as session:
            return [
                LedgerEntry(seq, signal_id, kind, at, data, prev_hash, digest)
                for seq, signal_id, kind, at, data, prev_hash, digest in session.execute(stmt)
            ]

    def closed_among(self, signal_ids: Iterable[str]) -> set[str]:
        """Those of ``signal_ids`` that are closed; unknown ids are simply not in the answer."""
        ids = sorted(set(signal_ids))
        found: set[str] = set()
        with storage_errors("reading signal statuses", self.engine), self._read() as session:
            for start in range(0, len(ids), 500):  # well under every driver's parameter limit
                stmt = sa.select(SignalRow.id).where(
                    SignalRow.id.in_(ids[start : start + 500]), SignalRow.status != SignalStatus.OPEN
                )
                found.update(session.scalars(stmt))
        return found

    def closes(self, query: CloseQuery) -> list[StoredClose]:
        """Closed signals with their ``closed`` event, newest close (highest seq) first.

        One row per signal: should a signal ever have two ``closed`` events (the ledger keeps
        whatever was appended), the latest one counts. ``closed_since``/``closed_until`` bound the
        event's ``at`` as [since, until). The limit is clamped to [1, 10000].
        """
        _require_aware(query.closed_since, "closed_since")
        _require_aware(query.closed_until, "closed_until")
        ev = SignalEventRow
        later = aliased(SignalEventRow)
        stmt = (
            sa.select(SignalRow, ev)
            .join(SignalRow, SignalRow.id == ev.signal_id)
            .where(ev.kind == SignalEventKind.CLOSED)
            .where(
                ~sa.exists().where(
                    later.signal_id == ev.signal_id,
                    later.kind == SignalEventKind.CLOSED,
                    later.seq > ev.seq,
                )
            )
        )
        if query.symbol is not None:
            stmt = stmt.where(SignalRow.symbol == query.symbol)
        if query.type is not None:
            stmt = stmt.where(SignalRow.type == query.type)
        if query.closed_since is not None:
            stmt = stmt.where(ev.at >= query.closed_since)
        if query.closed_until is not None:
            stmt = stmt.where(ev.at < query.closed_until)
        if query.before_seq is not None:
            stmt = stmt.where(ev.seq < query.before_seq)
        if query.signal_ids is not None:  # a page of signals: at most MAX_QUERY_LIMIT ids
            stmt = stmt.where(ev.signal_id.in_(sorted(set(query.signal_ids))))
        stmt = stmt.order_by(ev.seq.desc()).limit(_clamp(query.limit, MAX_EVENTS_LIMIT))
        with storage_errors("reading closed signals", self.engine), self._read() as session:
            return [
                StoredClose(signal=_to_signal(signal_row), close=_to_stored(event_row))
                for signal_row, event_row in session.execute(stmt)
            ]

    def closes_after(self, after_seq: int, limit: int = 10_000) -> list[StoredClose]:
        """Every ``closed`` event after ``after_seq``, seq ascending; limit clamped to [1, 10000].

        An index range scan on ``(kind, seq)``: the cost is the new closes', not the history's.
        Core rows rather than ORM objects (a third of the cost per row): this reads every close
        once when a node's summary starts.
        """
        ev = SignalEventRow
        stmt = (
            sa.select(SignalRow.__table__, ev.seq, ev.at.label("event_at"), ev.data.label("event_data"))
            .join_from(ev, SignalRow, SignalRow.id == ev.signal_id)
            .where(ev.kind == SignalEventKind.CLOSED, ev.seq > after_seq)
            .order_by(ev.seq)
            .limit(_clamp(limit, MAX_EVENTS_LIMIT))
        )
        with storage_errors("reading new closes", self.engine), self.engine.connect() as conn:
            return [
                StoredClose(
                    signal=_to_signal(row),  # type: ignore[arg-type]  # a Row has the same attributes
                    close=StoredEvent(
                        seq=row.seq,
                        event=SignalEvent(
                            signal_id=row.id,
                            kind=SignalEventKind.CLOSED,
                            at=row.event_at,
                            data=dict(row.event_data),
                        ),
                    ),
                )
                for row in conn.execute(stmt)
            ]

    def last_close_seq(self) -> int:
        """The seq of the newest ``closed`` event (0 with none): one probe of the ``(kind, seq)``
        index, so "has anything closed since?" costs the same at any size."""
        stmt = sa.select(sa.func.max(SignalEventRow.seq)).where(SignalEventRow.kind == SignalEventKind.CLOSED)
        with storage_errors("reading the newest close", self.engine), self.engine.connect() as conn:
            return int(conn.execute(stmt).scalar() or 0)


def normalize_email(email: str) -> str:
    """The stored form of an address: emails are compared case-insensitively."""
    return email.strip().lower()


def _to_user(row: UserRow) -> User:
    return User(
        id=row.id,
        email=row.email,
        password_hash=row.password_hash,
        tier=row.tier,
        risk_profile=row.risk_profile,
        created_at=row.created_at,
        role=row.role,
        profile_answered=row.profile_answered,
        failed_logins=row.failed_logins,
        locked_until=row.locked_until,
        customer_ref=row.customer_ref,
    )


class SqlUserRepository:
    """Accounts; implements ``storage.base.UserRepository``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._read = sessionmaker(engine, expire_on_commit=False)
        self._write = sessionmaker(writer(engine), expire_on_commit=False)

    def create(
        self,
        email: str,
        password_hash: str,
        tier: Tier = Tier.FREE,
        risk_profile: ProfileName = ProfileName.MODERATE,
    ) -> User:
        """A new account; ``DuplicateError`` when the address (in any case) is taken."""
        address = normalize_email(email)
        if not address:
            raise ValueError("email is empty")
        row = UserRow(
            email=address,
            password_hash=password_hash,
            tier=Tier(tier),
            risk_profile=ProfileName(risk_profile),
            created_at=datetime.now(UTC),
            role=Role.USER,
            profile_answered=False,
            failed_logins=0,
        )
        with storage_errors(f"creating user {address}", self.engine), self._write.begin() as session:
            session.add(row)
            session.flush()
            return _to_user(row)

    def get(self, user_id: int) -> User | None:
        with storage_errors(f"reading user {user_id}", self.engine), self._read() as session:
            row = session.get(UserRow, user_id)
            return _to_user(row) if row is not None else None

    def by_email(self, email: str) -> User | None:
        address = normalize_email(email)
        with storage_errors(f"reading user {address}", self.engine), self._read() as session:
            row = session.scalars(sa.select(UserRow).where(UserRow.email == address)).one_or_none()
            return _to_user(row) if row is not None else None

    def _update(self, user_id: int, what: str, **values: Any) -> User:
        with storage_errors(what, self.engine), self._write.begin() as session:
            result = session.execute(sa.update(UserRow).where(UserRow.id == user_id).values(**values))
            if getattr(result, "rowcount", 0) == 0:
                raise StorageError(f"{what}: no user with id {user_id}")
            row = session.get_one(UserRow, user_id, populate_existing=True)
            return _to_user(row)

    def set_tier(self, user_id: int, tier: Tier) -> User:
        tier = Tier(tier)
        return self._update(user_id, f"setting tier of user {user_id} to {tier.value}", tier=tier)

    def set_risk_profile(self, user_id: int, profile: ProfileName) -> User:
        profile = ProfileName(profile)
        return self._update(
            user_id, f"setting risk profile of user {user_id} to {profile.value}", risk_profile=profile
        )


__all__ = [
    "SqlSignalRepository",
    "SqlUserRepository",
    "json_safe",
    "lock_ledger",
    "normalize_email",
    "signal_data",
]
