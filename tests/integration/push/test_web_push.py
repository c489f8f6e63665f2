"""Web Push end to end: the app (embedded, its push worker running) → pywebpush → a local push
service on 127.0.0.1 that verifies the VAPID signature and decrypts each payload as a browser would.

Covers: the VAPID key made 0600 at first start and kept; subscribing (premium, an upgrade holder) and
refusals (anonymous 401, free 403, bad endpoint or keys 422); a new signal reaching exactly the
premium subscribers whose profile accepts it; an upgraded signal's close reaching its holder; a 410
deleting the subscription and a 500 counted, with the pipeline going on; no private key in any
response or log line.
"""

from __future__ import annotations

import asyncio
import logging
import math
import stat
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from cryptography.hazmat.primitives import serialization
from fastapi.testclient import TestClient
from local_push import LocalPushService, b64url, serve
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from tradesignals.api.app import create_app
from tradesignals.bus import topics
from tradesignals.bus.codec import encode
from tradesignals.config import load_settings
from tradesignals.domain.market import Timeframe, to_ns
from tradesignals.domain.risk import ProfileName
from tradesignals.domain.sessions import DAY_NS
from tradesignals.domain.signals import Direction, Signal, SignalEvent, SignalEventKind, SignalType
from tradesignals.domain.tiers import Tier
from tradesignals.push.vapid import KEY_FILE_NAME
from tradesignals.push.worker import EVENTS_GROUP, SIGNALS_GROUP, signal_payload
from tradesignals.wiring import Services, build_services

PASSWORD = "correct horse battery staple"
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def make_signal(i: int, *, rank: float) -> Signal:
    created = T0 + timedelta(minutes=i)
    entry = 100.0 + i
    return Signal(
        id=f"{int(created.timestamp() * 1000):012x}{i:010x}",
        symbol="CALM",
        type=SignalType.SWING,
        direction=Direction.LONG,
        entry=entry,
        stop=round(entry * 0.8, 4),
        targets=(round(entry * 1.2, 4), round(entry * 1.4, 4)),
        confidence=0.30,
        created_at=created,
        expires_at=created + timedelta(days=5),
        model_version="push-test",
        decided_at=created,
        base_rate=0.25,
        confidence_rank=rank,
    )


@pytest.fixture
def push_service() -> Iterator[LocalPushService]:
    service, stop = serve()
    yield service
    stop()


@pytest.fixture
def services(tmp_path: Path) -> Services:
    settings = load_settings(home=tmp_path, mode="embedded", push_allow_loopback=True)
    s = asyncio.run(build_services(settings))
    first = to_ns(T0) - 45 * DAY_NS  # the last bar opens at T0: the deciding bar of every signal here
    rows = [(first + i * DAY_NS, "CALM", *(100.0 * math.exp(0.01 * (i % 2)),) * 4, 1000.0) for i in range(46)]
    frame = pd.DataFrame(rows, columns=["ts", "symbol", "open", "high", "low", "close", "volume"])
    frame["ts"] = frame["ts"].astype(np.int64)
    s.bars.upsert(Timeframe.D1, frame)
    return s


@pytest.fixture
def client(services: Services, push_service: LocalPushService) -> Iterator[TestClient]:
    assert services.push is not None
    push_service.server_key = services.push.keys.public_key
    with TestClient(create_app(services, roles=frozenset({"api"}))) as c:
        yield c


def user(
    services: Services, email: str, tier: Tier = Tier.FREE, profile: ProfileName | None = None
) -> dict[str, str]:
    u = services.accounts.register(email, PASSWORD)
    if tier is not Tier.FREE:
        services.accounts.users.set_tier(u.id, tier)
    if profile is not None:
        services.accounts.answer_profile(u.id, profile)
    token = services.accounts.tokens.issue(u.id, "user", datetime.now(UTC))
    return {"Authorization": f"Bearer {token}"}


def joined(client: TestClient, services: Services, topic: str, group: str) -> None:
    """Wait until the worker's consumer of ``topic`` has fetched once (it starts at the latest entry)."""
    portal = client.portal
    assert portal is not None
    deadline = time.monotonic() + 30
    while True:
        lag = portal.call(services.bus.lag, topic, group)
        if lag is not None and lag.members >= 1:
            return
        assert time.monotonic() < deadline, f"the push worker never joined {topic}"
        time.sleep(0.02)


