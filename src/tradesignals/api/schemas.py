"""Public API shapes. The OpenAPI document is generated from these, so they are the REST contract."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tradesignals.domain.checkpoints import Checkpoint
from tradesignals.domain.signals import Direction, Signal, SignalStatus, SignalType


class SignalPublic(BaseModel):
    """A signal as a client sees it."""

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

    @classmethod
    def of(cls, s: Signal) -> SignalPublic:
        return cls(
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


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    mode: str
    version: str
    services: dict[str, ServiceHealth]


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
