"""The leak matrix: every route in the app's OpenAPI document and every WebSocket channel pattern ×
every kind of caller, each cell with its expected answer — and no response anywhere carries a live
signal to someone who has not paid for it.

The callers are made through the real flows (register, log in, local-provider checkout): anonymous,
free, premium, free with an upgrade to one signal, premium with an upgrade, another free user, and
an admin. Two live signals are seeded with numbers found nowhere else (their "markers"); every
response body of every probe is searched for them. A route or a channel pattern added to the app
without an entry here fails ``test_every_route_and_channel_has_an_entry``.
"""

from __future__ import annotations

import base64
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient

from tradesignals.domain.entitlements import CHANNEL_PATTERNS, live_channel
from tradesignals.domain.market import Timeframe, to_ns
from tradesignals.domain.news import NewsItem, ScoredNews
from tradesignals.domain.risk import QUESTIONNAIRE
from tradesignals.domain.sessions import DAY_NS
from tradesignals.domain.signals import (
    Direction,
    Signal,
    SignalEvent,
    SignalEventKind,
    SignalStatus,
    SignalType,
)
from tradesignals.wiring import Services

PASSWORD = "correct horse battery staple"

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)

CALLERS = ("anonymous", "free", "premium", "upgrade", "premium_upgrade", "other", "admin")
SIGNED_IN = CALLERS[1:]


def make_signal(i: int, entry: float, *, rank: float = 0.95) -> Signal:
    """A swing signal on CALM (low volatility: every profile accepts it, see the profiles test)."""
    created = T0 + timedelta(minutes=i)
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
        model_version="matrix-test",
        decided_at=created,
        base_rate=0.25,
        confidence_rank=rank,
    )


OPEN = make_signal(1, 101.2345)  # the one the upgrade holders bought
OPEN2 = make_signal(2, 102.3456)  # live, bought by nobody
CLOSED = make_signal(3, 103.4567)


def markers(s: Signal) -> tuple[str, ...]:
    """Strings that appear in a response only if that response carries ``s``."""
    return (s.id, repr(s.entry), repr(s.stop))


SEES = {
    OPEN.id: {"premium", "upgrade", "premium_upgrade"},
    OPEN2.id: {"premium", "premium_upgrade"},
}
"""Who may receive each live signal's details, anywhere (the rule of ``domain.entitlements``)."""

LIVE_NEWS = "Calm Corp live catalyst 7f3a9c"  # received a minute ago: inside the public delay
OLD_NEWS = "Calm Corp old story 2b8e41"  # received three hours ago: public history
LIVE_NEWS_SEES = {"premium", "premium_upgrade"}
"""Who gets the live news item in the unfiltered list (an upgrade covers its signal's symbol only)."""
LIVE_NEWS_SEES_CALM = {"premium", "premium_upgrade", "upgrade"}
"""With ``symbol=CALM``: the holders of an upgrade to a CALM signal see its live news too."""

LIVE_STREAM = {OPEN.id: {"upgrade", "premium_upgrade"}, OPEN2.id: set[str]()}
"""Who may subscribe to each live signal's ``signal:{id}:live``: the holders of an upgrade to it."""


@dataclass
class World:
    services: Services
    api: TestClient
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    user_ids: dict[str, int] = field(default_factory=dict)

    def token(self, caller: str) -> str | None:
        h = self.headers.get(caller)
        return h["Authorization"].removeprefix("Bearer ") if h else None


def seed_bars(services: Services) -> None:
    first = to_ns(T0) - 45 * DAY_NS
    rows = []
    for i in range(45):
        close = 100.0 * math.exp(0.01 * (i % 2))
        rows.append((first + i * DAY_NS, "CALM", close, close, close, close, 1000.0))
    frame = pd.DataFrame(rows, columns=["ts", "symbol", "open", "high", "low", "close", "volume"])
    frame["ts"] = frame["ts"].astype(np.int64)
    services.bars.upsert(Timeframe.D1, frame)


