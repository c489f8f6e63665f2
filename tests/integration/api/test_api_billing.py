"""Billing through the official Stripe SDK against a local Stripe (fake_stripe), on SQLite and the
real PostgreSQL: checkout and portal calls as Stripe receives them, signed webhooks (the same event
100 times, forged and stale signatures, out-of-order delivery, refunds, failed renewals and
cancellations), and the payments ledger reconciled against the entitlements after each."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fake_stripe import API_KEY, PREMIUM_PRICE, WEBHOOK_SECRET, FakeStripe, event, serve, sign
from fastapi.testclient import TestClient

from tradesignals.api.app import create_app
from tradesignals.config import load_settings
from tradesignals.domain.signals import Direction, Signal, SignalType, new_signal_id
from tradesignals.domain.tiers import Tier
from tradesignals.wiring import Services, build_services

PASSWORD = "correct horse battery staple"


@pytest.fixture
def stripe_server() -> Iterator[FakeStripe]:
    state, server = serve()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def services(db_url: str, tmp_path: Path, stripe_server: FakeStripe) -> Services:
    settings = load_settings(
        home=tmp_path,
        mode="embedded",
        database_url=db_url,
        payment_provider="stripe",
        stripe_api_key=API_KEY,
        stripe_webhook_secret=WEBHOOK_SECRET,
        stripe_premium_price_id=PREMIUM_PRICE,
        stripe_api_base=stripe_server.url,
    )
    return asyncio.run(build_services(settings))


@pytest.fixture
def api(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services, roles=frozenset({"api"}))) as c:
        yield c


def live_signal(services: Services) -> Signal:
    now = datetime.now(UTC)
    s = Signal(
        id=new_signal_id(),
        symbol="AAPL",
        type=SignalType.SWING,
        direction=Direction.LONG,
        entry=187.25,
        stop=180.0,
        targets=(195.0,),
        confidence=0.6,
        created_at=now,
        expires_at=now + timedelta(days=3),
        model_version="billing-test",
    )
    services.signals.add(s)
    return s


def sign_up(api: TestClient, email: str = "payer@example.com") -> tuple[int, dict[str, str]]:
    r = api.post("/api/auth/register", json={"email": email, "password": PASSWORD})
    assert r.status_code == 201
    token = api.post("/api/auth/token", data={"username": email, "password": PASSWORD}).json()["access_token"]
    return r.json()["id"], {"Authorization": f"Bearer {token}"}


def post(api: TestClient, body: bytes, signature: str | bool | None = None) -> Any:
    """POST a webhook; ``signature`` None: signed correctly now, False: no header at all."""
    headers = {"Content-Type": "application/json"}
    if signature is not False:
        headers["Stripe-Signature"] = signature if isinstance(signature, str) else sign(body)
    return api.post("/api/billing/webhook", content=body, headers=headers)


def completed_subscription(user_id: int, sub: str = "sub_1", customer: str = "cus_1") -> dict[str, Any]:
    return {
        "id": f"cs_test_{sub}",
        "object": "checkout.session",
        "mode": "subscription",
        "payment_status": "paid",
        "status": "complete",
        "client_reference_id": str(user_id),
        "customer": customer,
        "subscription": sub,
        "payment_intent": None,
        "amount_total": 1999,
        "currency": "usd",
        "metadata": {"user_id": str(user_id), "kind": "premium"},
    }


def completed_upgrade(user_id: int, signal_id: str, intent: str = "pi_1") -> dict[str, Any]:
    return {
        "id": f"cs_test_{intent}",
        "object": "checkout.session",
        "mode": "payment",
        "payment_status": "paid",
        "status": "complete",
        "client_reference_id": str(user_id),
        "customer": "cus_1",
        "subscription": None,
        "payment_intent": intent,
        "amount_total": 499,
        "currency": "usd",
        "metadata": {"user_id": str(user_id), "kind": "signal", "signal_id": signal_id},
    }


def subscription(sub: str, status: str, user_id: int | None = None, **extra: Any) -> dict[str, Any]:
    meta = {"user_id": str(user_id), "kind": "premium"} if user_id is not None else {}
    return {
        "id": sub,
        "object": "subscription",
        "customer": "cus_1",
        "status": status,
        "metadata": meta,
    } | extra


def invoice(sub: str) -> dict[str, Any]:
    # API versions from 2025 put the subscription under parent.subscription_details
    return {
        "id": f"in_{sub}",
        "object": "invoice",
        "customer": "cus_1",
        "currency": "usd",
        "parent": {"type": "subscription_details", "subscription_details": {"subscription": sub}},
    }


def tier(services: Services, user_id: int) -> Tier:
    user = services.accounts.users.get(user_id)
    assert user is not None
    return user.tier


def ledger(services: Services, user_id: int | None = None) -> list[tuple[str, str, int]]:
    return [(p.kind, p.what, p.amount_cents) for p in services.accounts.store.payments(user_id)]


def reconciled(services: Services) -> None:
    assert services.accounts.store.reconcile() == []


# --- checkout and portal: what Stripe receives -----------------------------------------------------


def test_premium_checkout_goes_through_the_sdk(
    api: TestClient, services: Services, stripe_server: FakeStripe
) -> None:
    user_id, h = sign_up(api)
    r = api.post("/api/billing/checkout", json={"plan": "premium"}, headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["url"].startswith("https://checkout.stripe.com/c/pay/cs_test_")
    assert body["status"] == "open" and body["test_mode"] is True  # sk_test_ keys: test mode, said so
    [(method, path, form)] = stripe_server.requests
    assert (method, path) == ("POST", "/v1/checkout/sessions")
    assert form["mode"] == "subscription" and form["line_items"]["0"] == {
        "price": PREMIUM_PRICE,
        "quantity": "1",
    }
    assert form["client_reference_id"] == str(user_id) and form["customer_email"] == "payer@example.com"
    assert form["metadata"] == {"user_id": str(user_id), "kind": "premium"}
    assert form["subscription_data"]["metadata"]["user_id"] == str(user_id)
    assert form["success_url"].endswith("/billing/success")
    assert tier(services, user_id) is Tier.FREE  # nothing granted before the webhook


def test_signal_checkout_sells_one_signal_at_its_price(
    api: TestClient, services: Services, stripe_server: FakeStripe
) -> None:
    _user_id, h = sign_up(api)
    s = live_signal(services)
    r = api.post("/api/billing/checkout", json={"signal_id": s.id}, headers=h)
    assert r.status_code == 200 and r.json()["status"] == "open"
    form = stripe_server.requests[-1][2]
    assert form["mode"] == "payment"
    assert form["line_items"]["0"]["price_data"] == {
        "currency": "usd",
        "unit_amount": "499",
        "product_data": {"name": f"Live signal {s.id}"},
    }
    assert (
        form["metadata"]["signal_id"] == s.id and form["payment_intent_data"]["metadata"]["signal_id"] == s.id
    )
    assert api.post("/api/billing/checkout", json={"signal_id": "0" * 22}, headers=h).status_code == 404
    for bad in ({"plan": "gold"}, {}, {"plan": "premium", "signal_id": s.id}, {"signal_id": "xyz"}):
        r = api.post("/api/billing/checkout", json=bad, headers=h)
        assert r.status_code == 422 and r.json()["detail"], bad


def test_a_stripe_refusal_is_a_502_with_a_reason(tmp_path: Path, stripe_server: FakeStripe) -> None:
    settings = load_settings(
        home=tmp_path, mode="embedded", payment_provider="stripe", stripe_api_key=API_KEY,
        stripe_webhook_secret=WEBHOOK_SECRET, stripe_premium_price_id="price_unknown",
        stripe_api_base=stripe_server.url,
    )  # fmt: skip
    with TestClient(create_app(asyncio.run(build_services(settings)))) as api:
        _, h = sign_up(api)
        r = api.post("/api/billing/checkout", json={"plan": "premium"}, headers=h)
    assert r.status_code == 502 and "No such price" in r.json()["detail"]


def test_the_portal_needs_a_customer_then_links_to_stripe(
    api: TestClient, services: Services, stripe_server: FakeStripe
) -> None:
    user_id, h = sign_up(api)
    r = api.get("/api/billing/portal", headers=h)
    assert r.status_code == 404 and "subscribe first" in r.json()["detail"]
    stripe_server.customers.add("cus_1")
    assert post(api, event("checkout.session.completed", completed_subscription(user_id))).status_code == 200
    r = api.get("/api/billing/portal", headers=h)
    assert r.status_code == 200 and r.json()["url"].startswith("https://billing.stripe.com/p/session/")
    method, path, form = stripe_server.requests[-1]
    assert (method, path, form["customer"]) == ("POST", "/v1/billing_portal/sessions", "cus_1")
    assert api.get("/api/billing/portal").status_code == 401


# --- webhooks --------------------------------------------------------------------------------------


def test_the_same_event_delivered_100_times_grants_once(api: TestClient, services: Services) -> None:
    user_id, h = sign_up(api)
    body = event("checkout.session.completed", completed_subscription(user_id), event_id="evt_once")
    answers = [post(api, body) for _ in range(100)]
    assert all(r.status_code == 200 for r in answers)
    assert [r.json()["applied"] for r in answers] == [True] + [False] * 99
    assert tier(services, user_id) is Tier.PREMIUM
    assert ledger(services, user_id) == [("charge", "premium", 1999), ("grant", "premium", 0)]
    assert api.get("/api/me", headers=h).json()["tier"] == "premium"
    reconciled(services)


@pytest.mark.parametrize(
    "case",
    ["wrong secret", "tampered body", "stale", "missing", "garbage", "v0 only", "no timestamp"],
)
def test_a_forged_or_stale_signature_is_400_and_grants_nothing(
    api: TestClient, services: Services, case: str
) -> None:
    user_id, _ = sign_up(api)
    body = event("checkout.session.completed", completed_subscription(user_id))
    now = int(time.time())
    good = sign(body)
    signature: Any = {
        "wrong secret": sign(body, secret="whsec_someone_else"),
        "tampered body": good,
        "stale": sign(body, timestamp=now - 301),
        "missing": False,
        "garbage": "hello",
        "v0 only": good.replace("v1=", "v0="),
        "no timestamp": good.split(",", 1)[1],
    }[case]
    sent = body.replace(b'"amount_total": 1999', b'"amount_total": 1') if case == "tampered body" else body
    r = post(api, sent, signature)
    assert r.status_code == 400 and r.json()["detail"], case
    assert tier(services, user_id) is Tier.FREE and ledger(services) == []
    # ... and the genuine delivery still works afterwards (the forged one did not burn its id)
    assert post(api, body).json()["applied"] is True and tier(services, user_id) is Tier.PREMIUM


@pytest.mark.parametrize(
    "body", [b"not json", b"{}", b'{"id": "evt_x", "type": "checkout.session.completed"}', b"[]"]
)
def test_a_well_signed_malformed_event_is_400(api: TestClient, body: bytes) -> None:
    r = post(api, body)
    assert r.status_code == 400 and r.json()["detail"]


def test_deleted_before_its_checkout_completes_never_grants(api: TestClient, services: Services) -> None:
    user_id, _h = sign_up(api)
    t = int(time.time())
    deleted = event("customer.subscription.deleted", subscription("sub_9", "canceled", user_id), created=t)
    completed = event("checkout.session.completed", completed_subscription(user_id, "sub_9"), created=t - 5)
    assert post(api, deleted).json()["applied"] is True
    assert post(api, completed).json()["applied"] is True
    assert tier(services, user_id) is Tier.FREE
    assert ledger(services, user_id) == [("charge", "premium", 1999)]  # paid, never granted: a refund is due
    assert services.accounts.store.subscription_status("sub_9") == "canceled"
    reconciled(services)


def test_an_update_older_than_the_stored_state_is_ignored(api: TestClient, services: Services) -> None:
    user_id, _ = sign_up(api)
    t = int(time.time())
    post(api, event("checkout.session.completed", completed_subscription(user_id, "sub_2"), created=t))
    post(api, event("invoice.payment_failed", invoice("sub_2"), created=t + 10))
    assert tier(services, user_id) is Tier.FREE
    late = event("customer.subscription.updated", subscription("sub_2", "active", user_id), created=t + 5)
    post(api, late)  # sent before the failure, delivered after it
    assert tier(services, user_id) is Tier.FREE
    reconciled(services)


def test_a_refund_revokes_the_upgrade(api: TestClient, services: Services) -> None:
    user_id, h = sign_up(api)
    s = live_signal(services)
    assert api.get(f"/api/signals/{s.id}", headers=h).status_code == 403
    post(api, event("checkout.session.completed", completed_upgrade(user_id, s.id, "pi_7")))
    assert api.get(f"/api/signals/{s.id}", headers=h).status_code == 200
    me = api.get("/api/me", headers=h).json()
    assert [u["signal_id"] for u in me["upgrades"]] == [s.id]
    expires = datetime.fromisoformat(me["upgrades"][0]["expires_at"])
    assert timedelta(hours=71, minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=72)
    refund = {
        "id": "ch_7",
        "object": "charge",
        "payment_intent": "pi_7",
        "amount_refunded": 499,
        "currency": "usd",
        "refunded": True,
    }
    assert post(api, event("charge.refunded", refund)).json()["applied"] is True
    assert api.get(f"/api/signals/{s.id}", headers=h).status_code == 403
    assert api.get("/api/me", headers=h).json()["upgrades"] == []
    assert ledger(services, user_id) == [
        ("charge", f"signal:{s.id}", 499),
        ("grant", f"signal:{s.id}", 0),
        ("refund", "refund", -499),
        ("revoke", f"signal:{s.id}", 0),
    ]
    reconciled(services)


def test_a_refund_that_overtakes_its_checkout_grants_nothing(api: TestClient, services: Services) -> None:
    user_id, _h = sign_up(api)
    s = live_signal(services)
    refund = {
        "id": "ch_8",
        "object": "charge",
        "payment_intent": "pi_8",
        "amount_refunded": 499,
        "currency": "usd",
    }
    post(
        api, event("checkout.session.completed", completed_upgrade(user_id, s.id, "pi_0"))
    )  # another purchase
    post(api, event("charge.refunded", refund))
    post(api, event("checkout.session.completed", completed_upgrade(user_id, s.id, "pi_8")))
    upgrades = services.accounts.upgrades(user_id)
    assert len(upgrades) == 1  # pi_0's; pi_8 was refunded before it completed
    assert [p.reference for p in services.accounts.store.payments(user_id) if p.kind == "grant"] == ["pi_0"]
    reconciled(services)


def test_a_failed_renewal_revokes_and_a_paid_one_restores(api: TestClient, services: Services) -> None:
    user_id, h = sign_up(api)
    s = live_signal(services)
    t = int(time.time())
    post(api, event("checkout.session.completed", completed_subscription(user_id, "sub_3"), created=t))
    assert api.get(f"/api/signals/{s.id}", headers=h).status_code == 200
    post(api, event("invoice.payment_failed", invoice("sub_3"), created=t + 1))
    assert tier(services, user_id) is Tier.FREE
    assert api.get(f"/api/signals/{s.id}", headers=h).status_code == 403  # at once: not at token expiry
    post(
        api, event("customer.subscription.updated", subscription("sub_3", "past_due", user_id), created=t + 1)
    )
    post(api, event("invoice.paid", invoice("sub_3"), created=t + 2))
    assert tier(services, user_id) is Tier.PREMIUM
    kinds = [(k, w) for k, w, _ in ledger(services, user_id)]
    assert kinds == [("charge", "premium"), ("grant", "premium"), ("revoke", "premium"), ("grant", "premium")]
    reconciled(services)


def test_a_cancellation_keeps_access_until_the_period_ends(api: TestClient, services: Services) -> None:
    user_id, _h = sign_up(api)
    t = int(time.time())
    post(api, event("checkout.session.completed", completed_subscription(user_id, "sub_4"), created=t))
    ending = subscription("sub_4", "active", user_id, cancel_at_period_end=True)
    post(api, event("customer.subscription.updated", ending, created=t + 1))
    assert tier(services, user_id) is Tier.PREMIUM  # paid until the period ends
    post(
        api, event("customer.subscription.deleted", subscription("sub_4", "canceled", user_id), created=t + 2)
    )
    assert tier(services, user_id) is Tier.FREE
    # canceled is final: a late "active" for the same subscription changes nothing
    post(api, event("customer.subscription.updated", subscription("sub_4", "active", user_id), created=t + 3))
    assert tier(services, user_id) is Tier.FREE
    reconciled(services)


def test_unknown_event_types_are_acknowledged_and_grant_nothing(api: TestClient, services: Services) -> None:
    user_id, _ = sign_up(api)
    r = post(
        api,
        event(
            "customer.created", {"id": "cus_1", "object": "customer", "metadata": {"user_id": str(user_id)}}
        ),
    )
    assert r.status_code == 200 and r.json() == {"received": True, "applied": True}
    assert tier(services, user_id) is Tier.FREE and ledger(services) == []


def test_the_ledger_reconciles_after_a_random_storm_of_deliveries(
    api: TestClient, services: Services
) -> None:
    """Three users, their subscription and upgrade events shuffled, many delivered twice: the
    ledger and the entitlements agree, and a tampered tier is caught."""
    rng = random.Random(11)
    s = live_signal(services)
    bodies: list[bytes] = []
    users = [sign_up(api, f"u{i}@example.com")[0] for i in range(3)]
    t = int(time.time())
    for i, uid in enumerate(users):
        sub = f"sub_s{i}"
        bodies += [
            event("checkout.session.completed", completed_subscription(uid, sub), created=t),
            event("invoice.payment_failed", invoice(sub), created=t + 10 + i),
            event("invoice.paid", invoice(sub), created=t + 20 + i),
            event("checkout.session.completed", completed_upgrade(uid, s.id, f"pi_s{i}"), created=t),
        ]
        if i == 1:
            bodies.append(
                event("customer.subscription.deleted", subscription(sub, "canceled", uid), created=t + 30)
            )
            bodies.append(
                event(
                    "charge.refunded",
                    {"id": "ch", "payment_intent": f"pi_s{i}", "amount_refunded": 499},
                    created=t + 30,
                )
            )
    deliveries = bodies + rng.sample(bodies, len(bodies) // 2)
    rng.shuffle(deliveries)
    for body in deliveries:
        assert post(api, body).status_code == 200
    reconciled(services)
    assert tier(services, users[1]) is Tier.FREE and services.accounts.upgrades(users[1]) == []
    assert len(services.accounts.upgrades(users[0])) == 1
    services.accounts.users.set_tier(users[1], Tier.PREMIUM)  # granted outside billing
    assert services.accounts.store.reconcile() == [
        f"user {users[1]} is premium but the ledger nets 0 premium grants"
    ]


def test_the_local_provider_completes_at_once_and_says_test_mode(tmp_path: Path) -> None:
    """The embedded demo's provider (the default): paid within the call, test mode in every answer and log."""
    from structlog.testing import capture_logs

    services = asyncio.run(build_services(load_settings(home=tmp_path, mode="embedded")))
    with TestClient(create_app(services)) as client:
        local_provider_flow(client, services, capture_logs)


