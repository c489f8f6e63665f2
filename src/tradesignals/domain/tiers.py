"""Subscription tiers and account roles. Prices live in Settings; who sees what, in ``entitlements``.

A dynamic upgrade is not a tier: it is an entitlement to one signal for a while
(``domain.entitlements.Upgrade``), which a free or a premium account may hold.
"""

from __future__ import annotations

from enum import StrEnum


class Tier(StrEnum):
    FREE = "free"
    PREMIUM = "premium"


class Role(StrEnum):
    USER = "user"
    ADMIN = "admin"


PUBLIC_CHANNELS = frozenset({"system:alerts", "market:status"})
