"""Public API shapes. The OpenAPI document is generated from these, so they are the REST contract."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tradesignals.domain.checkpoints import Checkpoint
from tradesignals.domain.outcomes import OutcomeKind
from tradesignals.domain.risk import ProfileName
from tradesignals.domain.signals import Direction, Signal, SignalStatus, SignalType
from tradesignals.engine.track_record import HistoryRow

MAX_INT64 = 2**63 - 1
"""The largest integer a query parameter may carry: both databases store seqs as 64-bit integers."""


class PositionSize(BaseModel):
    """How large a position a profile takes in a signal, for a stated capital.

    Sized so that being stopped out loses the profile's risk per trade (``risk_per_trade_pct`` of
    capital), capped by its maximum position; no other position is assumed open.
    """

    profile: ProfileName
    capital: float = Field(description="The capital the size is computed for (the `capital` parameter).")
    position_pct: float = Field(description="Percent of capital to commit.")
    position_value: float = Field(description="capital × position_pct / 100, in the capital's currency.")
    units: float = Field(description="position_value / entry (round down to what your broker trades).")
    risk_amount: float = Field(
        description="What the position loses at the stop: position_value × |entry − stop| / entry."
    )
    edge: float = Field(
        description="Confidence minus the model's base rate (0.5 without one), in probability points."
    )
    volatility: float = Field(description="Annualised volatility the filter judged (0.3 = 30 %).")
    notes: list[str] = Field(description="What limited the size, if anything.")


class SignalPublic(BaseModel):
    """A signal as a client sees it; the outcome fields are null while it is open."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    symbol: str
    type: SignalType
    direction: Direction
    entry: float
    stop: float
    targets: list[float]
    confidence: float = Field(ge=0, le=1)
    created_at: datetime
    expires_at: datetime
    status: SignalStatus
    timeframe: str
    model_version: str
    reasons: list[str]
    decided_at: datetime | None = Field(
        description="Close of the bar the decision was made on; created_at is when it was published."
    )
    base_rate: float | None = Field(description="The model's realised win rate; null for rule-based signals.")
    edge: float | None = Field(description="confidence − base_rate; null without a base rate.")
    confidence_rank: float | None = Field(
        default=None,
        description="Where the confidence ranks among the model's own out-of-fold confidences (0–1); "
        "the scale the risk profiles filter on. Null for rule-based signals.",
    )
    outcome: OutcomeKind | None = Field(None, description="How it closed; null while open or unrecorded.")
    win: bool | None = Field(None, description="Net R > 0 at the plan's exit (false when not filled).")
    filled_at: datetime | None = None
    fill_price: float | None = None
    exit_price: float | None = None
    gross_pnl_pct: float | None = Field(None, description="Percent of the fill, before costs.")
    costs_pct: float | None = Field(None, description="Round-trip costs (and borrow), percent of the fill.")
    net_pnl_pct: float | None = Field(None, description="gross_pnl_pct − costs_pct.")
    gross_r: float | None = None
    net_r: float | None = Field(None, description="Net P/L in R (plan risk: entry to stop).")
    size: PositionSize | None = Field(None, description="Present when a profile was asked for.")

    @classmethod
    def of(cls, s: Signal, close: HistoryRow | None = None, size: PositionSize | None = None) -> SignalPublic:
        """``close``: the signal's row in the track record, when it is closed."""
        c = close
        return cls(
            decided_at=s.decided_at or s.created_at,
            base_rate=s.base_rate,
            edge=s.edge,
            confidence_rank=s.confidence_rank,
            outcome=OutcomeKind(c.outcome) if c is not None and c.outcome is not None else None,
            win=c.win if c is not None else None,
            filled_at=c.filled_at if c is not None else None,
            fill_price=c.fill_price if c is not None else None,
            exit_price=c.exit_price if c is not None else None,
            gross_pnl_pct=c.gross_pnl_pct if c is not None else None,
            costs_pct=c.costs_pct if c is not None else None,
            net_pnl_pct=c.net_pnl_pct if c is not None else None,
            gross_r=c.gross_r if c is not None else None,
            net_r=c.net_r if c is not None else None,
            size=size,
            id=s.id,
            symbol=s.symbol,
            type=s.type,
            direction=s.direction,
            entry=s.entry,
            stop=s.stop,
            targets=list(s.targets),
            confidence=s.confidence,
            created_at=s.created_at,
            expires_at=s.expires_at,
            status=s.status,
            timeframe=s.timeframe,
            model_version=s.model_version,
            reasons=list(s.reasons),
        )


class SignalsPage(BaseModel):
    items: list[SignalPublic]
    next_before: str | None = Field(
        description="Pass as `before` to get the next (older) page; null at the end."
    )


class ServiceHealth(BaseModel):
    ok: bool
    detail: str
    gates: bool = Field(
        default=True,
        description="A failure of this check makes the node answer 503 (its database, Redis); "
        "a role's lag is reported only.",
    )


class GroupHealth(BaseModel):
    """A role's consumer group: how far behind it is, and whether it keeps up."""

    role: str = Field(description="The role that reads the group (engine, recorder).")
    topic: str
    group: str
    unread: int | None = Field(description="Published, never delivered; null: Redis cannot count it.")
    pending: int = Field(description="Delivered, not acked.")
    members: int = Field(description="Live members of the group.")
    keeping_up: bool = Field(
        description="unread + pending within TS_HEALTH_MAX_LAG and a live member reading; "
        "an unknown unread is not keeping up."
    )


class ProcessHealth(BaseModel):
    """A live ``serve`` process, from its heartbeat (operators only)."""

    host: str
    pid: int
    roles: list[str]
    version: str
    started_at: datetime
    last_seen: datetime = Field(description="Its last heartbeat (every TS_REGISTRY_HEARTBEAT_S).")


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    mode: str
    version: str
    services: dict[str, ServiceHealth]
    roles: dict[str, int] = Field(
        default_factory=dict,
        description="Live processes per role, from the process registry (empty: it could not be read).",
    )
    groups: list[GroupHealth] = Field(
        default_factory=list, description="Each role's consumer group that exists (lag, keeping up)."
    )
    processes: list[ProcessHealth] | None = Field(
        default=None,
        description="Which process runs which roles where: only with X-Operator-Token or an admin's token.",
    )


class ErrorOut(BaseModel):
    detail: str


class CheckpointOut(BaseModel):
    """A signed ledger head (recipe: ``tradesignals.domain.checkpoints``); save it to check later."""

    number: int = Field(description="1, 2, 3… without gaps.")
    seq: int = Field(description="The ledger's last entry when signed (0: empty ledger).")
    head_hash: str = Field(description="That entry's hash.")
    at: str = Field(description="When signed, UTC, exactly as signed: YYYY-MM-DDTHH:MM:SS.ffffffZ")
    previous_checkpoint_hash: str = Field(description="`hash` of checkpoint number - 1 (64 zeros for 1).")
    next_public_key: str | None = Field(
        description="On a key rotation: the key in force from the next checkpoint."
    )
    public_key: str = Field(description="Ed25519 key that signed it, 32 bytes as hex.")
    signature: str = Field(description="Ed25519 signature of the message, 64 bytes as hex.")
    hash: str = Field(description="sha256 of the signed message, hex.")

    @classmethod
    def of(cls, cp: Checkpoint) -> CheckpointOut:
        return cls(**cp.to_json())