def sign_up(api: TestClient, email: str) -> dict[str, str]:
    assert api.post("/api/auth/register", json={"email": email, "password": PASSWORD}).status_code == 201
    r = api.post("/api/auth/token", data={"username": email, "password": PASSWORD})
    assert r.status_code == 200
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def buy(api: TestClient, headers: dict[str, str], body: dict[str, Any]) -> None:
    r = api.post("/api/billing/checkout", json=body, headers=headers)
    assert r.status_code == 200 and r.json()["status"] == "paid" and r.json()["test_mode"] is True, r.text


@pytest.fixture
def world(services: Services, client: TestClient, user_factory: Callable[..., dict[str, str]]) -> World:
    seed_bars(services)
    for s in (OPEN, OPEN2, CLOSED):
        services.signals.add(s)
    now = datetime.now(UTC)
    assert services.news is not None
    for n, (headline, age) in enumerate(((OLD_NEWS, timedelta(hours=3)), (LIVE_NEWS, timedelta(minutes=1)))):
        at = to_ns(now - age)
        scored = ScoredNews(
            NewsItem(f"t:{n}", "t", at, at, ("CALM",), headline), "positive", 0.9, ("earnings",), at
        )
        services.news.add([scored])
        services.news_features.add(scored)
    services.signals.set_status(
        CLOSED.id,
        SignalStatus.EXPIRED,
        SignalEvent(CLOSED.id, SignalEventKind.CLOSED, T0 + timedelta(minutes=30), {"outcome": "expired"}),
    )
    w = World(services, client)
    for caller in ("free", "premium", "upgrade", "premium_upgrade", "other"):
        w.headers[caller] = sign_up(client, f"{caller}@example.com")
    buy(client, w.headers["premium"], {"plan": "premium"})
    buy(client, w.headers["upgrade"], {"signal_id": OPEN.id})
    buy(client, w.headers["premium_upgrade"], {"signal_id": OPEN.id})
    buy(client, w.headers["premium_upgrade"], {"plan": "premium"})
    w.headers["admin"] = user_factory("admin@example.com", role="admin")
    for caller, h in w.headers.items():
        w.user_ids[caller] = client.get("/api/me", headers=h).json()["id"]
    return w


# --- the expected answer of every route, per caller -----------------------------------------------


@dataclass(frozen=True)
class Probe:
    """One request (``url`` may use {open}, {open2}, {closed}) and the status each caller must get."""

    url: str
    status: dict[str, int]
    kwargs: Callable[[World, str], dict[str, Any]] = lambda w, c: {}
    check: Callable[[World, str, Any], None] | None = None


def each(code: int) -> dict[str, int]:
    return dict.fromkeys(CALLERS, code)


def signed(code: int, anonymous: int = 401) -> dict[str, int]:
    return {"anonymous": anonymous} | dict.fromkeys(SIGNED_IN, code)


def live_for(*callers: str) -> dict[str, int]:
    return {c: 200 if c in callers else 403 for c in CALLERS}


def list_check(w: World, caller: str, body: Any) -> None:
    """The list holds open signals for premium callers only (fitted to their profile, sized)."""
    open_ids = {s["id"] for s in body["items"] if s["status"] == "open"}
    if caller in ("premium", "premium_upgrade"):
        assert open_ids == {OPEN.id, OPEN2.id}
        assert all(
            s["size"] is not None and s["size"]["profile"] == "moderate"
            for s in body["items"]
            if s["status"] == "open"
        )
    else:
        assert open_ids == set()
    assert CLOSED.id in {s["id"] for s in body["items"]}  # the track record is everyone's


