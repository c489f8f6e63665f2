"""Web Push subscriptions in SQL (table ``push_subscriptions``, migration 0009).

A subscription is a browser endpoint with the keys its notifications are encrypted for, owned by
one user; having one is the user's opt-in. The sender asks for the premium holders (new signals)
and for the holders of an upgrade in force to one signal (its close); the push service's 404/410
forgets an endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from tradesignals.domain.risk import ProfileName
from tradesignals.domain.tiers import Tier
from tradesignals.storage.base import DuplicateError
from tradesignals.storage.db import storage_errors, writer
from tradesignals.storage.tables import PushSubscriptionRow, SignalUpgradeRow, UserRow


@dataclass(frozen=True, slots=True)
class PushSubscription:
    id: int
    user_id: int
    endpoint: str
    p256dh: str
    auth: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class PremiumTarget:
    """A premium user's subscription with the profile new signals are fitted to."""

    subscription: PushSubscription
    profile: ProfileName


def _sub(row: PushSubscriptionRow) -> PushSubscription:
    return PushSubscription(row.id, row.user_id, row.endpoint, row.p256dh, row.auth, row.created_at)


class SqlPushStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._read = sessionmaker(engine, expire_on_commit=False)
        self._write = sessionmaker(writer(engine), expire_on_commit=False)

    def subscribe(
        self, user_id: int, endpoint: str, p256dh: str, auth: str, now: datetime
    ) -> PushSubscription:
        """Store (or move to ``user_id``, with fresh keys) the subscription of ``endpoint``."""
        for attempt in (1, 2):
            try:
                with (
                    storage_errors("storing a push subscription", self.engine),
                    self._write.begin() as session,
                ):
                    row = session.scalars(
                        sa.select(PushSubscriptionRow)
                        .where(PushSubscriptionRow.endpoint == endpoint)
                        .with_for_update()
                    ).one_or_none()
                    if row is None:
                        row = PushSubscriptionRow(
                            user_id=user_id, endpoint=endpoint, p256dh=p256dh, auth=auth, created_at=now
                        )
                        session.add(row)
                    else:
                        row.user_id, row.p256dh, row.auth, row.created_at = user_id, p256dh, auth, now
                    session.flush()
                    return _sub(row)
            except DuplicateError:  # the same endpoint stored at once by another request: update it
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def unsubscribe(self, user_id: int, endpoint: str) -> bool:
        with storage_errors("deleting a push subscription", self.engine), self._write.begin() as session:
            result = session.execute(
                sa.delete(PushSubscriptionRow).where(
                    PushSubscriptionRow.user_id == user_id, PushSubscriptionRow.endpoint == endpoint
                )
            )
            return bool(getattr(result, "rowcount", 0))

    def forget(self, endpoint: str) -> bool:
        """The push service says the endpoint is gone (404/410): nobody is notified there again."""
        with storage_errors("forgetting a push endpoint", self.engine), self._write.begin() as session:
            result = session.execute(
                sa.delete(PushSubscriptionRow).where(PushSubscriptionRow.endpoint == endpoint)
            )
            return bool(getattr(result, "rowcount", 0))

    def of_user(self, user_id: int) -> list[PushSubscription]:
        with storage_errors("reading push subscriptions", self.engine), self._read() as session:
            rows = session.scalars(
                sa.select(PushSubscriptionRow)
                .where(PushSubscriptionRow.user_id == user_id)
                .order_by(PushSubscriptionRow.id)
            )
            return [_sub(r) for r in rows]

    def premium_targets(self) -> list[PremiumTarget]:
        """Every subscription of a premium user, with the profile that user's signals are fitted to
        (moderate until the questionnaire is answered, as the API does)."""
        with storage_errors("reading push subscribers", self.engine), self._read() as session:
            rows = session.execute(
                sa.select(PushSubscriptionRow, UserRow.risk_profile, UserRow.profile_answered)
                .join(UserRow, UserRow.id == PushSubscriptionRow.user_id)
                .where(UserRow.tier == Tier.PREMIUM)
                .order_by(PushSubscriptionRow.id)
            ).all()
            return [
                PremiumTarget(_sub(row), ProfileName(profile) if answered else ProfileName.MODERATE)
                for row, profile, answered in rows
            ]

    def upgrade_targets(self, signal_id: str, at: datetime) -> list[PushSubscription]:
        """Subscriptions of the users holding an upgrade to ``signal_id`` in force at ``at``."""
        with storage_errors("reading push subscribers", self.engine), self._read() as session:
            holders = (
                sa.select(SignalUpgradeRow.user_id)
                .where(
                    SignalUpgradeRow.signal_id == signal_id,
                    SignalUpgradeRow.expires_at > at,
                    SignalUpgradeRow.revoked_at.is_(None),
                )
                .scalar_subquery()
            )
            rows = session.scalars(
                sa.select(PushSubscriptionRow)
                .where(PushSubscriptionRow.user_id.in_(holders))
                .order_by(PushSubscriptionRow.id)
            )
            return [_sub(r) for r in rows]


__all__ = ["PremiumTarget", "PushSubscription", "SqlPushStore"]
