from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from tradesignals.bus import topics
from tradesignals.bus.codec import encode
from tradesignals.domain.signals import Direction, Signal, SignalType, new_signal_id
from tradesignals.wiring import Services


def signal() -> Signal:
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


def wait_subscribers(services: Services, channel: str, n: int = 1) -> None:
    deadline = time.monotonic() + 5
    while services.hub.subscriber_count(channel) < n:
        assert time.monotonic() < deadline, "subscription never registered"
        time.sleep(0.01)


def bearer(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


def test_signal_published_on_the_bus_reaches_a_subscriber(
    client: TestClient, services: Services, premium: dict[str, str]
) -> None:
    s = signal()
    with client.websocket_connect(f"/ws?token={bearer(premium)}") as ws:
        ws.send_json({"op": "subscribe", "channels": ["signals"]})
        ack = ws.receive_json()
        assert ack["type"] == "subscribed" and ack["channels"] == ["signals"]
        wait_subscribers(services, "signals")
        # The broadcaster's consumer starts at "latest"; give it a moment to join its group.
        time.sleep(0.3)
        client.portal.call(services.bus.publish, topics.SIGNALS, s.symbol, encode(s))  # type: ignore[union-attr]
        msg = ws.receive_json()
        assert msg["channel"] == "signals" and msg["type"] == "signal" and msg["seq"] >= 1
        assert msg["data"]["id"] == s.id and msg["data"]["direction"] == "short"
        assert msg["data"]["targets"] == [2970.0]


def test_resume_with_since_replays_what_was_missed(
    client: TestClient, services: Services, premium: dict[str, str]
) -> None:
    for i in range(3):
        services.hub.publish("signals", "signal", {"n": i})
    with client.websocket_connect(f"/ws?token={bearer(premium)}") as ws:
        ws.send_json({"op": "subscribe", "channels": ["signals"], "since": 1})
        got = [ws.receive_json() for _ in range(3)]
    replayed = [m for m in got if m.get("channel") == "signals"]
    assert [m["seq"] for m in replayed] == [2, 3]
    assert any(m.get("type") == "subscribed" for m in got)


def test_bad_frames_get_error_frames_and_the_socket_stays_open(client: TestClient) -> None:
    with client.websocket_connect("/ws") as ws:
        cases = [
            ("{not json", "bad_json"),
            ('["subscribe"]', "bad_request"),
            ('{"op": "dance"}', "bad_op"),
            ('{"op": "subscribe", "channels": []}', "bad_request"),
            ('{"op": "subscribe", "channels": ["signals"], "since": -1}', "bad_request"),
            ('{"op": "subscribe", "channels": ["signals"]}', "forbidden"),  # live: premium only
            ('{"op": "subscribe", "channels": ["nope"]}', "unknown_channel"),
            ('{"op": "subscribe", "channels": ["user:7:signals"]}', "forbidden"),
            ('{"op": "subscribe", "channels": ["signal:0123456789abcdef012345:live"]}', "forbidden"),
        ]
        for raw, code in cases:
            ws.send_text(raw)
            reply = ws.receive_json()
            assert reply["type"] == "error" and reply["code"] == code, (raw, reply)
            assert reply["message"]
        ws.send_json({"op": "ping"})
        assert ws.receive_json() == {"type": "pong"}


def test_public_channels_are_open_to_anyone(client: TestClient) -> None:
    with client.websocket_connect("/ws") as ws:
        ws.send_json(
            {"op": "subscribe", "channels": ["system:alerts", "market:status", "market:AAPL:updates"]}
        )
        assert ws.receive_json()["type"] == "subscribed"
        ws.send_json({"op": "unsubscribe", "channels": ["market:status"]})
        assert ws.receive_json() == {"type": "unsubscribed", "channels": ["market:status"]}


def test_engine_alerts_reach_the_public_alerts_channel(client: TestClient, services: Services) -> None:
    alert = {"kind": "model_drift", "source": "hit_rate", "hit_rate": 0.3, "expected_hit_rate": 0.6, "n": 120,
             "message": "live hit rate 30% vs 60% expected"}  # fmt: skip
    with client.websocket_connect("/ws") as ws:
        ws.send_json({"op": "subscribe", "channels": ["system:alerts"]})
        assert ws.receive_json()["type"] == "subscribed"
        time.sleep(0.3)  # the alerts bridge joins its group at "latest"
        client.portal.call(services.bus.publish, topics.SYSTEM_ALERTS, "model", encode(alert))  # type: ignore[union-attr]
        msg = ws.receive_json()
    assert msg["channel"] == "system:alerts" and msg["type"] == "alert" and msg["data"] == alert


def test_a_bad_token_is_refused_and_the_socket_stays_anonymous(
    client: TestClient, premium: dict[str, str]
) -> None:
    with client.websocket_connect("/ws?token=not-a-token") as ws:
        assert ws.receive_json()["code"] == "unauthorized"
        ws.send_json({"op": "subscribe", "channels": ["signals"]})
        assert ws.receive_json()["code"] == "forbidden"
        ws.send_json({"op": "auth", "token": bearer(premium)})  # a good token later upgrades the socket
        assert ws.receive_json()["type"] == "authenticated"
        ws.send_json({"op": "subscribe", "channels": ["signals"]})
        assert ws.receive_json()["type"] == "subscribed"


def test_an_entitlement_that_ends_ends_the_open_subscription(tmp_path: Path) -> None:
    """A premium user loses premium while subscribed: the socket is told and gets no more signals."""
    from datetime import UTC, datetime

    from tradesignals.api.app import create_app
    from tradesignals.config import load_settings
    from tradesignals.domain.tiers import Tier
    from tradesignals.wiring import build_services

    services = asyncio.run(build_services(load_settings(home=tmp_path, mode="embedded", ws_recheck_s=0.1)))
    user = services.accounts.register("p@example.com", "correct horse battery staple")
    services.accounts.users.set_tier(user.id, Tier.PREMIUM)
    token = services.accounts.tokens.issue(user.id, "user", datetime.now(UTC))
    with TestClient(create_app(services)) as client, client.websocket_connect(f"/ws?token={token}") as ws:
        ws.send_json({"op": "subscribe", "channels": ["signals", "system:alerts"]})
        assert ws.receive_json()["type"] == "subscribed"
        services.accounts.users.set_tier(user.id, Tier.FREE)  # as a failed renewal does
        ended = ws.receive_json()
        assert (ended["type"], ended["code"], ended["channel"]) == ("error", "forbidden", "signals")
        assert services.hub.subscriber_count("signals") == 0
        services.hub.publish("signals", "signal", {"id": "live"})
        services.hub.publish("system:alerts", "alert", {"n": 1})
        assert ws.receive_json()["channel"] == "system:alerts"  # the public one stays, nothing else came