def news_check(sees: set[str]) -> Callable[[World, str, Any], None]:
    """Live news (inside ``TS_NEWS_PUBLIC_DELAY_MIN``) only for ``sees``; everyone gets the history,
    and a caller held back is told so (``delayed``), never silently."""

    def check(w: World, caller: str, body: Any) -> None:
        headlines = [i["headline"] for i in body["items"]]
        assert OLD_NEWS in headlines
        assert (LIVE_NEWS in headlines) == (caller in sees), f"{caller}: {headlines}"
        if caller in sees:
            assert body["delayed"] is None
        else:
            assert body["delayed"]["minutes"] == 60 and "premium" in body["delayed"]["reason"]

    return check


def features_check(w: World, caller: str, body: Any) -> None:
    """The live feature state counts the live item for those who may see CALM's live news; others
    get the state as of the delay."""
    count = body["features"]["news_count_1d"]
    if caller in LIVE_NEWS_SEES_CALM:
        assert count == 2.0 and body["delayed"] is None
    else:
        assert count == 1.0 and body["delayed"]["minutes"] == 60, (caller, body)


def me_check(w: World, caller: str, body: Any) -> None:
    if caller == "anonymous":
        return
    assert body["id"] == w.user_ids[caller]
    tier = "premium" if caller in ("premium", "premium_upgrade") else "free"
    assert body["tier"] == tier and body["role"] == ("admin" if caller == "admin" else "user")
    upgraded = caller in ("upgrade", "premium_upgrade")
    assert [u["signal_id"] for u in body["upgrades"]] == ([OPEN.id] if upgraded else [])


def answers(w: World, caller: str) -> dict[str, Any]:
    return {"json": {"answers": {q.id: q.options[1].id for q in QUESTIONNAIRE}}}


def push_subscription(caller: str) -> dict[str, Any]:
    """A browser's PushSubscription.toJSON(): a public https endpoint and a real P-256 key."""
    point = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()  # noqa: E731
    return {
        "endpoint": f"https://push.example.com/{caller}",
        "keys": {"p256dh": b64(point), "auth": b64(bytes(16))},
    }


