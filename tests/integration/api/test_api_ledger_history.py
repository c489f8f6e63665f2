"""GET /api/ledger and /api/history[/summary] over a real embedded app (SQLite, memory bus)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tradesignals.api.app import create_app
from tradesignals.api.routes import history, ledger
from tradesignals.domain.ledger import GENESIS, LedgerEntry, verify
from tradesignals.domain.signals import (
    Direction,
    Signal,
    SignalEvent,
    SignalEventKind,
    SignalStatus,
    SignalType,
)
from tradesignals.engine.track_record import history_from_ledger, summarize
from tradesignals.wiring import Services

T0 = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)


def with_routers(app: FastAPI) -> FastAPI:
    paths = {getattr(r, "path", None) for r in app.routes}
    if "/api/ledger" not in paths:
        app.include_router(ledger.router)
    if "/api/history" not in paths:
        app.include_router(history.router)
    return app


@pytest.fixture
def api(services: Services) -> Iterator[TestClient]:
    with TestClient(with_routers(create_app(services, roles=frozenset({"api"})))) as c:
        yield c


def make_signal(i: int, symbol: str = "AAPL", type: SignalType = SignalType.SWING) -> Signal:
    created = T0 + timedelta(minutes=i)
    return Signal(
        id=f"{int(created.timestamp() * 1000):012x}{i:010x}",
        symbol=symbol,
        type=type,
        direction=Direction.LONG,
        entry=100.0,
        stop=95.0,
        targets=(105.0, 110.0),
        confidence=0.61,
        created_at=created,
        expires_at=created + timedelta(days=3),
        model_version="test-1",
        reasons=("because → trend",),
    )


def close(services: Services, s: Signal, at: datetime, pnl: float | None, r: float | None = None) -> None:
    data: dict[str, Any] = {
        "outcome": "target" if (pnl or 0) > 0 else "stop",
        "target_index": 0 if (pnl or 0) > 0 else None,
        "exit_price": 100.0 + (pnl or 0),
        "mfe_pct": 6.0,
        "mae_pct": -1.5,
        "holding_seconds": (at - s.created_at).total_seconds(),
        "closed_at": at,
    }
    if pnl is not None:
        data["pnl_pct"] = pnl
    if r is not None:
        data["r_multiple"] = r
    status = SignalStatus.TARGET_HIT if (pnl or 0) > 0 else SignalStatus.STOPPED
    services.signals.set_status(s.id, status, SignalEvent(s.id, SignalEventKind.CLOSED, at, data))


def seed(services: Services) -> list[Signal]:
    """Five signals: four closed across two months and three symbols, one still open."""
    signals = [
        make_signal(0, "AAPL"),
        make_signal(1, "MSFT", SignalType.DAY),
        make_signal(2, "AAPL"),
        make_signal(3, "TSLA"),
        make_signal(4, "AAPL"),  # stays open
    ]
    for s in signals:
        services.signals.add(s)
    services.signals.add_event(SignalEvent(signals[4].id, SignalEventKind.UPDATED, T0, {"stop": 96.0}))
    close(services, signals[0], datetime(2026, 1, 20, tzinfo=UTC), 4.0, 0.8)
    close(services, signals[1], datetime(2026, 1, 31, 23, 0, tzinfo=UTC), -2.0, -0.4)
    close(services, signals[2], datetime(2026, 2, 2, tzinfo=UTC), 1.0, 0.2)
    close(services, signals[3], datetime(2026, 2, 9, tzinfo=UTC), None)  # no P/L recorded
    return signals


def entries_of(body: dict[str, Any]) -> list[LedgerEntry]:
    return [
        LedgerEntry(
            e["seq"],
            e["signal_id"],
            e["kind"],
            datetime.fromisoformat(e["at"].replace("Z", "+00:00")),
            e["data"],
            e["prev_hash"],
            e["hash"],
        )
        for e in body["entries"]
    ]


# --- /api/ledger ---------------------------------------------------------------------------------


def test_ledger_serves_entries_with_their_hashes(api: TestClient, services: Services) -> None:
    seed(services)
    r = api.get("/api/ledger")
    assert r.status_code == 200
    body = r.json()
    assert body["genesis"] == GENESIS and body["next_from"] is None
    entries = body["entries"]
    assert [e["seq"] for e in entries] == list(range(1, 11))
    assert entries[0]["prev_hash"] == GENESIS
    assert all(len(e["hash"]) == 64 for e in entries)
    assert entries[0]["at"] == "2026-01-05T15:00:00.000000Z"
    stored = services.signals.ledger()
    assert [e["hash"] for e in entries] == [e.hash for e in stored]
    assert verify(entries_of(body)).ok


def test_open_signals_are_sealed_but_still_chained(api: TestClient, services: Services) -> None:
    signals = seed(services)
    entries = api.get("/api/ledger").json()["entries"]
    open_id = signals[4].id
    sealed = [e for e in entries if e["sealed"]]
    assert {e["signal_id"] for e in sealed} == {open_id} and len(sealed) == 2
    assert all(e["data"] is None for e in sealed)
    assert all(e["data"] is not None for e in entries if e["signal_id"] != open_id)
    result = verify(entries_of({"entries": entries}))
    assert result.ok and result.sealed == 2
    # Once the signal closes, the same entries are served in full and match the published hashes.
    close(services, signals[4], T0 + timedelta(days=1), 2.0)
    revealed = api.get("/api/ledger").json()["entries"]
    assert not any(e["sealed"] for e in revealed)
    assert [e["hash"] for e in revealed[:10]] == [e["hash"] for e in entries]
    assert verify(entries_of({"entries": revealed})).sealed == 0


def test_the_documented_recipe_verifies_the_served_pages(api: TestClient, services: Services) -> None:
    """Only the OpenAPI description's recipe and the JSON served: no code of ours."""
    signals = seed(services)
    tricky = {"big": 1e22, "tiny": 5e-324, "neg": -0.0, "whole": 5.0, "int": 5, "huge": 2**70, "s": "→\u2028"}
    services.signals.add_event(SignalEvent(signals[0].id, SignalEventKind.UPDATED, T0, tricky))
    close(services, signals[4], T0 + timedelta(days=1), 2.0)
    description = api.get("/openapi.json").json()["paths"]["/api/ledger"]["get"]["description"]
    assert GENESIS in description and "sha256(bytes.fromhex(prev_hash)" in description
    served: list[dict[str, Any]] = []
    page: dict[str, Any] = {"next_from": 0}
    while page["next_from"] is not None:
        page = json.loads(api.get("/api/ledger", params={"from": page["next_from"], "limit": 3}).text)
        served += page["entries"]
    prev = GENESIS
    for seq, e in enumerate(served, start=1):
        body = {k: e[k] for k in ("seq", "signal_id", "kind", "at", "data")}
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        digest = hashlib.sha256(bytes.fromhex(prev) + text.encode()).hexdigest()
        assert (e["seq"], e["prev_hash"], e["hash"]) == (seq, prev, digest)
        prev = digest
    assert len(served) == 12 and prev == services.signals.ledger()[-1].hash
    assert served[10]["data"] == tricky


