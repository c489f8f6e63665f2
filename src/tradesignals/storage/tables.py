"""SQLAlchemy models of the app data, portable between SQLite and PostgreSQL.

These classes describe the schema for autogenerate and for the repositories; the schema itself is
created only by the migrations in ``migrations/versions`` (never ``metadata.create_all``), and a test
compares the two on both databases. Types are chosen to mean the same thing on both: no native
enums (strings with a CHECK, so adding a value is an ordinary migration), ``DOUBLE PRECISION`` for
prices (a float in, the same float out), JSON as text, and timestamps that always come back as
aware UTC datetimes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from tradesignals.domain.risk import ProfileName
from tradesignals.domain.signals import Direction, SignalEventKind, SignalStatus, SignalType
from tradesignals.domain.tiers import Role, Tier

# Fixed constraint names: the migrations spell the same names, so a later migration can drop or
# alter a constraint by name on both databases (SQLite batch mode needs names, too).
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SIGNAL_ID_LENGTH = 22


class UtcDateTime(TypeDecorator[datetime]):
    """An aware datetime stored as UTC, returned as aware UTC on every database.

    PostgreSQL has ``timestamptz`` but returns it in the session's time zone; SQLite has no time
    type at all, and SQLAlchemy's SQLite DATETIME silently drops the offset of an aware value. So
    values are converted to UTC on the way in (stored naive on SQLite, in a fixed-width text form
    that sorts chronologically) and tagged UTC on the way out. A naive datetime is refused, never
    guessed (ADR 0002).
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} refused: timestamps must be aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


E = TypeVar("E", bound=StrEnum)