def drained(client: TestClient, services: Services, topic: str, group: str) -> None:
    """Wait until the worker acked everything on ``topic`` (it acks after sending the batch)."""
    portal = client.portal
    assert portal is not None
    deadline = time.monotonic() + 30
    while True:
        lag = portal.call(services.bus.lag, topic, group)
        if lag is not None and lag.unread == 0 and lag.pending == 0:
            return
        assert time.monotonic() < deadline, f"the push worker did not finish {topic}"
        time.sleep(0.02)


def publish(client: TestClient, services: Services, topic: str, key: str, payload: bytes) -> None:
    portal = client.portal
    assert portal is not None
    portal.call(services.bus.publish, topic, key, payload)


# --- keys -----------------------------------------------------------------------------------------


def test_the_vapid_key_is_made_once_0600_and_its_public_half_served(
    services: Services, tmp_path: Path
) -> None:
    path = tmp_path / KEY_FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert services.push is not None
    public = services.push.keys.public_key
    with TestClient(create_app(services, roles=frozenset())) as c:
        r = c.get("/api/push/vapid-public-key")
    assert r.status_code == 200 and r.json() == {"public_key": public}
    assert len(public) == 87  # 65 bytes, base64url without padding: the applicationServerKey
    again = asyncio.run(build_services(services.settings))  # a restart keeps the key
    assert again.push is not None and again.push.keys.public_key == public
    assert "private" not in repr(services.push.keys).split("public_key")[0].replace("VapidKeys(", "")


def test_server_mode_without_a_key_has_push_off() -> None:
    from tradesignals.wiring import build_push

    settings = load_settings(mode="server", database_url="sqlite:///unused.db")
    assert build_push(settings, None) is None  # type: ignore[arg-type]


def test_a_server_key_file_that_cannot_be_read_stops_the_start_in_one_line(tmp_path: Path) -> None:
    from tradesignals.config import ConfigError
    from tradesignals.wiring import build_push

    settings = load_settings(mode="server", vapid_key_file=tmp_path / "missing.pem")
    with pytest.raises(ConfigError, match=r"^VAPID key: .*missing\.pem: cannot read") as info:
        build_push(settings, None)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


def test_without_push_on_the_node_its_routes_say_so(services: Services) -> None:
    services.push = None
    h = user(services, "p@example.com", Tier.PREMIUM)
    with TestClient(create_app(services, roles=frozenset())) as c:
        r = c.get("/api/push/vapid-public-key")
        assert r.status_code == 503 and "not configured" in r.json()["detail"]
        body = {"endpoint": "https://push.example.com/x", "keys": {"p256dh": "x", "auth": "y"}}
        assert c.post("/api/me/push-subscriptions", json=body, headers=h).status_code == 503


# --- subscriptions --------------------------------------------------------------------------------


