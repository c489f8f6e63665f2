"""``/ws`` end to end, on both stacks (SQLite + in-process bus; PostgreSQL + Redis) and on both
servers that carry the protocol (the API's ASGI route; the dedicated fan-out server on its own
port, reached over a real socket): what the engine puts on the bus reaches the right channels,
resume and its bounds, and bad input from a hostile or unlucky client. Every wait is on a
condition with a deadline."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
import websockets.sync.client
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect
from websockets.exceptions import ConnectionClosed

from tradesignals.api.app import create_app
from tradesignals.bus import topics
from tradesignals.bus.codec import encode
from tradesignals.config import load_settings
from tradesignals.domain.entitlements import live_channel
from tradesignals.domain.live import LiveUpdate
from tradesignals.domain.market import Bar, Timeframe, to_ns
from tradesignals.domain.research import Claim, SignalText
from tradesignals.domain.sessions import DAY_NS
from tradesignals.domain.signals import (
    Direction,
    Signal,
    SignalEvent,
    SignalEventKind,
    SignalType,
    new_signal_id,
)
from tradesignals.domain.tiers import Tier
from tradesignals.wiring import Services, build_services

PASSWORD = "correct horse battery staple"


class RealSocket:
    """A client socket on the fan-out server with the test client's interface: a close from the
    server is ``WebSocketDisconnect`` with its code and reason, as the ASGI test client says it."""

    def __init__(self, conn: websockets.sync.client.ClientConnection) -> None:
        self.conn = conn

    def send_text(self, data: str) -> None:
        self.conn.send(data)

    def send_bytes(self, data: bytes) -> None:
        self.conn.send(data)

    def send_json(self, data: Any) -> None:
        self.conn.send(orjson.dumps(data).decode())

    def receive_text(self) -> str:
        try:
            frame = self.conn.recv(timeout=30)
        except ConnectionClosed as exc:
            code, reason = (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd is not None else (1006, "")
            raise WebSocketDisconnect(code, reason) from exc
        assert isinstance(frame, str), "the server sends text frames only"
        return frame

    def receive_json(self) -> Any:
        return orjson.loads(self.receive_text())


class FanoutClient:
    """The node's test client, but ``websocket_connect`` opens a real socket to its dedicated
    WebSocket server (``ws_port``); everything else (``portal``, HTTP) is the test client's."""

    def __init__(self, inner: TestClient, port: int) -> None:
        self._inner = inner
        self.port = port

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @contextlib.contextmanager
    def websocket_connect(self, path: str, headers: dict[str, str] | None = None) -> Iterator[RealSocket]:
        origin = (headers or {}).get("origin")
        if origin == "http://testserver":  # the test client's own origin: this server's, here
            origin = f"http://127.0.0.1:{self.port}"
        with websockets.sync.client.connect(
            f"ws://127.0.0.1:{self.port}{path}",
            origin=origin,  # type: ignore[arg-type]
            open_timeout=10,
            max_size=None,
        ) as conn:
            yield RealSocket(conn)


@pytest.fixture(params=["asgi", "fanout"])
def transport(request: pytest.FixtureRequest) -> str:
    """Which server carries the sockets: the API's ASGI route or the dedicated fan-out server."""
    return str(request.param)


@pytest.fixture
def make_node(
    stack: dict[str, object], transport: str
) -> Iterator[Callable[..., tuple[Services, TestClient]]]:
    """``make_node(**settings)`` → (services, client) of an API node on this test's stack, started
    and ready (its fan-out reads the channel log and its relays have joined their groups)."""
    opened: list[TestClient] = []

    def make(**overrides: object) -> tuple[Services, TestClient]:
        settings = {**stack, **overrides}
        if transport == "fanout":
            settings.setdefault("ws_port", 0)
        services = asyncio.run(build_services(load_settings(**settings)))  # type: ignore[arg-type]
        forget_loop_bound_connections(services)
        client = TestClient(create_app(services, roles=frozenset({"api"})))
        client.__enter__()
        opened.append(client)
        wait_for(services.hub.is_ready, "the node never became ready")
        if transport == "fanout":
            wait_for(services.ws_listening.is_set, "the fan-out server never listened")
            assert services.ws_port_bound is not None
            return services, FanoutClient(client, services.ws_port_bound)  # type: ignore[return-value]
        return services, client

    yield make
    for client in reversed(opened):
        client.__exit__(None, None, None)