def test_ledger_ranges_and_cursor(api: TestClient, services: Services) -> None:
    seed(services)
    page = api.get("/api/ledger", params={"from": 3, "to": 8, "limit": 4}).json()
    assert [e["seq"] for e in page["entries"]] == [3, 4, 5, 6] and page["next_from"] == 7
    rest = api.get("/api/ledger", params={"from": 7, "to": 8, "limit": 4}).json()
    assert [e["seq"] for e in rest["entries"]] == [7, 8] and rest["next_from"] is None
    exact = api.get("/api/ledger", params={"from": 5, "to": 8, "limit": 4}).json()
    assert exact["next_from"] is None  # the page reached `to`
    assert api.get("/api/ledger", params={"from": 50}).json() == {
        "genesis": GENESIS,
        "entries": [],
        "next_from": None,
    }


@pytest.mark.parametrize(
    "params",
    [{"from": -1}, {"to": -5}, {"from": "x"}, {"from": 5, "to": 4}, {"limit": 0}, {"limit": 5001}],
)
def test_bad_ledger_parameters_are_422(api: TestClient, params: dict[str, Any]) -> None:
    r = api.get("/api/ledger", params=params)
    assert r.status_code == 422, params
    if params == {"from": 5, "to": 4}:
        assert r.json()["detail"] == "to (4) is before from (5)"


# --- /api/history --------------------------------------------------------------------------------


