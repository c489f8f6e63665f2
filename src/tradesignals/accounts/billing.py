"""Billing behind ``PaymentProvider``: Stripe (official SDK) or ``local`` (the embedded demo, test mode).

A provider only starts payments and turns its notifications into events; what an event grants or
revokes is decided here, once, as storage ``Effect``s applied with the event id in one transaction
(``SqlAccountStore.apply_event``): the same event delivered 100 times grants once.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

import structlog

from tradesignals.storage.accounts import (
    Effect,
    GrantUpgrade,
    RecordPayment,
    RevokeUpgrade,
    SetSubscription,
    SqlAccountStore,
    SubscriptionStatus,
)
from tradesignals.storage.base import User

log = structlog.get_logger(__name__)


class BillingError(Exception):
    """A payment request that cannot be made; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


class BadWebhook(BillingError):
    def __init__(self, message: str) -> None:
        super().__init__(message, 400)


@dataclass(frozen=True, slots=True)
class Purchase:
    """What a checkout buys: ``premium`` (the subscription) or one signal's upgrade."""

    user: User
    signal_id: str | None
    amount_cents: int
    currency: str = "usd"

    @property
    def what(self) -> str:
        return f"signal:{self.signal_id}" if self.signal_id else "premium"


@dataclass(frozen=True, slots=True)
class Checkout:
    url: str
    paid: bool  # completed within the call (local provider)
    test_mode: bool


@dataclass(frozen=True, slots=True)
class ProviderEvent:
    """A verified provider notification in the provider's own vocabulary (Stripe's event shape)."""

    id: str
    type: str
    created: datetime
    obj: dict[str, Any]


class PaymentProvider(Protocol):
    name: str
    test_mode: bool

    def checkout(self, purchase: Purchase) -> tuple[Checkout, list[ProviderEvent]]:
        """Start a payment; events that already happened (local: the payment itself)."""
        ...

    def portal(self, user: User) -> str: ...

    def verify(self, payload: bytes, signature: str | None) -> ProviderEvent:
        """The event a webhook carries, or ``BadWebhook`` (forged, stale, malformed)."""
        ...


def _metadata(purchase: Purchase) -> dict[str, str]:
    meta = {"user_id": str(purchase.user.id), "kind": "signal" if purchase.signal_id else "premium"}
    if purchase.signal_id:
        meta["signal_id"] = purchase.signal_id
    return meta


class LocalProvider:
    """The embedded demo's provider: every payment succeeds at once. TEST MODE — no money moves."""

    name = "local"
    test_mode = True

    def checkout(self, purchase: Purchase) -> tuple[Checkout, list[ProviderEvent]]:
        now = datetime.now(UTC)
        session = f"local_cs_{uuid.uuid4().hex}"
        obj: dict[str, Any] = {
            "id": session,
            "mode": "payment" if purchase.signal_id else "subscription",
            "client_reference_id": str(purchase.user.id),
            "customer": f"local_cus_{purchase.user.id}",
            "subscription": None if purchase.signal_id else f"local_sub_{uuid.uuid4().hex}",
            "payment_intent": f"local_pi_{uuid.uuid4().hex}" if purchase.signal_id else None,
            "amount_total": purchase.amount_cents,
            "currency": purchase.currency,
            "metadata": _metadata(purchase),
        }
        log.info("billing.local_test_mode_payment", what=purchase.what, user_id=purchase.user.id)
        event = ProviderEvent(f"local_evt_{uuid.uuid4().hex}", "checkout.session.completed", now, obj)
        return Checkout(url=f"/billing/local/success?session={session}", paid=True, test_mode=True), [event]

    def portal(self, user: User) -> str:
        return "/billing/local/portal"

    def verify(self, payload: bytes, signature: str | None) -> ProviderEvent:
        raise BadWebhook("the local (test mode) provider takes no webhooks")