ROUTES: dict[tuple[str, str], list[Probe]] = {
    ("GET", "/api/health"): [Probe("/api/health", each(200))],
    ("GET", "/api/signals"): [Probe("/api/signals", each(200), check=list_check)],
    ("GET", "/api/signals/{signal_id}"): [
        Probe("/api/signals/{closed}", each(200)),
        Probe("/api/signals/{open}", live_for("premium", "upgrade", "premium_upgrade")),
        Probe("/api/signals/{open2}", live_for("premium", "premium_upgrade")),
        Probe("/api/signals/0123456789abcdef012345", each(404)),
    ],
    ("GET", "/api/market/{symbol}/bars"): [
        Probe("/api/market/CALM/bars", each(200), lambda w, c: {"params": {"timeframe": "1d"}})
    ],
    ("GET", "/metrics"): [Probe("/metrics", signed(403) | {"admin": 200})],
    ("GET", "/api/risk/questionnaire"): [Probe("/api/risk/questionnaire", each(200))],
    ("POST", "/api/risk/assess"): [Probe("/api/risk/assess", each(200), answers)],
    ("GET", "/api/ledger"): [Probe("/api/ledger", each(200))],
    ("GET", "/api/ledger/checkpoints"): [Probe("/api/ledger/checkpoints", each(200))],
    ("GET", "/api/ledger/checkpoints/latest"): [Probe("/api/ledger/checkpoints/latest", each(404))],
    ("GET", "/api/ledger/public-key"): [Probe("/api/ledger/public-key", each(200))],
    # the explanation names the plan's levels: gated exactly like the signal
    ("GET", "/api/signals/{signal_id}/explanation"): [
        Probe("/api/signals/{closed}/explanation", each(200)),
        Probe("/api/signals/{open}/explanation", live_for("premium", "upgrade", "premium_upgrade")),
        Probe("/api/signals/{open2}/explanation", live_for("premium", "premium_upgrade")),
        Probe("/api/signals/0123456789abcdef012345/explanation", each(404)),
    ],
    # the static chart draws the plan's levels: gated exactly like the signal (never a leak by image)
    ("GET", "/api/signals/{signal_id}/image.png"): [
        Probe("/api/signals/{closed}/image.png", each(200)),
        Probe("/api/signals/{open}/image.png", live_for("premium", "upgrade", "premium_upgrade")),
        Probe("/api/signals/{open2}/image.png", live_for("premium", "premium_upgrade")),
        Probe("/api/signals/0123456789abcdef012345/image.png", each(404)),
    ],
    # Web Push: the public half of the VAPID key is public; notifications carry live signals, so
    # only those who may receive one (premium, an upgrade in force) may subscribe
    ("GET", "/api/push/vapid-public-key"): [Probe("/api/push/vapid-public-key", each(200))],
    ("GET", "/api/me/push-subscriptions"): [Probe("/api/me/push-subscriptions", signed(200))],
    ("POST", "/api/me/push-subscriptions"): [
        Probe(
            "/api/me/push-subscriptions",
            signed(403) | dict.fromkeys(("premium", "upgrade", "premium_upgrade"), 201),
            lambda w, c: {"json": push_subscription(c)},
        )
    ],
    ("DELETE", "/api/me/push-subscriptions"): [
        Probe(
            "/api/me/push-subscriptions",
            signed(404),
            lambda w, c: {"params": {"endpoint": "https://push.example.com/never-subscribed"}},
        )
    ],
    # news history is public; news received within TS_NEWS_PUBLIC_DELAY_MIN is live: premium, or an
    # upgrade to a signal on the symbol asked about (everyone else is told it is delayed)
    ("GET", "/api/news"): [
        Probe("/api/news", each(200), check=news_check(LIVE_NEWS_SEES)),
        Probe(
            "/api/news",
            each(200),
            lambda w, c: {"params": {"symbol": "CALM"}},
            check=news_check(LIVE_NEWS_SEES_CALM),
        ),
    ],
    ("GET", "/api/news/features"): [
        Probe(
            "/api/news/features",
            each(200),
            lambda w, c: {"params": {"symbol": "CALM"}},
            check=features_check,
        )
    ],
    # backtests are public track-record material, read-only
    ("GET", "/api/backtests"): [Probe("/api/backtests", each(200))],
    ("GET", "/api/backtests/{backtest_id}"): [Probe("/api/backtests/nope", each(404))],
    ("GET", "/api/backtests/{backtest_id}/report"): [Probe("/api/backtests/nope/report", each(404))],
    ("GET", "/api/backtests/{backtest_id}/equity"): [Probe("/api/backtests/nope/equity", each(404))],
    ("GET", "/api/backtests/{backtest_id}/trades.csv"): [Probe("/api/backtests/nope/trades.csv", each(404))],
    ("GET", "/api/history"): [Probe("/api/history", each(200))],
    ("GET", "/api/history/summary"): [Probe("/api/history/summary", each(200))],
    ("POST", "/api/auth/register"): [
        Probe(
            "/api/auth/register",
            each(201),
            lambda w, c: {"json": {"email": f"new-{c}@example.com", "password": PASSWORD}},
        )
    ],
    ("POST", "/api/auth/token"): [
        Probe(
            "/api/auth/token",
            each(401),
            lambda w, c: {"data": {"username": "free@example.com", "password": "wrong-wrong-wrong"}},
        )
    ],
    ("POST", "/api/auth/refresh"): [
        Probe("/api/auth/refresh", each(401), lambda w, c: {"json": {"refresh_token": "not-a-token"}})
    ],
    ("POST", "/api/auth/logout"): [
        Probe("/api/auth/logout", each(401), lambda w, c: {"json": {"refresh_token": "not-a-token"}})
    ],
    # OAuth is not configured in this world: 404 for everyone (test_api_oauth covers the flow)
    ("GET", "/api/auth/oauth/{provider}/login"): [Probe("/api/auth/oauth/github/login", each(404))],
    ("GET", "/api/auth/oauth/{provider}/callback"): [
        Probe(
            "/api/auth/oauth/google/callback", each(404), lambda w, c: {"params": {"code": "c", "state": "s"}}
        )
    ],
    ("GET", "/api/me"): [Probe("/api/me", signed(200), check=me_check)],
    ("PUT", "/api/me/risk-profile"): [Probe("/api/me/risk-profile", signed(200), answers)],
    ("GET", "/api/me/watchlist"): [Probe("/api/me/watchlist", signed(200))],
    ("PUT", "/api/me/watchlist"): [
        Probe("/api/me/watchlist", signed(200), lambda w, c: {"json": {"symbols": ["CALM"]}})
    ],
    ("PUT", "/api/me/capital"): [
        Probe("/api/me/capital", signed(200), lambda w, c: {"json": {"capital": 20_000}})
    ],
    ("POST", "/api/billing/checkout"): [
        # a closed signal is public already: nothing to buy (and the matrix must not change anyone)
        Probe("/api/billing/checkout", signed(422), lambda w, c: {"json": {"signal_id": CLOSED.id}}),
        Probe(
            "/api/billing/checkout",
            signed(404),
            lambda w, c: {"json": {"signal_id": "0123456789abcdef012345"}},
        ),
        Probe("/api/billing/checkout", signed(422), lambda w, c: {"json": {"plan": "gold"}}),
    ],
    ("GET", "/api/billing/portal"): [Probe("/api/billing/portal", signed(200))],
    ("POST", "/api/billing/webhook"): [
        Probe(
            "/api/billing/webhook",
            each(400),
            lambda w, c: {"content": b"{}", "headers": {"Stripe-Signature": "t=1,v1=00"}},
        )
    ],
    # last: it deletes the caller
    ("DELETE", "/api/me"): [Probe("/api/me", signed(204))],
}