def local_provider_flow(client: TestClient, services: Services, capture_logs: Any) -> None:
    user_id, h = sign_up(client)
    with capture_logs() as logs:
        r = client.post("/api/billing/checkout", json={"plan": "premium"}, headers=h)
    assert r.status_code == 200 and r.json()["status"] == "paid" and r.json()["test_mode"] is True
    assert any(e["event"] == "billing.local_test_mode_payment" for e in logs)
    assert any(e["event"] == "billing.event" and e["test_mode"] is True for e in logs)
    assert client.get("/api/me", headers=h).json()["tier"] == "premium"
    portal = client.get("/api/billing/portal", headers=h).json()
    assert portal["test_mode"] is True
    assert (
        client.post(
            "/api/billing/webhook", content=b"{}", headers={"Stripe-Signature": "t=1,v1=0"}
        ).status_code
        == 400
    )
    assert [(k, w) for k, w, _ in ledger(services, user_id)] == [("charge", "premium"), ("grant", "premium")]
    reconciled(services)


def test_an_event_for_an_account_that_is_gone_is_recorded_and_grants_nothing(
    api: TestClient, services: Services
) -> None:
    user_id, h = sign_up(api)
    assert api.delete("/api/me", headers=h).status_code == 204
    s = live_signal(services)
    for body in (
        event("checkout.session.completed", completed_subscription(user_id, "sub_gone")),
        event("checkout.session.completed", completed_upgrade(user_id, s.id, "pi_gone")),
        event("checkout.session.completed", completed_upgrade(987654, s.id, "pi_never")),
    ):
        r = post(api, body)
        assert r.status_code == 200 and r.json()["applied"] is True  # acknowledged: no retry storm
    assert [(p.user_id, p.kind) for p in services.accounts.store.payments()] == [
        (None, "charge"), (None, "charge"), (None, "charge"),
    ]  # fmt: skip
    reconciled(services)