def test_who_may_subscribe_and_what_is_refused(
    client: TestClient, services: Services, push_service: LocalPushService
) -> None:
    browser = push_service.subscribe()
    body = push_service.subscription_json(browser)
    premium = user(services, "premium@example.com", Tier.PREMIUM)
    free = user(services, "free@example.com")
    assert client.post("/api/me/push-subscriptions", json=body).status_code == 401
    r = client.post("/api/me/push-subscriptions", json=body, headers=free)
    assert r.status_code == 403 and "premium" in r.json()["detail"]
    assert client.get("/api/me/push-subscriptions", headers=free).json() == []

    bad: list[tuple[dict[str, Any], str]] = [
        ({**body, "endpoint": "ftp://push.example.com/x"}, "https"),
        ({**body, "endpoint": "http://push.example.com/x"}, "https"),
        ({**body, "endpoint": "https://10.1.2.3/x"}, "private"),
        ({**body, "endpoint": "https://user:pw@push.example.com/x"}, "user info"),
        ({**body, "endpoint": "not a url"}, "https"),
        ({**body, "keys": {"p256dh": body["keys"]["p256dh"], "auth": b64url(b"short")}}, "16 bytes"),
        ({**body, "keys": {"p256dh": b64url(b"\x04" + b"\x01" * 64), "auth": body["keys"]["auth"]}}, "P-256"),
        ({**body, "keys": {"p256dh": "!!!", "auth": body["keys"]["auth"]}}, "base64url"),
    ]
    for payload, why in bad:
        r = client.post("/api/me/push-subscriptions", json=payload, headers=premium)
        assert r.status_code == 422 and why in r.text, (payload["endpoint"], r.text)
    assert (
        client.post("/api/me/push-subscriptions", json={"endpoint": "x"}, headers=premium).status_code == 422
    )

    r = client.post("/api/me/push-subscriptions", json=body, headers=premium)
    assert r.status_code == 201 and r.json()["endpoint"] == body["endpoint"]
    again = client.post("/api/me/push-subscriptions", json=body, headers=premium)  # idempotent per endpoint
    assert again.status_code == 201 and again.json()["id"] == r.json()["id"]
    assert [s["endpoint"] for s in client.get("/api/me/push-subscriptions", headers=premium).json()] == [
        body["endpoint"]
    ]
    gone = client.delete("/api/me/push-subscriptions", params={"endpoint": body["endpoint"]}, headers=premium)
    assert gone.status_code == 204
    assert (
        client.delete(
            "/api/me/push-subscriptions", params={"endpoint": body["endpoint"]}, headers=premium
        ).status_code
        == 404
    )
    assert client.get("/api/me/push-subscriptions", headers=premium).json() == []


def test_loopback_endpoints_are_refused_unless_allowed(
    tmp_path: Path, push_service: LocalPushService
) -> None:
    s = asyncio.run(build_services(load_settings(home=tmp_path, mode="embedded")))
    h = user(s, "p@example.com", Tier.PREMIUM)
    with TestClient(create_app(s, roles=frozenset())) as c:
        body = push_service.subscription_json(push_service.subscribe())
        r = c.post("/api/me/push-subscriptions", json=body, headers=h)
        assert r.status_code == 422 and "loopback" in r.json()["detail"]


# --- delivery -------------------------------------------------------------------------------------


def test_a_new_signal_reaches_the_premium_subscribers_whose_profile_takes_it(
    client: TestClient, services: Services, push_service: LocalPushService
) -> None:
    moderate = push_service.subscribe()  # premium, questionnaire not answered: moderate
    cautious = push_service.subscribe()  # premium, conservative: refuses a rank below 0.90
    lapsed = push_service.subscribe()  # subscribed while premium, then premium ended
    h_mod = user(services, "mod@example.com", Tier.PREMIUM)
    h_con = user(services, "con@example.com", Tier.PREMIUM, ProfileName.CONSERVATIVE)
    h_lap = user(services, "lapsed@example.com", Tier.PREMIUM)
    for h, b in ((h_mod, moderate), (h_con, cautious), (h_lap, lapsed)):
        assert (
            client.post(
                "/api/me/push-subscriptions", json=push_service.subscription_json(b), headers=h
            ).status_code
            == 201
        )
    lapsed_id = client.get("/api/me", headers=h_lap).json()["id"]
    services.accounts.users.set_tier(lapsed_id, Tier.FREE)

    joined(client, services, topics.SIGNALS, SIGNALS_GROUP)
    signal = make_signal(1, rank=0.80)  # moderate takes it (≥ 0.75), conservative does not (< 0.90)
    services.signals.add(signal)
    publish(client, services, topics.SIGNALS, signal.symbol, encode(signal))
    push_service.wait_for(lambda: len(push_service.delivered) >= 1)
    drained(client, services, topics.SIGNALS, SIGNALS_GROUP)

    assert push_service.errors == []
    [got] = push_service.delivered
    assert got.token == moderate.token
    assert got.payload == signal_payload(signal)
    assert got.payload["type"] == "signal" and got.payload["entry"] == signal.entry
    assert got.claims["aud"] == push_service.origin and got.claims["sub"] == services.settings.vapid_subject
    assert got.headers["Content-Encoding"] == "aes128gcm"

    # a signal every profile takes reaches the conservative subscriber too (and never the lapsed one)
    strong = replace(make_signal(2, rank=0.95))
    services.signals.add(strong)
    publish(client, services, topics.SIGNALS, strong.symbol, encode(strong))
    push_service.wait_for(lambda: len(push_service.delivered) >= 3)
    drained(client, services, topics.SIGNALS, SIGNALS_GROUP)
    assert sorted(d.token for d in push_service.delivered[1:]) == sorted([moderate.token, cautious.token])
    assert all(d.payload["id"] == strong.id for d in push_service.delivered[1:])
    assert lapsed.token not in {d.token for d in push_service.delivered}
    assert services.push is not None and services.push.sender.stats.sent == 3