# --- the WebSocket channels, per caller -----------------------------------------------------------

OK, FORBIDDEN = "subscribed", "forbidden"


def ws_probes(w: World) -> dict[str, list[tuple[str, dict[str, str]]]]:
    """Per channel pattern: (channel, expected answer per caller)."""
    mine = {c: OK if c != "anonymous" else FORBIDDEN for c in CALLERS}
    return {
        "public": [
            (ch, dict.fromkeys(CALLERS, OK))
            for ch in ("system:alerts", "market:status", "market:CALM:updates")
        ],
        # closed outcomes only: the public track record as it is written
        "signals": [("signals", dict.fromkeys(CALLERS, OK))],
        "user": [
            # live signals fitted to the user: their own, and premium only
            (
                "user:{self}:signals",
                {c: OK if c in ("premium", "premium_upgrade") else FORBIDDEN for c in CALLERS},
            ),
            ("user:{self}:notifications", mine),
            # the free user's own channel: nobody else's, not even an admin's
            (f"user:{w.user_ids['free']}:watchlist", {c: OK if c == "free" else FORBIDDEN for c in CALLERS}),
        ],
        "signal_live": [
            (live_channel(OPEN.id), {c: OK if c in LIVE_STREAM[OPEN.id] else FORBIDDEN for c in CALLERS}),
            (live_channel(OPEN2.id), {c: OK if c in LIVE_STREAM[OPEN2.id] else FORBIDDEN for c in CALLERS}),
        ],
    }


# --- the tests ------------------------------------------------------------------------------------


def test_every_route_and_channel_has_an_entry(client: TestClient, world: World) -> None:
    schema = client.app.openapi()  # type: ignore[attr-defined]
    served = {(m.upper(), p) for p, ops in schema["paths"].items() for m in ops}
    assert served == set(ROUTES), (
        f"routes without a matrix entry: {served - set(ROUTES)}; stale: {set(ROUTES) - served}"
    )
    assert set(CHANNEL_PATTERNS) == set(ws_probes(world)), "a channel pattern without a matrix entry"
    for (_, _), probes in ROUTES.items():
        assert all(set(p.status) == set(CALLERS) for p in probes)