def test_history_lists_closes_newest_first_with_pnl(api: TestClient, services: Services) -> None:
    signals = seed(services)
    items = api.get("/api/history").json()["items"]
    assert [i["id"] for i in items] == [signals[3].id, signals[2].id, signals[1].id, signals[0].id]
    first = items[-1]
    assert first["symbol"] == "AAPL" and first["outcome"] == "target" and first["target_index"] == 0
    assert (first["pnl_pct"], first["r_multiple"], first["exit_price"]) == (4.0, 0.8, 104.0)
    assert first["holding_seconds"] == (datetime(2026, 1, 20, tzinfo=UTC) - T0).total_seconds()
    assert first["closed_at"].startswith("2026-01-20T00:00:00") and first["targets"] == [105.0, 110.0]
    assert items[0]["pnl_pct"] is None  # listed, with what is known
    assert signals[4].id not in {i["id"] for i in items}  # never a live signal


def test_history_filters_and_cursor(api: TestClient, services: Services) -> None:
    signals = seed(services)

    def ids(**params: Any) -> list[str]:
        return [i["id"] for i in api.get("/api/history", params=params).json()["items"]]

    assert ids(symbol="aapl") == [signals[2].id, signals[0].id]
    assert ids(type="day") == [signals[1].id]
    assert ids(month="2026-01") == [signals[1].id, signals[0].id]  # 23:00 UTC on the 31st is January
    assert ids(month="2026-02", symbol="TSLA") == [signals[3].id]
    assert ids(month="2025-12") == []
    page = api.get("/api/history", params={"limit": 3}).json()
    assert len(page["items"]) == 3 and page["next_before"] == page["items"][-1]["seq"]
    rest = api.get("/api/history", params={"limit": 3, "before": page["next_before"]}).json()
    assert [i["id"] for i in rest["items"]] == [signals[0].id] and rest["next_before"] is None


@pytest.mark.parametrize(
    "params",
    [
        {"month": "2026-13"},
        {"month": "2026-1"},
        {"type": "scalp"},
        {"before": 0},
        {"limit": 501},
        {"symbol": "A;B"},
    ],
)
def test_bad_history_parameters_are_422(api: TestClient, params: dict[str, Any]) -> None:
    assert api.get("/api/history", params=params).status_code == 422, params
    if "before" not in params and "limit" not in params:
        assert api.get("/api/history/summary", params=params).status_code == 422, params


def test_summary_numbers(api: TestClient, services: Services) -> None:
    seed(services)
    s = api.get("/api/history/summary").json()
    o = s["overall"]
    # Scored returns 4, -2, 1 (TSLA has none).
    assert (s["closed"], s["skipped"], o["count"], o["wins"], o["losses"]) == (4, 1, 3, 2, 1)
    assert o["win_rate"] == pytest.approx(2 / 3)
    assert o["avg_return_pct"] == 1.0 and o["median_return_pct"] == 1.0
    assert o["profit_factor"] == 2.5 and o["avg_r"] == pytest.approx(0.2)
    assert o["outcomes"] == {"stop": 1, "target": 2}
    assert s["missing"] == {"pnl_pct": 1, "r_multiple": 1}
    assert (
        set(s["by_type"]) == {"day", "swing"} and s["by_type"]["day"]["profit_factor"] == 0.0
    )  # only a loss
    assert s["by_symbol"]["AAPL"]["count"] == 2 and s["by_symbol"]["AAPL"]["avg_return_pct"] == 2.5
    assert {m: v["count"] for m, v in s["by_month"].items()} == {"2026-01": 2, "2026-02": 1}

    aapl = api.get("/api/history/summary", params={"symbol": "AAPL", "month": "2026-02"}).json()
    assert aapl["overall"]["count"] == 1 and aapl["overall"]["total_return_pct"] == 1.0


def test_summary_equals_the_one_rebuilt_from_the_public_ledger(api: TestClient, services: Services) -> None:
    signals = seed(services)
    close(services, signals[4], T0 + timedelta(days=3), -1.0, -0.2)
    served = api.get("/api/history/summary").json()
    rebuilt = summarize(history_from_ledger(entries_of(api.get("/api/ledger").json())).rows)
    assert served["overall"]["count"] == rebuilt.overall.count == 4
    assert served["overall"]["avg_return_pct"] == pytest.approx(rebuilt.overall.avg_return_pct)
    assert served["overall"]["profit_factor"] == pytest.approx(rebuilt.overall.profit_factor)
    assert served["by_month"].keys() == rebuilt.by_month.keys()


def test_an_empty_track_record(api: TestClient) -> None:
    assert api.get("/api/history").json() == {"items": [], "next_before": None}
    s = api.get("/api/history/summary").json()
    assert s["closed"] == 0 and s["overall"]["count"] == 0 and s["overall"]["win_rate"] is None
