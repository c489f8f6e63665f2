"""Subscription tiers and what each may see. Prices live in Settings, not here."""

from __future__ import annotations

from enum import StrEnum


class Tier(StrEnum):
    FREE = "free"
    PREMIUM = "premium"
    DYNAMIC = "dynamic"  # premium plus at least one live-upgraded signal

    @property
    def sees_live_signals(self) -> bool:
        return self is not Tier.FREE


PUBLIC_CHANNELS = frozenset({"system:alerts", "market:status"})