def test_gone_subscriptions_are_deleted_failures_counted_and_the_pipeline_goes_on(
    client: TestClient, services: Services, push_service: LocalPushService
) -> None:
    ok, gone, failing = (
        push_service.subscribe(),
        push_service.subscribe("gone"),
        push_service.subscribe("fail"),
    )
    hs = [user(services, f"u{i}@example.com", Tier.PREMIUM) for i in range(3)]
    for h, b in zip(hs, (ok, gone, failing), strict=True):
        assert (
            client.post(
                "/api/me/push-subscriptions", json=push_service.subscription_json(b), headers=h
            ).status_code
            == 201
        )
    joined(client, services, topics.SIGNALS, SIGNALS_GROUP)
    before = {
        r: REGISTRY.get_sample_value("ts_push_notifications_total", {"result": r}) or 0.0
        for r in ("sent", "removed", "failed")
    }
    first = make_signal(3, rank=0.95)
    services.signals.add(first)
    publish(client, services, topics.SIGNALS, first.symbol, encode(first))
    push_service.wait_for(lambda: len(push_service.delivered) >= 1 and len(push_service.refused) >= 2)
    drained(client, services, topics.SIGNALS, SIGNALS_GROUP)
    assert services.push is not None
    stats = services.push.sender.stats
    assert (stats.sent, stats.removed, stats.failed) == (1, 1, 1)
    assert client.get("/api/me/push-subscriptions", headers=hs[1]).json() == []  # 410: forgotten
    assert len(client.get("/api/me/push-subscriptions", headers=hs[2]).json()) == 1  # 500: kept

    second = make_signal(4, rank=0.95)  # the worker is still running
    services.signals.add(second)
    publish(client, services, topics.SIGNALS, second.symbol, encode(second))
    push_service.wait_for(lambda: len(push_service.delivered) >= 2)
    drained(client, services, topics.SIGNALS, SIGNALS_GROUP)
    assert [d.payload["id"] for d in push_service.delivered] == [first.id, second.id]
    assert [t for t, _ in push_service.refused].count(gone.token) == 1  # never tried again
    assert (stats.sent, stats.removed, stats.failed) == (2, 1, 2)
    after = {r: REGISTRY.get_sample_value("ts_push_notifications_total", {"result": r}) for r in before}
    assert {r: after[r] - before[r] for r in before} == {
        "sent": 2.0,
        "removed": 1.0,
        "failed": 2.0,
    }  # /metrics
    assert push_service.errors == []


def test_a_redirect_is_not_followed(
    client: TestClient, services: Services, push_service: LocalPushService
) -> None:
    """The endpoint is a URL a user gave: a 3xx is a failure, never a second POST elsewhere."""
    target = push_service.subscribe()  # nobody subscribed it with us: it must receive nothing
    bouncer = push_service.subscribe(f"redirect:{target.token}")
    h = user(services, "p@example.com", Tier.PREMIUM)
    body = push_service.subscription_json(bouncer)
    assert client.post("/api/me/push-subscriptions", json=body, headers=h).status_code == 201
    joined(client, services, topics.SIGNALS, SIGNALS_GROUP)
    s = make_signal(7, rank=0.95)
    services.signals.add(s)
    publish(client, services, topics.SIGNALS, s.symbol, encode(s))
    push_service.wait_for(lambda: len(push_service.refused) >= 1)
    drained(client, services, topics.SIGNALS, SIGNALS_GROUP)
    assert push_service.refused == [(bouncer.token, 307)] and push_service.delivered == []
    assert services.push is not None and services.push.sender.stats.failed == 1
    assert push_service.errors == []  # nothing reached the redirect's target either