class StrEnumType(TypeDecorator[E], Generic[E]):
    """A ``StrEnum`` stored as its value in a VARCHAR, read back as the enum member.

    Paired with a CHECK constraint listing the values (see ``_enum_check``), so the database
    refuses what the code would fail to read.
    """

    impl = sa.String
    cache_ok = True

    def __init__(self, enum_cls: type[E], length: int = 16) -> None:
        super().__init__(length)
        self.enum_cls = enum_cls

    def process_bind_param(self, value: E | str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return self.enum_cls(value).value

    def process_result_value(self, value: Any, dialect: Dialect) -> E | None:
        if value is None:
            return None
        return self.enum_cls(value)


def _enum_check(column: str, enum_cls: type[StrEnum]) -> sa.CheckConstraint:
    values = ", ".join(f"'{m.value}'" for m in enum_cls)
    return sa.CheckConstraint(f"{column} IN ({values})", name=column)


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


# SQLite makes a column an alias of its 64-bit rowid only when it is exactly "INTEGER PRIMARY KEY".
BigIntId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class UserRow(Base):
    __tablename__ = "users"
    __table_args__ = (
        _enum_check("tier", Tier),
        _enum_check("risk_profile", ProfileName),
        _enum_check("role", Role),
        sa.UniqueConstraint("email"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    # Stored lowercased by the repository, so the plain unique constraint is case-insensitive.
    email: Mapped[str] = mapped_column(sa.String(320))
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    tier: Mapped[Tier] = mapped_column(StrEnumType(Tier))
    risk_profile: Mapped[ProfileName] = mapped_column(StrEnumType(ProfileName))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # Accounts (migration 0005).
    role: Mapped[Role] = mapped_column(StrEnumType(Role), server_default="user")
    # Whether the risk questionnaire was answered: until then the moderate profile applies.
    profile_answered: Mapped[bool] = mapped_column(sa.Boolean, server_default=sa.false())
    failed_logins: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    customer_ref: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    # The capital the user states, that live signals are sized for (migration 0008_ws; None: the default).
    capital: Mapped[float | None] = mapped_column(sa.Float, nullable=True)


class SignalRow(Base):
    __tablename__ = "signals"
    __table_args__ = (
        _enum_check("type", SignalType),
        _enum_check("direction", Direction),
        _enum_check("status", SignalStatus),
        sa.Index(None, "symbol", "created_at"),
        # The API pages a symbol newest-first by id (the keyset cursor); this makes that an index scan.
        sa.Index(None, "symbol", "id"),
        sa.Index(None, "status"),
    )

    id: Mapped[str] = mapped_column(sa.String(SIGNAL_ID_LENGTH), primary_key=True)
    symbol: Mapped[str] = mapped_column(sa.String(32))
    type: Mapped[SignalType] = mapped_column(StrEnumType(SignalType))
    direction: Mapped[Direction] = mapped_column(StrEnumType(Direction, 8))
    entry: Mapped[float] = mapped_column(sa.Double)
    stop: Mapped[float] = mapped_column(sa.Double)
    targets: Mapped[list[float]] = mapped_column(sa.JSON)
    confidence: Mapped[float] = mapped_column(sa.Double)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    model_version: Mapped[str] = mapped_column(sa.String(128))
    status: Mapped[SignalStatus] = mapped_column(StrEnumType(SignalStatus))
    timeframe: Mapped[str] = mapped_column(sa.String(16))
    reasons: Mapped[list[str]] = mapped_column(sa.JSON)
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    base_rate: Mapped[float | None] = mapped_column(sa.Double, nullable=True)
    confidence_rank: Mapped[float | None] = mapped_column(sa.Double, nullable=True)


LEDGER_HASH_LENGTH = 64  # sha256 as lowercase hex


class SignalEventRow(Base):
    """The ledger: one row per signal event, hash-chained in ``seq`` order (``domain/ledger.py``).

    Append-only. The repository has no update or delete, and migration 0002 adds triggers that make
    the database itself refuse UPDATE, DELETE (and TRUNCATE on PostgreSQL; on SQLite an INSERT that
    is not past the end, which ``INSERT OR REPLACE`` would otherwise turn into a silent delete).
    ``seq`` is assigned by the repository as last + 1 under the events lock, so it has no gaps.
    """

    __tablename__ = "signal_events"
    __table_args__ = (
        _enum_check("kind", SignalEventKind),
        sa.Index(None, "signal_id", "seq"),
        # History pages closed events newest first.
        sa.Index(None, "kind", "seq"),
        # "The latest close of each signal" (history, summary): the NOT EXISTS of a later close
        # is a point lookup here; with only (kind, seq) SQLite scanned every later close (quadratic).
        sa.Index(None, "signal_id", "kind", "seq"),
        # Two entries with one hash would be one entry written twice (or a sha256 collision).
        sa.Index(None, "hash", unique=True),
        # AUTOINCREMENT: SQLite never reuses a seq, so "after_seq" cursors stay valid forever.
        {"sqlite_autoincrement": True},
    )

    seq: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    signal_id: Mapped[str] = mapped_column(sa.String(SIGNAL_ID_LENGTH), sa.ForeignKey("signals.id"))
    kind: Mapped[SignalEventKind] = mapped_column(StrEnumType(SignalEventKind))
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    data: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    prev_hash: Mapped[str] = mapped_column(sa.String(LEDGER_HASH_LENGTH))
    hash: Mapped[str] = mapped_column(sa.String(LEDGER_HASH_LENGTH))


PUBLIC_KEY_LENGTH = 64  # Ed25519 public key, 32 bytes as lowercase hex
SIGNATURE_LENGTH = 128  # Ed25519 signature, 64 bytes as lowercase hex


class LedgerCheckpointRow(Base):
    """Signed ledger heads, chained by ``previous_checkpoint_hash`` (``domain/checkpoints.py``).

    Append-only like the ledger (migration 0004's triggers). ``number`` is assigned by the
    repository as last + 1 under the ledger's events lock, so it has no gaps and the checkpoint
    chain never forks. ``hash`` is stored for lookups only; verifiers recompute it.
    """

    __tablename__ = "ledger_checkpoints"
    __table_args__ = (sa.Index(None, "hash", unique=True),)

    number: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(sa.BigInteger)
    head_hash: Mapped[str] = mapped_column(sa.String(LEDGER_HASH_LENGTH))
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    previous_checkpoint_hash: Mapped[str] = mapped_column(sa.String(LEDGER_HASH_LENGTH))
    next_public_key: Mapped[str | None] = mapped_column(sa.String(PUBLIC_KEY_LENGTH), nullable=True)
    public_key: Mapped[str] = mapped_column(sa.String(PUBLIC_KEY_LENGTH))
    signature: Mapped[str] = mapped_column(sa.String(SIGNATURE_LENGTH))
    hash: Mapped[str] = mapped_column(sa.String(LEDGER_HASH_LENGTH))


NEWS_ID_LENGTH = 200
SENTIMENT_LABELS = ("negative", "neutral", "positive")


class NewsItemRow(Base):
    """A received news item with its sentiment and catalyst labels (``domain/news.py``).

    Times are integer nanoseconds UTC, as in the domain (ADR 0002): ``received_at`` is what
    point-in-time reads filter on. ``symbols`` and ``catalysts`` are JSON lists; the symbol lookup
    goes through ``news_symbols``.
    """

    __tablename__ = "news_items"
    __table_args__ = (
        sa.CheckConstraint(
            "sentiment IN (" + ", ".join(f"'{v}'" for v in SENTIMENT_LABELS) + ")", name="sentiment"
        ),
        sa.Index(None, "received_at"),
    )

    id: Mapped[str] = mapped_column(sa.String(NEWS_ID_LENGTH), primary_key=True)
    source: Mapped[str] = mapped_column(sa.String(64))
    published_at: Mapped[int] = mapped_column(sa.BigInteger)
    received_at: Mapped[int] = mapped_column(sa.BigInteger)
    symbols: Mapped[list[str]] = mapped_column(sa.JSON)
    headline: Mapped[str] = mapped_column(sa.Text)
    summary: Mapped[str] = mapped_column(sa.Text)
    url: Mapped[str] = mapped_column(sa.Text)
    sentiment: Mapped[str] = mapped_column(sa.String(8))
    sentiment_score: Mapped[float] = mapped_column(sa.Float)
    catalysts: Mapped[list[str]] = mapped_column(sa.JSON)
    scored_at: Mapped[int] = mapped_column(sa.BigInteger)


class NewsSymbolRow(Base):
    """One row per (item, symbol): ``GET /api/news?symbol=`` reads newest first by ``received_at``."""

    __tablename__ = "news_symbols"
    __table_args__ = (sa.Index(None, "symbol", "received_at"),)

    news_id: Mapped[str] = mapped_column(
        sa.String(NEWS_ID_LENGTH), sa.ForeignKey("news_items.id"), primary_key=True
    )
    symbol: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    received_at: Mapped[int] = mapped_column(sa.BigInteger)


class RefreshTokenRow(Base):
    """A refresh token, stored as its sha256 only; ``family`` links a login's rotations.

    Rotation marks the presented token ``used_at`` and issues the next of the family; presenting a
    used token again is reuse (a stolen copy), which revokes the whole family.
    """

    __tablename__ = "refresh_tokens"
    __table_args__ = (sa.Index(None, "family"), sa.Index(None, "user_id"))

    token_hash: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"))
    family: Mapped[str] = mapped_column(sa.String(32))
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class WatchlistRow(Base):
    """A symbol one user watches: ``user:{id}:watchlist`` carries its bars and outcomes (migration 0008_ws)."""

    __tablename__ = "watchlist"
    __table_args__ = (sa.Index(None, "symbol"),)

    user_id: Mapped[int] = mapped_column(
        sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    symbol: Mapped[str] = mapped_column(sa.String(32), primary_key=True)


class SignalUpgradeRow(Base):
    """A dynamic upgrade: one user's entitlement to one signal until ``expires_at`` (or revoked)."""

    __tablename__ = "signal_upgrades"
    __table_args__ = (sa.Index(None, "user_id", "expires_at"), sa.UniqueConstraint("reference"))

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"))
    signal_id: Mapped[str] = mapped_column(sa.String(SIGNAL_ID_LENGTH))
    granted_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    reference: Mapped[str] = mapped_column(sa.String(255), doc="The payment (checkout) that bought it.")


class SubscriptionRow(Base):
    """A premium subscription at the payment provider; ``canceled`` is terminal (out-of-order safe)."""

    __tablename__ = "subscriptions"
    __table_args__ = (sa.CheckConstraint("status IN ('active', 'past_due', 'canceled')", name="status"),)

    id: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    user_id: Mapped[int | None] = mapped_column(
        sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=True
    )
    provider: Mapped[str] = mapped_column(sa.String(16))
    status: Mapped[str] = mapped_column(sa.String(16))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class PaymentRow(Base):
    """The payments ledger: every charge, refund, grant and revocation, kept after an account goes."""

    __tablename__ = "payments"
    __table_args__ = (
        sa.CheckConstraint("kind IN ('charge', 'refund', 'grant', 'revoke')", name="kind"),
        sa.Index(None, "user_id"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int | None] = mapped_column(
        sa.Integer, sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    provider: Mapped[str] = mapped_column(sa.String(16))
    kind: Mapped[str] = mapped_column(sa.String(16))
    reference: Mapped[str] = mapped_column(sa.String(255))
    amount_cents: Mapped[int] = mapped_column(sa.Integer)
    currency: Mapped[str] = mapped_column(sa.String(3))
    what: Mapped[str] = mapped_column(sa.String(64), doc="'premium' or 'signal:ID'.")
    at: Mapped[datetime] = mapped_column(UtcDateTime())


class WebhookEventRow(Base):
    """Provider events already applied: the same event id delivered again is acknowledged, not re-applied."""

    __tablename__ = "webhook_events"

    event_id: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    provider: Mapped[str] = mapped_column(sa.String(16))
    type: Mapped[str] = mapped_column(sa.String(64))
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())


class LlmResultRow(Base):
    """One explanation or research brief about a signal, with what writing it cost.

    The key is (signal, kind, prompt version, model): the explain sidecar asks the cache before it
    calls a provider, so a restart or a redelivered signal never pays twice. ``body`` is the
    ``domain.research.SignalText`` fields as JSON (text, citations, claims, dropped counts);
    ``fallback`` says why the template stands in for the model's answer (then ``model`` is
    ``template`` and the row is the served text, not a cached answer of the model).
    """

    __tablename__ = "llm_results"
    __table_args__ = (sa.Index(None, "signal_id", "kind", "created_at_ns"),)

    signal_id: Mapped[str] = mapped_column(sa.String(SIGNAL_ID_LENGTH), primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    prompt_version: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    model: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    provider: Mapped[str] = mapped_column(sa.String(32))
    body: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    fallback: Mapped[str | None] = mapped_column(sa.String(32), nullable=True)
    input_tokens: Mapped[int] = mapped_column(sa.Integer)
    output_tokens: Mapped[int] = mapped_column(sa.Integer)
    cost_usd: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    latency_ms: Mapped[float] = mapped_column(sa.Float)
    created_at_ns: Mapped[int] = mapped_column(sa.BigInteger)


class PushSubscriptionRow(Base):
    """A browser's Web Push subscription (migration 0009): where to send, and the keys to encrypt for.

    One row per endpoint (a browser profile re-subscribing, or signing in as someone else, moves it);
    a subscription is the user's opt-in to notifications. The push service's 404/410 deletes it.
    """

    __tablename__ = "push_subscriptions"
    __table_args__ = (sa.UniqueConstraint("endpoint"), sa.Index(None, "user_id"))

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"))
    endpoint: Mapped[str] = mapped_column(sa.String(2048))
    p256dh: Mapped[str] = mapped_column(sa.String(128), doc="The browser's P-256 public key, base64url.")
    auth: Mapped[str] = mapped_column(sa.String(64), doc="The 16-byte authentication secret, base64url.")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class IngestPositionRow(Base):
    """The last stored point of each ingest feed (``storage.base.IngestPosition``); one row a feed."""

    __tablename__ = "ingest_positions"

    feed: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    published: Mapped[str] = mapped_column(sa.Text, doc="JSON {topic: events published}.")
    ids: Mapped[str] = mapped_column(sa.Text, doc="JSON {topic: {partition: last message id}}.")
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


metadata = Base.metadata
