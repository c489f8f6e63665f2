"""Repository protocols the core depends on; storage/repositories.py implements them with SQLAlchemy."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from tradesignals.domain.checkpoints import Checkpoint
from tradesignals.domain.ledger import LedgerEntry
from tradesignals.domain.news import ScoredNews
from tradesignals.domain.risk import ProfileName
from tradesignals.domain.signals import Signal, SignalEvent, SignalStatus, SignalType
from tradesignals.domain.tiers import Role, Tier


class StorageError(Exception):
    """The store cannot do what was asked; the message says which store and why, in one line."""


class DuplicateError(StorageError):
    """A row with the same unique key exists already."""


@dataclass(frozen=True, slots=True)
class User:
    id: int
    email: str
    password_hash: str
    tier: Tier
    risk_profile: ProfileName
    created_at: datetime
    role: Role = Role.USER
    profile_answered: bool = False
    failed_logins: int = 0
    locked_until: datetime | None = None
    customer_ref: str | None = None


@dataclass(frozen=True, slots=True)
class StoredEvent:
    seq: int  # global, strictly increasing insertion order
    event: SignalEvent


@dataclass(frozen=True, slots=True)
class SignalQuery:
    symbol: str | None = None
    status: SignalStatus | None = None
    open_only: bool = False
    closed_only: bool = False
    type: SignalType | None = None
    since: datetime | None = None
    until: datetime | None = None
    before_id: str | None = None  # cursor: ids are time-sortable, newest first
    limit: int = 50


@dataclass(frozen=True, slots=True)
class CloseQuery:
    """Which closed signals to list: the history's filters, newest close first."""

    symbol: str | None = None
    type: SignalType | None = None
    closed_since: datetime | None = None  # bounds the closed event's time as [since, until)
    closed_until: datetime | None = None
    before_seq: int | None = None  # cursor: the seq of the last close of the previous page
    limit: int = 50
    signal_ids: tuple[str, ...] | None = None  # only these signals (a page of signals' outcomes)


@dataclass(frozen=True, slots=True)
class StoredClose:
    """A closed signal and the ledger event that closed it (its ``data`` carries the outcome)."""

    signal: Signal
    close: StoredEvent


class SignalRepository(Protocol):
    def add(self, signal: Signal) -> None:
        """Insert a new signal and its ``created`` event in one transaction."""
        ...

    def get(self, signal_id: str) -> Signal | None: ...

    def query(self, query: SignalQuery) -> list[Signal]:
        """Newest first."""
        ...

    def set_status(self, signal_id: str, status: SignalStatus, event: SignalEvent) -> None:
        """Change status and append the event in one transaction."""
        ...

    def close_once(self, signal_id: str, status: SignalStatus, event: SignalEvent) -> bool:
        """Close an open signal and append the event in one transaction; False, writing nothing,
        when it is closed already (a redelivered bar, or two engines during a hand-over)."""
        ...

    def add_event(self, event: SignalEvent) -> StoredEvent: ...

    def events(
        self, signal_id: str | None = None, after_seq: int = 0, limit: int = 1000
    ) -> list[StoredEvent]: ...

    def ledger(self, from_seq: int = 0, to_seq: int | None = None, limit: int = 1000) -> list[LedgerEntry]:
        """Hash-chained entries with ``from_seq <= seq <= to_seq``, seq ascending, as stored."""
        ...

    def closes(self, query: CloseQuery) -> list[StoredClose]:
        """Closed signals with their latest ``closed`` event, newest close first."""
        ...

    def closes_after(self, after_seq: int, limit: int = 10_000) -> list[StoredClose]:
        """Every ``closed`` event with ``seq > after_seq``, oldest first, each with its signal — a
        signal closed twice appears twice: what keeps a running summary up to date."""
        ...

    def last_close_seq(self) -> int:
        """The seq of the newest ``closed`` event; 0 when nothing has closed."""
        ...

    def closed_among(self, signal_ids: Iterable[str]) -> set[str]:
        """Those of ``signal_ids`` whose signal is closed (the API seals the others' ledger entries)."""
        ...


MakeCheckpoint = Callable[[int, str, Checkpoint | None], Checkpoint]
"""``make(head_seq, head_hash, previous)``: the next checkpoint for that ledger head (signs it)."""


class CheckpointRepository(Protocol):
    """Signed ledger checkpoints, append-only, numbered 1, 2, 3… (``domain/checkpoints.py``)."""

    def append(self, make: MakeCheckpoint) -> Checkpoint:
        """Read the ledger head and the last checkpoint, and store ``make(...)`` — in one transaction."""
        ...

    def latest(self) -> Checkpoint | None: ...

    def page(self, from_number: int = 0, limit: int = 1000) -> list[Checkpoint]:
        """Checkpoints with ``number >= from_number``, ascending, as stored."""
        ...


class UserRepository(Protocol):
    def create(
        self,
        email: str,
        password_hash: str,
        tier: Tier = Tier.FREE,
        risk_profile: ProfileName = ProfileName.MODERATE,
    ) -> User: ...

    def get(self, user_id: int) -> User | None: ...

    def by_email(self, email: str) -> User | None: ...

    def set_tier(self, user_id: int, tier: Tier) -> User: ...

    def set_risk_profile(self, user_id: int, profile: ProfileName) -> User: ...


@dataclass(frozen=True, slots=True)
class NewsQuery:
    """Newest first by ``received_at``; ``since_ns`` and ``until_ns`` are inclusive; limit clamped
    to [1, 500]. ``until_ns`` is the entitlement bound (``domain.entitlements.news_visible_until``),
    applied before the limit so a delayed caller's page is full."""

    symbol: str | None = None
    since_ns: int | None = None
    until_ns: int | None = None
    limit: int = 50


class NewsRepository(Protocol):
    """Received news with its scores (``storage/news.py``). Adding an id twice keeps the first."""

    def add(self, items: Iterable[ScoredNews]) -> int:
        """Store the items not stored yet; returns how many were new."""
        ...

    def query(self, query: NewsQuery) -> list[ScoredNews]: ...


@dataclass(frozen=True, slots=True)
class IngestPosition:
    """How far an ingest feed got: what the next run of the same feed starts after (ADR 0025).

    ``published``: per topic, how many of the feed's events for it (accepted by the validator) are
    on the bus — a prefix: ingest publishes each topic's events in feed order. ``ids``: per topic,
    per partition, the last bus message id known published; whatever a partition holds after it
    may be this feed's, published by a run that died before it could save the position, and is
    checked before anything is sent again.
    """

    published: dict[str, int]
    ids: dict[str, dict[int, str]]


class IngestPositionStore(Protocol):
    def load(self, feed: str) -> IngestPosition | None: ...

    def save(self, feed: str, position: IngestPosition) -> None: ...
