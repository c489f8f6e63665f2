"""Accounts in SQL: lock-out counters, refresh-token families, upgrades, subscriptions, payments.

Billing effects are applied in ONE transaction together with the provider event's id
(``apply_event``): the id's primary key is what makes a webhook delivered 100 times grant once, and
a crash between "seen" and "applied" cannot happen because both commit or neither does.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from tradesignals.domain.entitlements import Upgrade
from tradesignals.domain.risk import ProfileName
from tradesignals.domain.tiers import Role, Tier
from tradesignals.storage.base import DuplicateError, StorageError, User
from tradesignals.storage.db import storage_errors, writer
from tradesignals.storage.repositories import _to_user
from tradesignals.storage.tables import (
    PaymentRow,
    PushSubscriptionRow,
    RefreshTokenRow,
    SignalUpgradeRow,
    SubscriptionRow,
    UserRow,
    WebhookEventRow,
)

SubscriptionStatus = Literal["active", "past_due", "canceled"]
PaymentKind = Literal["charge", "refund", "grant", "revoke"]
RotateOutcome = Literal["ok", "unknown", "expired", "revoked", "reused"]


@dataclass(frozen=True, slots=True)
class SetSubscription:
    """The provider says subscription ``id`` is now ``status`` (as of ``as_of``, the event's time)."""

    id: str
    user_id: int | None
    status: SubscriptionStatus
    as_of: datetime


@dataclass(frozen=True, slots=True)
class GrantUpgrade:
    user_id: int
    signal_id: str
    expires_at: datetime
    reference: str


@dataclass(frozen=True, slots=True)
class RevokeUpgrade:
    reference: str


@dataclass(frozen=True, slots=True)
class RecordPayment:
    user_id: int | None
    kind: PaymentKind
    reference: str
    amount_cents: int
    currency: str
    what: str


Effect = SetSubscription | GrantUpgrade | RevokeUpgrade | RecordPayment


@dataclass(frozen=True, slots=True)
class Payment:
    id: int
    user_id: int | None
    provider: str
    kind: str
    reference: str
    amount_cents: int
    currency: str
    what: str
    at: datetime


class SqlAccountStore:
    """Everything accounts and billing keep, beside ``SqlUserRepository``'s basic user rows."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._read = sessionmaker(engine, expire_on_commit=False)
        self._write = sessionmaker(writer(engine), expire_on_commit=False)

    # -- users -------------------------------------------------------------------------------

    def _update_user(self, user_id: int, what: str, **values: object) -> User:
        with storage_errors(what, self.engine), self._write.begin() as session:
            result = session.execute(sa.update(UserRow).where(UserRow.id == user_id).values(**values))
            if getattr(result, "rowcount", 0) == 0:
                raise StorageError(f"{what}: no user with id {user_id}")
            return _to_user(session.get_one(UserRow, user_id, populate_existing=True))

    def set_role(self, user_id: int, role: Role) -> User:
        return self._update_user(user_id, f"setting role of user {user_id}", role=Role(role))

    def answer_profile(self, user_id: int, profile: ProfileName) -> User:
        return self._update_user(
            user_id, f"setting risk profile of user {user_id}", risk_profile=profile, profile_answered=True
        )

    def login_failed(self, user_id: int, now: datetime, *, max_failures: int, lockout: timedelta) -> User:
        """Count a failed login; the ``max_failures``-th in a row locks the account for ``lockout``."""
        with (
            storage_errors(f"counting a failed login of user {user_id}", self.engine),
            self._write.begin() as session,
        ):
            row = session.get_one(UserRow, user_id, with_for_update=True)
            row.failed_logins += 1
            if row.failed_logins >= max_failures:
                row.locked_until = now + lockout
                row.failed_logins = 0
            session.flush()
            return _to_user(row)

    def login_succeeded(self, user_id: int) -> User:
        return self._update_user(
            user_id, f"resetting login failures of user {user_id}", failed_logins=0, locked_until=None
        )

    def set_customer_ref(self, user_id: int, ref: str) -> bool:
        """Remember the provider's customer id; False when the account is gone (nothing to do)."""
        with (
            storage_errors(f"setting customer of user {user_id}", self.engine),
            self._write.begin() as session,
        ):
            result = session.execute(sa.update(UserRow).where(UserRow.id == user_id).values(customer_ref=ref))
            return bool(getattr(result, "rowcount", 0))

    def delete_user(self, user_id: int) -> bool:
        """Delete the account and its tokens, upgrades, subscriptions and push subscriptions (the payments ledger keeps
        its rows, without the user: bookkeeping outlives accounts)."""
        with storage_errors(f"deleting user {user_id}", self.engine), self._write.begin() as session:
            for table in (RefreshTokenRow, SignalUpgradeRow, SubscriptionRow, PushSubscriptionRow):
                session.execute(sa.delete(table).where(table.user_id == user_id))
            session.execute(sa.update(PaymentRow).where(PaymentRow.user_id == user_id).values(user_id=None))
            result = session.execute(sa.delete(UserRow).where(UserRow.id == user_id))
            return bool(getattr(result, "rowcount", 0))

    # -- refresh tokens ----------------------------------------------------------------------

    def add_refresh(
        self, token_hash: str, user_id: int, family: str, now: datetime, expires_at: datetime
    ) -> None:
        with storage_errors("storing a refresh token", self.engine), self._write.begin() as session:
            session.add(
                RefreshTokenRow(
                    token_hash=token_hash,
                    user_id=user_id,
                    family=family,
                    issued_at=now,
                    expires_at=expires_at,
                )
            )

    def rotate_refresh(
        self, old_hash: str, new_hash: str, now: datetime, expires_at: datetime
    ) -> tuple[RotateOutcome, int | None]:
        """Spend ``old_hash`` and store ``new_hash`` in its family, atomically.

        A token presented a second time is a copy in someone else's hands: the whole family is
        revoked (the legitimate holder logs in again) and ``reused`` returned.
        """
        with storage_errors("rotating a refresh token", self.engine), self._write.begin() as session:
            row = session.scalars(
                sa.select(RefreshTokenRow).where(RefreshTokenRow.token_hash == old_hash).with_for_update()
            ).one_or_none()
            if row is None:
                return ("unknown", None)
            if row.revoked_at is not None:
                return ("revoked", row.user_id)
            if row.used_at is not None:
                self._revoke_family(session, row.family, now)
                return ("reused", row.user_id)
            if row.expires_at <= now:
                return ("expired", row.user_id)
            row.used_at = now
            session.add(
                RefreshTokenRow(
                    token_hash=new_hash,
                    user_id=row.user_id,
                    family=row.family,
                    issued_at=now,
                    expires_at=expires_at,
                )
            )
            return ("ok", row.user_id)

    @staticmethod
    def _revoke_family(session: Session, family: str, now: datetime) -> None:
        session.execute(
            sa.update(RefreshTokenRow)
            .where(RefreshTokenRow.family == family, RefreshTokenRow.revoked_at.is_(None))
            .values(revoked_at=now)
        )

    def revoke_family_of(self, token_hash: str, now: datetime) -> int | None:
        """Logout: revoke the family of this token; the user's id, or None for an unknown token."""
        with storage_errors("revoking a refresh token", self.engine), self._write.begin() as session:
            row = session.get(RefreshTokenRow, token_hash)
            if row is None:
                return None
            self._revoke_family(session, row.family, now)
            return row.user_id

    def live_refresh_count(self, user_id: int, now: datetime) -> int:
        with storage_errors("counting refresh tokens", self.engine), self._read() as session:
            return int(
                session.scalar(
                    sa.select(sa.func.count())
                    .select_from(RefreshTokenRow)
                    .where(
                        RefreshTokenRow.user_id == user_id,
                        RefreshTokenRow.revoked_at.is_(None),
                        RefreshTokenRow.used_at.is_(None),
                        RefreshTokenRow.expires_at > now,
                    )
                )
                or 0
            )

    # -- entitlements ------------------------------------------------------------------------

    def upgrades_of(self, user_id: int, now: datetime) -> list[Upgrade]:
        """Upgrades not revoked and not lapsed at ``now``."""
        with storage_errors(f"reading upgrades of user {user_id}", self.engine), self._read() as session:
            rows = session.scalars(
                sa.select(SignalUpgradeRow)
                .where(
                    SignalUpgradeRow.user_id == user_id,
                    SignalUpgradeRow.revoked_at.is_(None),
                    SignalUpgradeRow.expires_at > now,
                )
                .order_by(SignalUpgradeRow.expires_at)
            ).all()
            return [Upgrade(r.signal_id, r.expires_at) for r in rows]

    def subscription_status(self, subscription_id: str) -> str | None:
        with storage_errors("reading a subscription", self.engine), self._read() as session:
            row = session.get(SubscriptionRow, subscription_id)
            return row.status if row is not None else None

    def payments(self, user_id: int | None = None) -> list[Payment]:
        with storage_errors("reading payments", self.engine), self._read() as session:
            q = sa.select(PaymentRow).order_by(PaymentRow.id)
            if user_id is not None:
                q = q.where(PaymentRow.user_id == user_id)
            return [
                Payment(
                    r.id, r.user_id, r.provider, r.kind, r.reference, r.amount_cents, r.currency, r.what, r.at
                )
                for r in session.scalars(q).all()
            ]

    def apply_event(
        self, event_id: str, provider: str, type_: str, now: datetime, effects: list[Effect]
    ) -> bool:
        """Apply a provider event's effects once; False when this event id was applied before.

        The event id row and the effects commit together. Subscriptions: ``canceled`` is terminal
        (a ``deleted`` that overtook its ``checkout.session.completed`` wins), and an update older
        than the stored state is ignored. Each touched user's tier is then recomputed from their
        subscriptions (premium while one is active), and every change of an entitlement — tier or
        upgrade — is written to the payments ledger as a ``grant`` or ``revoke`` row, so the ledger
        states exactly what was granted, not what was asked for.
        """
        touched: set[int] = set()
        try:
            with (
                storage_errors(f"applying {provider} event {event_id}", self.engine),
                self._write.begin() as session,
            ):
                session.add(
                    WebhookEventRow(event_id=event_id, provider=provider, type=type_, received_at=now)
                )
                session.flush()
                for effect in effects:
                    self._apply(session, provider, now, effect, touched)
                for user_id in sorted(touched):
                    self._retier(session, user_id, provider, event_id, now)
        except DuplicateError:
            return False
        return True

    @staticmethod
    def _ledger(
        session: Session, provider: str, now: datetime, user_id: int | None, kind: PaymentKind,
        reference: str, what: str, amount_cents: int = 0, currency: str = "usd",
    ) -> None:  # fmt: skip
        session.add(
            PaymentRow(
                user_id=user_id,
                provider=provider,
                kind=kind,
                reference=reference,
                amount_cents=amount_cents,
                currency=currency,
                what=what,
                at=now,
            )
        )

    def _retier(self, session: Session, user_id: int, provider: str, event_id: str, now: datetime) -> None:
        user = session.get(UserRow, user_id, with_for_update=True)
        if user is None:
            return  # deleted since: nothing to grant
        active = session.scalar(
            sa.select(sa.func.count())
            .select_from(SubscriptionRow)
            .where(SubscriptionRow.user_id == user_id, SubscriptionRow.status == "active")
        )
        tier = Tier.PREMIUM if active else Tier.FREE
        if user.tier != tier:
            user.tier = tier
            kind: PaymentKind = "grant" if tier is Tier.PREMIUM else "revoke"
            self._ledger(session, provider, now, user_id, kind, event_id, "premium")

    @staticmethod
    def _known(session: Session, user_id: int | None) -> int | None:
        """``user_id`` if that account exists: an event may name one deleted since (or never ours),
        which must still be recorded and acknowledged, never a foreign-key error and a retry storm."""
        if user_id is None or session.get(UserRow, user_id) is None:
            return None
        return user_id

    def _apply(
        self, session: Session, provider: str, now: datetime, effect: Effect, touched: set[int]
    ) -> None:
        if isinstance(effect, SetSubscription | RecordPayment):
            effect = replace(effect, user_id=self._known(session, effect.user_id))
        if isinstance(effect, SetSubscription):
            row = session.get(SubscriptionRow, effect.id, with_for_update=True)
            if row is None:
                row = SubscriptionRow(
                    id=effect.id,
                    user_id=effect.user_id,
                    provider=provider,
                    status=effect.status,
                    updated_at=effect.as_of,
                )
                session.add(row)
            else:
                if row.status != "canceled" and (
                    effect.status == "canceled" or effect.as_of >= row.updated_at
                ):
                    row.status = effect.status
                    row.updated_at = effect.as_of
                if row.user_id is None:
                    row.user_id = effect.user_id
            session.flush()
            if row.user_id is not None:
                touched.add(row.user_id)
        elif isinstance(effect, GrantUpgrade):
            if self._known(session, effect.user_id) is None:
                return  # no such account: the charge is recorded (unnamed), nothing to grant
            exists = session.scalar(
                sa.select(SignalUpgradeRow.id).where(SignalUpgradeRow.reference == effect.reference)
            )
            refunded = session.scalar(
                sa.select(PaymentRow.id).where(
                    PaymentRow.reference == effect.reference, PaymentRow.kind == "refund"
                )
            )
            if exists is None and refunded is None:  # a refund that overtook its checkout grants nothing
                session.add(
                    SignalUpgradeRow(
                        user_id=effect.user_id,
                        signal_id=effect.signal_id,
                        granted_at=now,
                        expires_at=effect.expires_at,
                        reference=effect.reference,
                    )
                )
                self._ledger(
                    session,
                    provider,
                    now,
                    effect.user_id,
                    "grant",
                    effect.reference,
                    f"signal:{effect.signal_id}",
                )
        elif isinstance(effect, RevokeUpgrade):
            rows = session.scalars(
                sa.select(SignalUpgradeRow)
                .where(SignalUpgradeRow.reference == effect.reference, SignalUpgradeRow.revoked_at.is_(None))
                .with_for_update()
            ).all()
            for up in rows:
                up.revoked_at = now
                self._ledger(
                    session, provider, now, up.user_id, "revoke", effect.reference, f"signal:{up.signal_id}"
                )
        else:
            user_id = effect.user_id
            if user_id is None:  # a refund names no user: the charge it refunds does
                user_id = session.scalar(
                    sa.select(PaymentRow.user_id).where(
                        PaymentRow.reference == effect.reference, PaymentRow.kind == "charge"
                    )
                )
            self._ledger(
                session, provider, now, user_id, effect.kind, effect.reference, effect.what,
                effect.amount_cents, effect.currency,
            )  # fmt: skip

    def reconcile(self) -> list[str]:
        """Where the payments ledger and the entitlements disagree (empty: they agree).

        - a user is premium exactly when their premium ``grant`` rows outnumber their ``revoke``
          rows by one (and by zero when free);
        - an upgrade is in force (not revoked) exactly when its reference has one ``grant`` more
          than ``revoke``s, and every upgrade grant has a ``charge`` with the same reference.

        Lapsing by time is not a revocation: a lapsed upgrade still counts as granted here.
        """
        problems: list[str] = []
        with storage_errors("reconciling payments", self.engine), self._read() as session:
            rows = session.scalars(sa.select(PaymentRow).order_by(PaymentRow.id)).all()
            premium_net: dict[int, int] = {}
            upgrade_net: dict[str, int] = {}
            charged = {r.reference for r in rows if r.kind == "charge"}
            for r in rows:
                step = {"grant": 1, "revoke": -1}.get(r.kind, 0)
                if not step or r.user_id is None:
                    continue
                if r.what == "premium":
                    premium_net[r.user_id] = premium_net.get(r.user_id, 0) + step
                else:
                    upgrade_net[r.reference] = upgrade_net.get(r.reference, 0) + step
                    if r.kind == "grant" and r.reference not in charged:
                        problems.append(f"upgrade {r.reference} granted without a charge")
            for user in session.scalars(sa.select(UserRow)).all():
                want = 1 if user.tier == Tier.PREMIUM else 0
                if premium_net.get(user.id, 0) != want:
                    problems.append(
                        f"user {user.id} is {user.tier.value} but the ledger nets {premium_net.get(user.id, 0)} premium grants"
                    )
            for up in session.scalars(sa.select(SignalUpgradeRow)).all():
                want = 0 if up.revoked_at is not None else 1
                if upgrade_net.get(up.reference, 0) != want:
                    problems.append(
                        f"upgrade {up.reference} is {'revoked' if want == 0 else 'in force'} but the ledger disagrees"
                    )
                upgrade_net.pop(up.reference, None)
            problems += [
                f"ledger grants upgrade {ref} that does not exist" for ref, n in upgrade_net.items() if n
            ]
        return problems
