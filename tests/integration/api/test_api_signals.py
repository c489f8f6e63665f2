from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from tradesignals.domain.signals import (
    Direction,
    Signal,
    SignalEvent,
    SignalEventKind,
    SignalStatus,
    SignalType,
)
from tradesignals.wiring import Services

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def make_signal(i: int, symbol: str = "AAPL") -> Signal:
    created = T0 + timedelta(minutes=i)
    return Signal(
        id=f"{int(created.timestamp() * 1000):012x}{i:010x}",
        symbol=symbol,
        type=SignalType.SWING,
        direction=Direction.LONG,
        entry=100.0 + i,
        stop=95.0 + i,
        targets=(105.0 + i, 110.0 + i),
        confidence=0.61,
        created_at=created,
        expires_at=created + timedelta(days=3),
        model_version="test-1",
        reasons=("because",),
    )


def test_health_reports_mode_and_services(client: TestClient) -> None:
    r = client.get("/api/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["mode"] == "embedded"
    assert body["services"]["database"] == {"ok": True, "detail": "sqlite", "gates": True}
    assert body["services"]["bus"]["ok"] is True


def expire(services: Services, s: Signal) -> None:
    services.signals.set_status(
        s.id,
        SignalStatus.EXPIRED,
        SignalEvent(s.id, SignalEventKind.CLOSED, s.expires_at, {"outcome": "expired"}),
    )


def test_signals_newest_first_with_cursor_and_filters(client: TestClient, services: Services) -> None:
    for i in range(5):
        services.signals.add(make_signal(i, "AAPL" if i % 2 == 0 else "MSFT"))
    assert client.get("/api/signals").json()["items"] == []  # open: not for anonymous callers
    for i in range(5):
        expire(services, make_signal(i, "AAPL" if i % 2 == 0 else "MSFT"))  # the public track record
    page1 = client.get("/api/signals", params={"limit": 2}).json()
    assert [s["entry"] for s in page1["items"]] == [104.0, 103.0]
    page2 = client.get("/api/signals", params={"limit": 2, "before": page1["next_before"]}).json()
    assert [s["entry"] for s in page2["items"]] == [102.0, 101.0]
    page3 = client.get("/api/signals", params={"limit": 2, "before": page2["next_before"]}).json()
    assert [s["entry"] for s in page3["items"]] == [100.0] and page3["next_before"] is None
    msft = client.get("/api/signals", params={"symbol": "msft"}).json()["items"]
    assert {s["symbol"] for s in msft} == {"MSFT"} and len(msft) == 2
    one = msft[0]
    assert one["targets"] == [108.0, 113.0] and one["reasons"] == ["because"]
    assert one["created_at"].startswith("2026-03-02T15:03:00") and one["status"] == "expired"


def test_status_filter_and_single_signal(client: TestClient, services: Services) -> None:
    s = make_signal(1)
    services.signals.add(s)
    services.signals.set_status(
        s.id,
        SignalStatus.STOPPED,
        SignalEvent(s.id, SignalEventKind.CLOSED, T0 + timedelta(hours=1), {"pnl": -5}),
    )
    assert client.get(f"/api/signals/{s.id}").json()["status"] == "stopped"
    assert client.get("/api/signals", params={"status": "open"}).json()["items"] == []


def test_bad_requests_get_4xx_with_a_reason(client: TestClient) -> None:
    missing = client.get("/api/signals/0123456789abcdef012345")
    assert missing.status_code == 404 and "no signal with id" in missing.json()["detail"]
    for params in ({"limit": 0}, {"limit": 501}, {"status": "won"}, {"before": "zz"}, {"symbol": "A;DROP"}):
        r = client.get("/api/signals", params=params)
        assert r.status_code == 422, params
        assert r.json()["detail"][0]["loc"][0] == "query"
    assert client.get("/api/signals/not-an-id").status_code == 422


def test_openapi_lists_the_contract(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/health", "/api/signals", "/api/signals/{signal_id}"} <= set(paths)