def test_an_upgraded_signal_s_close_reaches_its_holder(
    client: TestClient, services: Services, push_service: LocalPushService
) -> None:
    signal = make_signal(5, rank=0.5)
    services.signals.add(signal)
    holder, bystander = push_service.subscribe(), push_service.subscribe()
    h_up = user(services, "upgrade@example.com")
    h_prem = user(services, "prem@example.com", Tier.PREMIUM)
    r = client.post("/api/billing/checkout", json={"signal_id": signal.id}, headers=h_up)
    assert r.status_code == 200 and r.json()["status"] == "paid"
    for h, b in ((h_up, holder), (h_prem, bystander)):  # a free holder of an upgrade may subscribe
        assert (
            client.post(
                "/api/me/push-subscriptions", json=push_service.subscription_json(b), headers=h
            ).status_code
            == 201
        )
    joined(client, services, topics.SIGNAL_EVENTS, EVENTS_GROUP)
    closed_at = datetime.now(UTC)
    event = SignalEvent(
        signal.id, SignalEventKind.CLOSED, closed_at, {"outcome": "target", "exit_price": 140.0, "net_r": 1.9}
    )
    publish(client, services, topics.SIGNAL_EVENTS, signal.symbol, encode(event))
    push_service.wait_for(lambda: len(push_service.delivered) >= 1)
    drained(client, services, topics.SIGNAL_EVENTS, EVENTS_GROUP)
    [got] = push_service.delivered
    assert got.token == holder.token
    assert got.payload == {
        "type": "closed",
        "id": signal.id,
        "symbol": "CALM",
        "outcome": "target",
        "exit_price": 140.0,
        "net_r": 1.9,
        "closed_at": closed_at.isoformat(),
        "url": f"/signals/{signal.id}",
    }


def test_no_private_key_in_any_response_or_log(
    client: TestClient, services: Services, push_service: LocalPushService, caplog: pytest.LogCaptureFixture
) -> None:
    assert services.push is not None
    private = services.push.keys.private
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    scalar = private.private_numbers().private_value
    secrets = [line for line in pem.splitlines() if "PRIVATE KEY" not in line and line]
    secrets += [b64url(scalar.to_bytes(32, "big")), f"{scalar:064x}", str(scalar)]
    texts: list[str] = []
    caplog.set_level(logging.DEBUG)
    with capture_logs() as logs:
        h = user(services, "p@example.com", Tier.PREMIUM)
        b, gone = push_service.subscribe(), push_service.subscribe("gone")
        for url in ("/api/push/vapid-public-key", "/openapi.json", "/api/me", "/api/health"):
            texts.append(client.get(url, headers=h).text)
        for x in (b, gone):
            texts.append(
                client.post(
                    "/api/me/push-subscriptions", json=push_service.subscription_json(x), headers=h
                ).text
            )
        texts.append(client.get("/api/me/push-subscriptions", headers=h).text)
        joined(client, services, topics.SIGNALS, SIGNALS_GROUP)
        s = make_signal(6, rank=0.95)
        services.signals.add(s)
        publish(client, services, topics.SIGNALS, s.symbol, encode(s))
        push_service.wait_for(lambda: len(push_service.delivered) >= 1 and len(push_service.refused) >= 1)
        drained(client, services, topics.SIGNALS, SIGNALS_GROUP)
    logged = [repr(e) for e in logs] + [r.getMessage() for r in caplog.records]
    assert any("push.subscription_gone" in line for line in logged)  # the log did say something
    everything = "\n".join(texts + logged + [repr(services.push.keys), repr(services.settings)])
    for secret in secrets:
        assert secret not in everything
    # and no log line names a whole endpoint (its path is a capability)
    # (the local push service's own access log is left out: it is the push service's log, not ours)
    ours = [repr(e) for e in logs] + [
        r.getMessage() for r in caplog.records if not r.name.startswith("aiohttp.access")
    ]
    assert all(b.token not in line and gone.token not in line for line in ours), [
        line for line in ours if b.token in line or gone.token in line
    ]