def _assert_no_leak(caller: str, what: str, text: str) -> None:
    for signal in (OPEN, OPEN2):
        if caller in SEES[signal.id]:
            continue
        for marker in markers(signal):
            assert marker not in text, f"{what} leaks live signal {signal.id} ({marker}) to {caller}"


def test_every_route_answers_every_caller_as_expected_and_leaks_nothing(world: World) -> None:
    api = world.api
    cells = 0
    ids = {"open": OPEN.id, "open2": OPEN2.id, "closed": CLOSED.id}
    for caller in CALLERS:
        for (method, _path), probes in ROUTES.items():
            for probe in probes:
                kwargs = probe.kwargs(world, caller)
                headers = dict(kwargs.pop("headers", {})) | world.headers.get(caller, {})
                url = probe.url.format(**ids)
                r = api.request(method, url, headers=headers, **kwargs)
                what = f"{method} {url} as {caller}"
                assert r.status_code == probe.status[caller], f"{what}: {r.status_code} {r.text[:200]}"
                assert r.status_code < 500
                _assert_no_leak(caller, what, r.text)
                if probe.check is not None and r.status_code < 300:
                    probe.check(world, caller, r.json())
                cells += 1
    assert cells == len(CALLERS) * sum(len(p) for p in ROUTES.values())


def _ws_url(world: World, caller: str, by_query: bool) -> str:
    token = world.token(caller)
    return f"/ws?token={token}" if token and by_query else "/ws"


def test_every_channel_answers_every_caller_as_expected(world: World) -> None:
    api = world.api
    probes = ws_probes(world)
    for n, caller in enumerate(CALLERS):
        by_query = n % 2 == 0  # half authenticate with ?token=, half with a first auth message
        with api.websocket_connect(_ws_url(world, caller, by_query)) as ws:
            token = world.token(caller)
            if token and not by_query:
                ws.send_json({"op": "auth", "token": token})
                assert ws.receive_json() == {"type": "authenticated", "user_id": world.user_ids[caller]}
            for cases in probes.values():
                for pattern, expected in cases:
                    channel = pattern.replace("{self}", str(world.user_ids.get(caller, 0)))
                    ws.send_json({"op": "subscribe", "channels": [channel], "since": 0})
                    reply = ws.receive_json()
                    while isinstance(reply.get("seq"), int):  # a replayed message (market:status)
                        reply = ws.receive_json()
                    want = expected[caller]
                    if want == OK:
                        assert reply["type"] == "subscribed", (caller, channel, reply)
                    else:
                        assert (reply["type"], reply["code"]) == ("error", "forbidden"), (
                            caller,
                            channel,
                            reply,
                        )
                        assert reply["message"]