class StripeProvider:
    """Stripe through its official SDK; ``api_base`` points it elsewhere (tests: a local server)."""

    name = "stripe"

    def __init__(
        self,
        *,
        api_key: str,
        webhook_secret: str,
        premium_price_id: str,
        success_url: str,
        cancel_url: str,
        api_base: str | None = None,
        tolerance_s: int = 300,
    ) -> None:
        import stripe

        self._stripe = stripe
        self.client = stripe.StripeClient(
            api_key, base_addresses={"api": api_base} if api_base else None, max_network_retries=0
        )
        self.webhook_secret = webhook_secret
        self.premium_price_id = premium_price_id
        self.success_url = success_url
        self.cancel_url = cancel_url
        self.tolerance_s = tolerance_s
        self.test_mode = api_key.startswith("sk_test_")

    def checkout(self, purchase: Purchase) -> tuple[Checkout, list[ProviderEvent]]:
        meta = _metadata(purchase)
        params: dict[str, Any] = {
            "success_url": self.success_url,
            "cancel_url": self.cancel_url,
            "client_reference_id": str(purchase.user.id),
            "metadata": meta,
        }
        if purchase.user.customer_ref:
            params["customer"] = purchase.user.customer_ref
        else:
            params["customer_email"] = purchase.user.email
        if purchase.signal_id:
            params["mode"] = "payment"
            params["line_items"] = [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": purchase.currency,
                        "unit_amount": purchase.amount_cents,
                        "product_data": {"name": f"Live signal {purchase.signal_id}"},
                    },
                }
            ]
            params["payment_intent_data"] = {"metadata": meta}
        else:
            params["mode"] = "subscription"
            params["line_items"] = [{"price": self.premium_price_id, "quantity": 1}]
            params["subscription_data"] = {"metadata": meta}
        try:
            session = self.client.v1.checkout.sessions.create(params)  # type: ignore[arg-type]
        except self._stripe.StripeError as exc:
            raise BillingError(
                f"payment provider refused the checkout: {exc.user_message or type(exc).__name__}", 502
            ) from None
        return Checkout(url=str(session.url), paid=False, test_mode=self.test_mode), []

    def portal(self, user: User) -> str:
        if not user.customer_ref:
            raise BillingError("no billing account yet: subscribe first", 404)
        try:
            session = self.client.v1.billing_portal.sessions.create(
                {"customer": user.customer_ref, "return_url": self.success_url}
            )
        except self._stripe.StripeError as exc:
            raise BillingError(
                f"payment provider refused the portal: {exc.user_message or type(exc).__name__}", 502
            ) from None
        return str(session.url)

    def verify(self, payload: bytes, signature: str | None) -> ProviderEvent:
        if not signature:
            raise BadWebhook("missing Stripe-Signature header")
        try:
            event = self._stripe.Webhook.construct_event(
                payload, signature, self.webhook_secret, tolerance=self.tolerance_s
            )
        except self._stripe.SignatureVerificationError:
            raise BadWebhook("webhook signature invalid or stale") from None
        except (ValueError, TypeError, AttributeError, KeyError):  # not JSON, or JSON but not an object
            raise BadWebhook("webhook payload is not a Stripe event") from None
        raw = event.to_dict()
        try:
            obj = raw["data"]["object"]
            return ProviderEvent(
                str(raw["id"]), str(raw["type"]), datetime.fromtimestamp(int(raw["created"]), UTC), obj
            )
        except (KeyError, TypeError, ValueError):
            raise BadWebhook("webhook event lacks id, type, created or data.object") from None


_STRIPE_STATUS: dict[str, SubscriptionStatus] = {
    "active": "active",
    "trialing": "active",
    "past_due": "past_due",
    "unpaid": "past_due",
    "canceled": "canceled",
    "incomplete_expired": "canceled",
}


def _user_id(obj: dict[str, Any]) -> int | None:
    meta = obj.get("metadata") or {}
    raw = meta.get("user_id") or obj.get("client_reference_id")
    return int(raw) if isinstance(raw, str) and raw.isdigit() else None


def _invoice_subscription(obj: dict[str, Any]) -> str | None:
    """An invoice's subscription: top-level on older API versions, under ``parent`` on newer ones."""
    sub = obj.get("subscription")
    if isinstance(sub, str):
        return sub
    details = (obj.get("parent") or {}).get("subscription_details") or {}
    sub = details.get("subscription")
    return sub if isinstance(sub, str) else None


_PAID = ("paid", "no_payment_required")


