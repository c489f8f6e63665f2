"""What a node needs for Web Push: its VAPID keys, the subscriptions, the sender."""

from __future__ import annotations

from dataclasses import dataclass

from tradesignals.push.sender import PushSender
from tradesignals.push.vapid import VapidKeys
from tradesignals.storage.push import SqlPushStore


@dataclass(slots=True)
class PushService:
    keys: VapidKeys
    store: SqlPushStore
    sender: PushSender
    allow_loopback: bool = False
    """Accept http://127.0.0.1 endpoints (TS_PUSH_ALLOW_LOOPBACK: tests, local development)."""


__all__ = ["PushService"]