def test_a_live_signal_reaches_its_buyers_and_no_one_else(world: World) -> None:
    """Published to ``signals`` and to its own live channel: each caller subscribes to all it may."""
    hub = world.services.hub
    sockets = {}
    api = world.api
    got: dict[str, list[Any]] = {}
    with (
        api.websocket_connect(_ws_url(world, "upgrade", True)) as up,
        api.websocket_connect(_ws_url(world, "premium", True)) as prem,
        api.websocket_connect(_ws_url(world, "free", True)) as free,
    ):
        sockets = {"upgrade": up, "premium": prem, "free": free}
        for caller, ws in sockets.items():
            ws.send_json({"op": "subscribe", "channels": ["system:alerts"]})
            assert ws.receive_json()["type"] == "subscribed"
            for channel in ("signals", live_channel(OPEN.id)):
                ws.send_json({"op": "subscribe", "channels": [channel]})
                got.setdefault(caller, []).append((channel, ws.receive_json()["type"]))
        deadline = time.monotonic() + 5
        while hub.subscriber_count(live_channel(OPEN.id)) < 1:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        payload = {"id": OPEN.id, "entry": OPEN.entry}
        api.portal.call(hub.publish, "signals", "outcome", {"id": CLOSED.id})  # type: ignore[union-attr]
        api.portal.call(hub.publish, live_channel(OPEN.id), "live", payload)  # type: ignore[union-attr]
        api.portal.call(hub.publish, "system:alerts", "alert", {"n": 1})  # type: ignore[union-attr]
        frames = {
            c: [ws.receive_json() for _ in range({"upgrade": 3}.get(c, 2))] for c, ws in sockets.items()
        }
    # the closed outcome is public; the live stream is the upgrade's product (premium included)
    assert got["premium"] == [("signals", "subscribed"), (live_channel(OPEN.id), "error")]
    assert got["upgrade"] == [("signals", "subscribed"), (live_channel(OPEN.id), "subscribed")]
    assert got["free"] == [("signals", "subscribed"), (live_channel(OPEN.id), "error")]
    assert [f["channel"] for f in frames["free"]] == ["signals", "system:alerts"]
    assert [f["channel"] for f in frames["upgrade"]] == ["signals", live_channel(OPEN.id), "system:alerts"]
    assert [f["channel"] for f in frames["premium"]] == ["signals", "system:alerts"]


def test_an_upgrade_lapses_and_a_refund_takes_effect_at_the_next_request(world: World) -> None:
    """What a caller may see is read from storage at each request, not from the token."""
    api, h = world.api, world.headers["upgrade"]
    assert api.get(f"/api/signals/{OPEN.id}", headers=h).status_code == 200
    store = world.services.accounts.store
    later = datetime.now(UTC) + timedelta(hours=world.services.settings.dynamic_duration_hours, seconds=1)
    assert store.upgrades_of(world.user_ids["upgrade"], later) == []  # lapsed after 72 h
    ref = next(p.reference for p in store.payments(world.user_ids["upgrade"]) if p.kind == "charge")
    from tradesignals.accounts.billing import ProviderEvent

    refund = ProviderEvent(
        "local_evt_refund",
        "charge.refunded",
        datetime.now(UTC),
        {"payment_intent": ref, "amount_refunded": 499, "currency": "usd"},
    )
    assert world.services.billing.apply(refund)
    assert api.get(f"/api/signals/{OPEN.id}", headers=h).status_code == 403
    assert api.get("/api/me", headers=h).json()["upgrades"] == []


def test_a_closed_signal_is_public_and_its_live_channel_needs_nothing_more(world: World) -> None:
    """Once OPEN2 closes, its details are the public track record, for anyone."""
    world.services.signals.set_status(
        OPEN2.id,
        SignalStatus.TARGET_HIT,
        SignalEvent(OPEN2.id, SignalEventKind.CLOSED, T0 + timedelta(minutes=50), {"outcome": "target"}),
    )
    r = world.api.get(f"/api/signals/{OPEN2.id}")
    assert r.status_code == 200 and r.json()["entry"] == OPEN2.entry
    ledger = world.api.get("/api/ledger").json()["entries"]
    assert any(e["signal_id"] == OPEN2.id and not e["sealed"] for e in ledger)
    assert all(e["signal_id"] is None for e in ledger if e["sealed"])


def test_unknown_channels_are_refused_without_a_match(client: TestClient) -> None:
    with client.websocket_connect("/ws") as ws:
        for channel in ("signals:all", "user:abc:signals", "signal:XYZ:live", "market:", "user:1:signals:x"):
            ws.send_json({"op": "subscribe", "channels": [channel]})
            reply = ws.receive_json()
            assert reply["type"] == "error" and reply["code"] in ("unknown_channel", "forbidden"), channel
            assert re.fullmatch(r"[a-z_]+", reply["code"])
