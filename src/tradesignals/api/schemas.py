"""Public API shapes. The OpenAPI document is generated from these, so they are the REST contract."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

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