def test_premium_may_buy_a_signals_live_stream_once(tmp_path: Path) -> None:
    """Premium sees an open signal but not its live channel (domain.entitlements): the upgrade is for
    sale to it; bought once, a second checkout is refused with the reason."""
    services = asyncio.run(build_services(load_settings(home=tmp_path, mode="embedded")))
    with TestClient(create_app(services)) as client:
        _user_id, h = sign_up(client)
        s = live_signal(services)
        assert (
            client.post("/api/billing/checkout", json={"plan": "premium"}, headers=h).json()["status"]
            == "paid"
        )
        r = client.post("/api/billing/checkout", json={"signal_id": s.id}, headers=h)
        assert r.status_code == 200 and r.json()["status"] == "paid", r.text
        assert [u["signal_id"] for u in client.get("/api/me", headers=h).json()["upgrades"]] == [s.id]
        again = client.post("/api/billing/checkout", json={"signal_id": s.id}, headers=h)
        assert again.status_code == 422
        assert again.json()["detail"] == "you hold live updates for this signal already"


def test_webhook_outcomes_are_counted_for_prometheus(api: TestClient) -> None:
    from prometheus_client import REGISTRY

    def count(outcome: str) -> float:
        return REGISTRY.get_sample_value("ts_webhook_events_total", {"outcome": outcome}) or 0.0

    before = {o: count(o) for o in ("applied", "duplicate", "rejected")}
    timed = REGISTRY.get_sample_value("ts_webhook_seconds_count") or 0.0
    user_id, _ = sign_up(api)
    body = event("checkout.session.completed", completed_subscription(user_id), event_id="evt_counted")
    assert post(api, body).json()["applied"] is True
    assert post(api, body).json()["applied"] is False
    assert post(api, body, "hello").status_code == 400
    assert {o: count(o) - before[o] for o in before} == {"applied": 1, "duplicate": 1, "rejected": 1}
    assert (REGISTRY.get_sample_value("ts_webhook_seconds_count") or 0.0) - timed == 1  # receipt → grant