def effects_of(event: ProviderEvent, *, upgrade_for: timedelta, now: datetime) -> list[Effect]:
    """What an event asks for. Unknown types ask for nothing (they are still recorded as seen).

    Only charges and refunds are stated here; the grants and revocations the payments ledger
    records are written by the store when an entitlement actually changes (a ``deleted`` that
    overtook its checkout grants nothing, so it records no grant).
    """
    obj = event.obj
    user_id = _user_id(obj)
    if event.type in ("checkout.session.completed", "checkout.session.async_payment_succeeded"):
        if user_id is None or obj.get("payment_status", "paid") not in _PAID:
            return []  # an asynchronous payment method: wait for async_payment_succeeded
        amount = int(obj.get("amount_total") or 0)
        currency = str(obj.get("currency") or "usd")
        meta = obj.get("metadata") or {}
        if obj.get("mode") == "subscription" and obj.get("subscription"):
            sub = str(obj["subscription"])
            return [
                SetSubscription(sub, user_id, "active", event.created),
                RecordPayment(user_id, "charge", str(obj["id"]), amount, currency, "premium"),
            ]
        signal_id = meta.get("signal_id")
        if obj.get("mode") == "payment" and isinstance(signal_id, str):
            ref = str(obj.get("payment_intent") or obj["id"])
            return [
                RecordPayment(user_id, "charge", ref, amount, currency, f"signal:{signal_id}"),
                GrantUpgrade(user_id, signal_id, now + upgrade_for, ref),
            ]
        return []
    if event.type in (
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
    ):
        if event.type.endswith("deleted"):
            return [SetSubscription(str(obj["id"]), user_id, "canceled", event.created)]
        status = _STRIPE_STATUS.get(str(obj.get("status")))
        # ``incomplete``: created by Checkout before it is paid; the completed checkout decides.
        return [SetSubscription(str(obj["id"]), user_id, status, event.created)] if status else []
    if event.type == "invoice.payment_failed":
        failed = _invoice_subscription(obj)
        return [SetSubscription(failed, user_id, "past_due", event.created)] if failed else []
    if event.type == "invoice.paid":
        paid = _invoice_subscription(obj)
        return [SetSubscription(paid, user_id, "active", event.created)] if paid else []
    if event.type == "charge.refunded":
        intent = obj.get("payment_intent")
        if not isinstance(intent, str):
            return []
        return [
            RecordPayment(
                user_id,
                "refund",
                intent,
                -int(obj.get("amount_refunded") or 0),
                str(obj.get("currency") or "usd"),
                "refund",
            ),
            RevokeUpgrade(intent),
        ]
    return []


def cents(amount: Decimal) -> int:
    return int((amount * 100).to_integral_value())


def notices_of(effects: list[Effect]) -> list[tuple[int, dict[str, Any]]]:
    """What each applied effect tells its user (a revocation by reference names no user: none)."""
    out: list[tuple[int, dict[str, Any]]] = []
    notice: dict[str, Any]
    for e in effects:
        if isinstance(e, GrantUpgrade):
            notice = {
                "kind": "upgrade_granted",
                "signal_id": e.signal_id,
                "expires_at": e.expires_at.isoformat(),
            }
            out.append((e.user_id, notice))
        elif isinstance(e, SetSubscription) and e.user_id is not None:
            out.append((e.user_id, {"kind": "subscription", "status": e.status}))
        elif isinstance(e, RecordPayment) and e.user_id is not None:
            notice = {
                "kind": f"payment_{e.kind}",
                "amount_cents": e.amount_cents,
                "currency": e.currency,
                "what": e.what,
            }
            out.append((e.user_id, notice))
    return out


class BillingService:
    def __init__(
        self,
        provider: PaymentProvider,
        store: SqlAccountStore,
        *,
        premium_price: Decimal,
        upgrade_price: Decimal,
        upgrade_for: timedelta,
    ) -> None:
        self.provider = provider
        self.store = store
        # Called with (user_id, notice) for each effect of a newly applied event (the API relays
        # them to ``user:{id}:notifications``); from the thread that applied it.
        self.listeners: list[Callable[[int, dict[str, Any]], None]] = []
        self.premium_cents = cents(premium_price)
        self.upgrade_cents = cents(upgrade_price)
        self.upgrade_for = upgrade_for

    def checkout(self, user: User, signal_id: str | None) -> Checkout:
        amount = self.upgrade_cents if signal_id else self.premium_cents
        result, events = self.provider.checkout(Purchase(user, signal_id, amount))
        for event in events:
            self.apply(event)
        return result

    def apply(self, event: ProviderEvent, now: datetime | None = None) -> bool:
        """Apply a verified event once; False when it was applied before (a redelivery)."""
        now = now or datetime.now(UTC)
        effects = effects_of(event, upgrade_for=self.upgrade_for, now=now)
        applied = self.store.apply_event(event.id, self.provider.name, event.type[:64], now, effects)
        if applied and event.type == "checkout.session.completed":
            user_id, customer = _user_id(event.obj), event.obj.get("customer")
            if user_id is not None and isinstance(customer, str):
                self.store.set_customer_ref(user_id, customer)
        if applied:
            for user_id, notice in notices_of(effects):
                for listener in self.listeners:
                    try:
                        listener(user_id, notice)
                    except Exception as exc:  # a notice is a courtesy: the payment stands regardless
                        log.warning("billing.notice_failed", error=repr(exc))
        log.info(
            "billing.event",
            provider=self.provider.name,
            test_mode=self.provider.test_mode,
            event_type=event.type,
            applied=applied,
            effects=len(effects),
        )
        return applied

    def webhook(self, payload: bytes, signature: str | None) -> bool:
        return self.apply(self.provider.verify(payload, signature))