def forget_loop_bound_connections(services: Services) -> None:
    """``build_services`` pinged Redis in ``asyncio.run``'s loop, now closed; the TestClient runs the
    app in another. Drop the pooled connection of the old loop (new ones open in the app's loop)."""
    redis = getattr(services.bus, "_redis", None)
    if redis is not None:
        redis.connection_pool.reset()


@pytest.fixture
def node(make_node: Callable[..., tuple[Services, TestClient]]) -> tuple[Services, TestClient]:
    return make_node()


def wait_for(cond: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def token_of(services: Services, email: str, *, tier: Tier = Tier.FREE) -> tuple[int, str]:
    user = services.accounts.register(email, PASSWORD)
    if tier is not Tier.FREE:
        services.accounts.users.set_tier(user.id, tier)
    return user.id, services.accounts.tokens.issue(user.id, "user", datetime.now(UTC))


def publish(client: TestClient, services: Services, topic: str, key: str, value: Any) -> None:
    client.portal.call(services.bus.publish, topic, key, encode(value))  # type: ignore[union-attr]


def subscribe(ws: Any, *channels: str, since: int | None = None) -> dict[str, Any]:
    msg: dict[str, Any] = {"op": "subscribe", "channels": list(channels)}
    if since is not None:
        msg["since"] = since
    ws.send_json(msg)
    reply: dict[str, Any] = ws.receive_json()
    return reply


def closed_event(signal_id: str) -> SignalEvent:
    return SignalEvent(
        signal_id, SignalEventKind.CLOSED, datetime.now(UTC), {"outcome": "target", "net_r": 1.5}
    )


# --- channels fed from the bus ---------------------------------------------------------------------


def test_a_closed_outcome_reaches_the_public_signals_channel(node: tuple[Services, TestClient]) -> None:
    services, client = node
    sid = new_signal_id()
    with client.websocket_connect("/ws") as ws:
        assert subscribe(ws, "signals")["type"] == "subscribed"  # anonymous: the track record is public
        publish(client, services, topics.SIGNAL_EVENTS, "ETHUSDT", closed_event(sid))
        msg = ws.receive_json()
    assert (msg["channel"], msg["type"], msg["seq"]) == ("signals", "outcome", 1)
    assert msg["data"]["signal_id"] == sid and msg["data"]["symbol"] == "ETHUSDT"
    assert msg["data"]["outcome"] == "target" and msg["data"]["net_r"] == 1.5


def test_bars_reach_the_symbols_market_channel(node: tuple[Services, TestClient]) -> None:
    services, client = node
    bar = Bar("AAPL", Timeframe.M1, 1_700_000_000_000_000_000, 1.0, 2.0, 0.5, 1.5, 100.0)
    with client.websocket_connect("/ws") as ws:
        assert subscribe(ws, "market:AAPL:updates")["type"] == "subscribed"
        publish(client, services, topics.MARKET_BARS, "AAPL", bar)
        msg = ws.receive_json()
    assert msg["channel"] == "market:AAPL:updates" and msg["type"] == "bar"
    assert msg["data"]["last"] == 1.5 and msg["data"]["timeframe"] == "1m"


def open_signal() -> Signal:
    now = datetime.now(UTC)
    return Signal(
        id=new_signal_id(),
        symbol="ETHUSDT",
        type=SignalType.DAY,
        direction=Direction.SHORT,
        entry=3000.0,
        stop=3030.0,
        targets=(2970.0,),
        confidence=0.57,
        created_at=now,
        expires_at=now + timedelta(hours=2),
        model_version="test-1",
    )


def test_live_updates_reach_the_upgrade_holder_and_the_close_ends_the_stream(
    node: tuple[Services, TestClient],
) -> None:
    services, client = node
    signal = open_signal()
    services.signals.add(signal)
    sid = signal.id
    _, token = token_of(services, "u@example.com")
    r = client.post(
        "/api/billing/checkout", json={"signal_id": sid}, headers={"Authorization": f"Bearer {token}"}
    )
    assert r.status_code == 200 and r.json()["status"] == "paid", r.text
    update = LiveUpdate(sid, "ETHUSDT", 1, 3010.0, True, -0.4, -0.3, 0.9, (1.2,), 0.55, "m-1")
    with client.websocket_connect(f"/ws?token={token}") as ws:
        assert subscribe(ws, live_channel(sid))["type"] == "subscribed"
        publish(client, services, topics.SIGNAL_LIVE, "ETHUSDT", update)
        live = ws.receive_json()
        publish(client, services, topics.SIGNAL_EVENTS, "ETHUSDT", closed_event(sid))
        final = ws.receive_json()
    assert (live["channel"], live["type"], live["seq"]) == (live_channel(sid), "live", 1)
    assert live["data"]["probability"] == 0.55 and live["data"]["distance_to_targets_pct"] == [1.2]
    assert (final["type"], final["seq"], final["data"]["outcome"]) == ("closed", 2, "target")


def test_the_sidecars_research_reaches_the_upgrade_holders_live_channel(
    node: tuple[Services, TestClient],
) -> None:
    """``signal.research`` (the explain role's texts) is relayed to ``signal:{id}:live`` with its
    cited news ids; the counts of dropped claims stay out of the message."""
    services, client = node
    signal = open_signal()
    services.signals.add(signal)
    sid = signal.id
    _, token = token_of(services, "r@example.com")
    r = client.post(
        "/api/billing/checkout", json={"signal_id": sid}, headers={"Authorization": f"Bearer {token}"}
    )
    assert r.status_code == 200 and r.json()["status"] == "paid", r.text
    text = SignalText(
        signal_id=sid,
        kind="research",
        text="Guidance raised [n1].",
        citations=("n1",),
        model="gpt-test",
        prompt_version="llm-v1",
        created_at_ns=5,
        claims=(Claim("Guidance raised", ("n1",)),),
        dropped={"uncited": 2},
    )
    with client.websocket_connect(f"/ws?token={token}") as ws:
        assert subscribe(ws, live_channel(sid))["type"] == "subscribed"
        publish(client, services, topics.SIGNAL_RESEARCH, "ETHUSDT", text)
        msg = ws.receive_json()
    assert (msg["channel"], msg["type"], msg["seq"]) == (live_channel(sid), "research", 1)
    assert msg["data"]["claims"] == [{"text": "Guidance raised", "citations": ["n1"]}]
    assert msg["data"]["citations"] == ["n1"] and "dropped" not in msg["data"]


def test_engine_alerts_reach_the_public_alerts_channel(node: tuple[Services, TestClient]) -> None:
    services, client = node
    alert = {"kind": "model_drift", "hit_rate": 0.3, "message": "live hit rate 30% vs 60% expected"}
    with client.websocket_connect("/ws") as ws:
        assert subscribe(ws, "system:alerts")["type"] == "subscribed"
        publish(client, services, topics.SYSTEM_ALERTS, "model", alert)
        msg = ws.receive_json()
    assert msg["channel"] == "system:alerts" and msg["type"] == "alert" and msg["data"] == alert


# --- resume ----------------------------------------------------------------------------------------


def test_since_0_with_more_messages_than_the_queue_replays_them_all_after_the_reply(
    make_node: Callable[..., tuple[Services, TestClient]],
) -> None:
    """The README's own example: today it is closed 1013 once 1,000 outcomes exist."""
    services, client = make_node(ws_client_queue=100, ws_replay_chunk=64)
    n = 1500
    items = [("signals", "outcome", {"n": i}, None) for i in range(n)]
    client.portal.call(services.hub.log.append_many, items)  # type: ignore[union-attr]
    with client.websocket_connect("/ws") as ws:
        reply = subscribe(ws, "signals", since=0)
        got = [ws.receive_json() for _ in range(n)]
        client.portal.call(services.hub.publish, "signals", "outcome", {"n": n})  # type: ignore[union-attr]
        after = ws.receive_json()
    assert reply == {"type": "subscribed", "channels": ["signals"], "seq": {"signals": n}}
    assert [m["seq"] for m in got] == list(range(1, n + 1))
    assert [m["data"]["n"] for m in got[:3]] == [0, 1, 2]
    assert after["seq"] == n + 1  # live after the replay, nothing lost or doubled


def test_a_gap_the_log_no_longer_holds_is_a_resync(
    make_node: Callable[..., tuple[Services, TestClient]],
) -> None:
    services, client = make_node(ws_retention=10)
    client.portal.call(  # type: ignore[union-attr]
        services.hub.log.append_many, [("signals", "outcome", {"n": i}, None) for i in range(200)]
    )
    with client.websocket_connect("/ws") as ws:
        assert subscribe(ws, "signals", since=5)["type"] == "subscribed"
        assert ws.receive_json() == {"type": "resync", "channel": "signals", "from_seq": 200}


def test_since_beyond_the_current_seq_is_refused_with_a_reason(node: tuple[Services, TestClient]) -> None:
    services, client = node
    client.portal.call(services.hub.publish, "signals", "outcome", {})  # type: ignore[union-attr]
    with client.websocket_connect("/ws") as ws:
        reply = subscribe(ws, "signals", since=10**12)
        assert reply["type"] == "error" and reply["code"] == "bad_since"
        assert "beyond" in reply["message"] and "current seq 1" in reply["message"]
        assert services.hub.subscriber_count("signals") == 0
        assert subscribe(ws, "signals", since=1)["type"] == "subscribed"  # the socket stays open


# --- bad input and bounds --------------------------------------------------------------------------


def test_bad_frames_get_error_frames_and_the_socket_stays_open(node: tuple[Services, TestClient]) -> None:
    _, client = node
    with client.websocket_connect("/ws") as ws:
        cases = [
            ("{not json", "bad_json"),
            ('["subscribe"]', "bad_request"),
            ('{"op": "dance"}', "bad_op"),
            ('{"op": "subscribe", "channels": []}', "bad_request"),
            ('{"op": "subscribe", "channels": ["signals"], "since": -1}', "bad_request"),
            ('{"op": "subscribe", "channels": ["nope"]}', "unknown_channel"),
            ('{"op": "subscribe", "channels": ["signals\\n"]}', "unknown_channel"),
            ('{"op": "subscribe", "channels": ["user:7:signals"]}', "forbidden"),
            ('{"op": "subscribe", "channels": ["signal:0123456789abcdef012345:live"]}', "forbidden"),
            # 40,000 characters but 80,000 bytes: over the 64 KiB limit, which counts bytes
            ('{"op": "ping", "pad": "' + "é" * 40_000 + '"}', "frame_too_large"),
        ]
        for raw, code in cases:
            ws.send_text(raw)
            reply = ws.receive_json()
            assert reply["type"] == "error" and reply["code"] == code, (raw[:60], reply)
            assert reply["message"]
        ws.send_bytes(b'{"op": "ping"}')
        reply = ws.receive_json()
        assert (reply["type"], reply["code"]) == ("error", "bad_request") and "binary" in reply["message"]
        ws.send_json({"op": "ping"})
        assert ws.receive_json() == {"type": "pong"}


def test_a_socket_holds_at_most_the_channel_limit(node: tuple[Services, TestClient]) -> None:
    services, client = node
    with client.websocket_connect("/ws") as ws:
        first = [f"market:S{i}:updates" for i in range(100)]
        assert subscribe(ws, *first)["type"] == "subscribed"
        reply = subscribe(ws, "market:S100:updates")
        assert reply["code"] == "too_many_channels" and "100" in reply["message"]
        assert subscribe(ws, "market:S0:updates")["type"] == "subscribed"  # one it holds already
        ws.send_json({"op": "unsubscribe", "channels": ["market:S0:updates"]})
        assert ws.receive_json()["type"] == "unsubscribed"
        assert subscribe(ws, "market:S100:updates")["type"] == "subscribed"
        assert services.hub.channel_count == 100


def test_nothing_is_held_after_a_socket_goes(node: tuple[Services, TestClient]) -> None:
    services, client = node
    with client.websocket_connect("/ws") as ws:
        assert subscribe(ws, *[f"market:X{i}:updates" for i in range(100)])["type"] == "subscribed"
        assert services.hub.channel_count == 100 and len(services.hub.clients) == 1
    wait_for(lambda: services.hub.channel_count == 0 and not services.hub.clients, "channels were kept")


def test_origins_other_than_our_own_and_the_allow_list_are_refused(
    make_node: Callable[..., tuple[Services, TestClient]],
) -> None:
    _, client = make_node(ws_allowed_origins="https://app.example.com")
    with (
        client.websocket_connect("/ws", headers={"origin": "https://evil.example"}) as ws,
        pytest.raises(WebSocketDisconnect) as info,
    ):
        ws.receive_json()
    assert info.value.code == 1008 and "origin" in info.value.reason
    for origin in ("http://testserver", "https://app.example.com"):  # same-origin, and the list
        with client.websocket_connect("/ws", headers={"origin": origin}) as ws:
            ws.send_json({"op": "ping"})
            assert ws.receive_json() == {"type": "pong"}


def test_connections_are_bounded_per_account_and_per_node(
    make_node: Callable[..., tuple[Services, TestClient]],
) -> None:
    services, client = make_node(ws_max_connections_per_user=2, ws_max_connections=3)
    _, token = token_of(services, "many@example.com")
    with (
        client.websocket_connect(f"/ws?token={token}") as a,
        client.websocket_connect(f"/ws?token={token}") as b,
    ):
        for ws in (a, b):
            ws.send_json({"op": "ping"})
            assert ws.receive_json() == {"type": "pong"}
        with client.websocket_connect(f"/ws?token={token}") as third:
            assert third.receive_json()["code"] == "too_many_connections"
            with pytest.raises(WebSocketDisconnect) as info:
                third.receive_json()
        assert info.value.code == 1008 and "too many connections" in info.value.reason
        with client.websocket_connect("/ws") as c:
            c.send_json({"op": "ping"})
            assert c.receive_json() == {"type": "pong"}
            with client.websocket_connect("/ws") as d, pytest.raises(WebSocketDisconnect) as full:
                d.receive_json()
        assert full.value.code == 1013 and "capacity" in full.value.reason
    wait_for(lambda: not services.hub.per_user and not services.hub.clients, "connections not released")


def test_an_idle_socket_is_closed_with_a_reason(
    make_node: Callable[..., tuple[Services, TestClient]],
) -> None:
    _, client = make_node(ws_idle_timeout_s=0.3)
    with client.websocket_connect("/ws") as ws, pytest.raises(WebSocketDisconnect) as info:
        ws.receive_json()  # sends nothing: closed after 0.3 s
    assert info.value.code == 4000 and "idle" in info.value.reason


def test_a_bad_token_is_refused_and_the_socket_stays_anonymous(node: tuple[Services, TestClient]) -> None:
    services, client = node
    uid, token = token_of(services, "p@example.com", tier=Tier.PREMIUM)
    with client.websocket_connect("/ws?token=not-a-token") as ws:
        assert ws.receive_json()["code"] == "unauthorized"
        assert subscribe(ws, f"user:{uid}:signals")["code"] == "forbidden"
        ws.send_json({"op": "auth", "token": token})  # a good token later upgrades the socket
        assert ws.receive_json()["type"] == "authenticated"
        assert subscribe(ws, f"user:{uid}:signals")["type"] == "subscribed"


def test_an_entitlement_that_ends_ends_the_open_subscription(
    make_node: Callable[..., tuple[Services, TestClient]],
) -> None:
    """A premium user loses premium while subscribed: the socket is told and gets no more signals."""
    services, client = make_node(ws_recheck_s=0.1)
    uid, token = token_of(services, "p@example.com", tier=Tier.PREMIUM)
    mine = f"user:{uid}:signals"
    with client.websocket_connect(f"/ws?token={token}") as ws:
        assert subscribe(ws, mine, "system:alerts")["type"] == "subscribed"
        services.accounts.users.set_tier(uid, Tier.FREE)  # as a failed renewal does
        ended = ws.receive_json()
        assert (ended["type"], ended["code"], ended["channel"]) == ("error", "forbidden", mine)
        assert services.hub.subscriber_count(mine) == 0
        client.portal.call(services.hub.publish, mine, "signal", {"id": "live"})  # type: ignore[union-attr]
        client.portal.call(services.hub.publish, "system:alerts", "alert", {"n": 1})  # type: ignore[union-attr]
        assert ws.receive_json()["channel"] == "system:alerts"  # the public one stays, nothing else came


# --- per-user channels -----------------------------------------------------------------------------

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def calm_bars(services: Services) -> None:
    """45 daily bars of a calm symbol: its volatility is measurable and every profile accepts it."""
    first = to_ns(T0) - 45 * DAY_NS
    rows = [
        (first + i * DAY_NS, "CALM", *(4 * [100.0 * math.exp(0.01 * (i % 2))]), 1000.0) for i in range(45)
    ]
    frame = pd.DataFrame(rows, columns=["ts", "symbol", "open", "high", "low", "close", "volume"])
    frame["ts"] = frame["ts"].astype(np.int64)
    services.bars.upsert(Timeframe.D1, frame)


def calm_signal() -> Signal:
    created = T0 + timedelta(minutes=1)
    return Signal(
        id=new_signal_id(),
        symbol="CALM",
        type=SignalType.SWING,
        direction=Direction.LONG,
        entry=101.0,
        stop=80.8,
        targets=(121.2, 141.4),
        confidence=0.30,
        created_at=created,
        expires_at=created + timedelta(days=5),
        model_version="ws-test",
        decided_at=created,
        base_rate=0.25,
        confidence_rank=0.95,
    )


def test_a_new_signal_reaches_premium_users_fitted_and_sized_for_their_capital(
    node: tuple[Services, TestClient],
) -> None:
    services, client = node
    calm_bars(services)
    uid, token = token_of(services, "p@example.com", tier=Tier.PREMIUM)
    auth = {"Authorization": f"Bearer {token}"}
    r = client.put("/api/me/capital", json={"capital": 25_000}, headers=auth)
    assert r.status_code == 200 and r.json() == {"capital": 25_000.0}
    assert client.put("/api/me/capital", json={"capital": 1e30}, headers=auth).status_code == 422
    signal = calm_signal()
    services.signals.add(signal)  # as the engine stores it before publishing
    with client.websocket_connect(f"/ws?token={token}") as ws:
        assert subscribe(ws, f"user:{uid}:signals")["type"] == "subscribed"
        publish(client, services, topics.SIGNALS, "CALM", signal)
        msg = ws.receive_json()
    assert (msg["channel"], msg["type"], msg["seq"]) == (f"user:{uid}:signals", "signal", 1)
    assert msg["data"]["id"] == signal.id
    size = msg["data"]["size"]
    assert size["capital"] == 25_000.0 and size["profile"] == "moderate"
    # the same figures as the list's fitting, for the same profile and capital (one rule)
    page = client.get("/api/signals", params={"profile": "moderate", "capital": 25_000}, headers=auth)
    [listed] = [item for item in page.json()["items"] if item["id"] == signal.id]
    assert listed["size"] == size


def test_the_watchlist_carries_bars_and_outcomes_of_its_symbols(node: tuple[Services, TestClient]) -> None:
    services, client = node
    uid, token = token_of(services, "w@example.com")
    auth = {"Authorization": f"Bearer {token}"}
    r = client.put("/api/me/watchlist", json={"symbols": ["aapl", "MSFT", "AAPL"]}, headers=auth)
    assert r.status_code == 200 and r.json() == {"symbols": ["AAPL", "MSFT"]}
    assert client.get("/api/me/watchlist", headers=auth).json() == {"symbols": ["AAPL", "MSFT"]}
    too_many = {"symbols": [f"S{i}" for i in range(101)]}
    assert client.put("/api/me/watchlist", json=too_many, headers=auth).status_code == 422
    assert client.put("/api/me/watchlist", json={"symbols": ["BAD SYMBOL"]}, headers=auth).status_code == 422
    assert client.put("/api/me/watchlist", json={"symbols": []}).status_code == 401
    bar = Bar("AAPL", Timeframe.M1, 1_700_000_000_000_000_000, 1.0, 2.0, 0.5, 1.5, 100.0)
    other = Bar("TSLA", Timeframe.M1, 1_700_000_000_000_000_000, 1.0, 2.0, 0.5, 1.5, 100.0)
    with client.websocket_connect(f"/ws?token={token}") as ws:
        assert subscribe(ws, f"user:{uid}:watchlist")["type"] == "subscribed"
        publish(client, services, topics.MARKET_BARS, "TSLA", other)  # not watched
        publish(client, services, topics.MARKET_BARS, "AAPL", bar)
        got_bar = ws.receive_json()
        publish(client, services, topics.SIGNAL_EVENTS, "MSFT", closed_event(new_signal_id()))
        got_outcome = ws.receive_json()
    assert (got_bar["type"], got_bar["seq"], got_bar["data"]["symbol"]) == ("bar", 1, "AAPL")
    assert (got_outcome["type"], got_outcome["seq"], got_outcome["data"]["symbol"]) == ("outcome", 2, "MSFT")


def test_notifications_carry_billing_events_and_the_close_of_an_upgraded_signal(
    node: tuple[Services, TestClient],
) -> None:
    services, client = node
    signal = open_signal()
    services.signals.add(signal)
    uid, token = token_of(services, "n@example.com")
    mine = f"user:{uid}:notifications"
    with client.websocket_connect(f"/ws?token={token}") as ws:
        assert subscribe(ws, mine)["type"] == "subscribed"
        r = client.post(
            "/api/billing/checkout",
            json={"signal_id": signal.id},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status_code == 200
        billing = [ws.receive_json() for _ in range(2)]
        publish(client, services, topics.SIGNAL_EVENTS, "ETHUSDT", closed_event(signal.id))
        closed = ws.receive_json()
    kinds = {m["data"]["kind"] for m in billing}
    assert {m["type"] for m in billing} == {"billing"} and "upgrade_granted" in kinds
    granted = next(m for m in billing if m["data"]["kind"] == "upgrade_granted")
    assert granted["data"]["signal_id"] == signal.id
    assert (closed["type"], closed["data"]["signal_id"], closed["data"]["outcome"]) == (
        "outcome",
        signal.id,
        "target",
    )
    assert [m["seq"] for m in [*billing, closed]] == [1, 2, 3]
