"""GET /api/ledger and /api/history[/summary] over a real embedded app (SQLite, memory bus)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tradesignals.api.app import create_app
from tradesignals.api.routes import history, ledger
from tradesignals.config import load_settings
from tradesignals.domain.ledger import GENESIS, LedgerEntry, entry_body, entry_hash, verify
from tradesignals.domain.outcomes import Outcome, OutcomeKind
from tradesignals.domain.signals import (
    Direction,
    Signal,
    SignalEvent,
    SignalEventKind,
    SignalType,
)
from tradesignals.engine.track_record import history_from_ledger, summarize
from tradesignals.wiring import Services, build_services

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


@pytest.fixture
def services(db_url: str, tmp_path: Path) -> Services:
    """The embedded app on SQLite and on the real PostgreSQL (``db_url``)."""
    return asyncio.run(build_services(load_settings(home=tmp_path, mode="embedded", database_url=db_url)))


def make_signal(
    i: int,
    symbol: str = "AAPL",
    type: SignalType = SignalType.SWING,
    confidence: float = 0.61,
    model: str = "test-1",
) -> Signal:
    created = T0 + timedelta(minutes=i)
    return Signal(
        id=f"{int(created.timestamp() * 1000):012x}{i:010x}",
        symbol=symbol,
        type=type,
        direction=Direction.LONG,
        entry=100.0,
        stop=95.0,
        targets=(105.0, 110.0),
        confidence=confidence,
        created_at=created,
        expires_at=created + timedelta(days=3),
        model_version=model,
        reasons=("because → trend",),
        decided_at=created - timedelta(seconds=30),
        base_rate=0.3,
    )


COSTS_R = 0.1  # every example trade pays 0.1 R (0.5 % of a fill of 100 with a risk of 5)


def outcome_of(s: Signal, at: datetime, net_r: float | None) -> Outcome:
    """``s`` closed at ``at`` with ``net_r`` (filled at 100, 1R = 5); None: not filled."""
    kind = (
        OutcomeKind.NOT_FILLED
        if net_r is None
        else OutcomeKind.TARGET
        if net_r > 0.5
        else OutcomeKind.STOP
        if net_r < -0.5
        else OutcomeKind.EXPIRED
    )
    gross_r = None if net_r is None else net_r + COSTS_R
    return Outcome(
        signal_id=s.id,
        symbol=s.symbol,
        outcome=kind,
        target_index=0 if kind is OutcomeKind.TARGET else None,
        decided_at=s.decided_at or s.created_at,
        filled_at=None if net_r is None else s.created_at + timedelta(minutes=1),
        fill_price=None if net_r is None else 100.0,
        first_price=94.0 if net_r is None else None,
        exit_price=None if gross_r is None else 100.0 + 5 * gross_r,
        gross_pnl_pct=None if gross_r is None else 5 * gross_r,
        costs_pct=None if net_r is None else 5 * COSTS_R,
        net_pnl_pct=None if net_r is None else 5 * net_r,
        gross_r=gross_r,
        net_r=net_r,
        mfe_pct=None if gross_r is None else max(0.0, 5 * gross_r),
        mae_pct=None if gross_r is None else min(0.0, 5 * gross_r),
        holding_seconds=0.0 if net_r is None else (at - s.created_at).total_seconds(),
        closed_at=at,
    )


def close(services: Services, s: Signal, at: datetime, net_r: float | None) -> Outcome:
    out = outcome_of(s, at, net_r)
    services.signals.set_status(s.id, out.status, out.to_event())
    return out


def seed(services: Services) -> list[Signal]:
    """Five signals: four closed (one never filled) across two months, three symbols and two
    models, one still open."""
    signals = [
        make_signal(0, "AAPL", confidence=0.31),
        make_signal(1, "MSFT", SignalType.DAY, confidence=0.33, model="test-2"),
        make_signal(2, "AAPL", confidence=0.26),
        make_signal(3, "TSLA", confidence=0.40),
        make_signal(4, "AAPL"),  # stays open
    ]
    for s in signals:
        services.signals.add(s)
    services.signals.add_event(SignalEvent(signals[4].id, SignalEventKind.UPDATED, T0, {"stop": 96.0}))
    close(services, signals[0], datetime(2026, 1, 20, tzinfo=UTC), 0.8)
    close(services, signals[1], datetime(2026, 1, 31, 23, 0, tzinfo=UTC), -1.1)
    close(services, signals[2], datetime(2026, 2, 2, tzinfo=UTC), 0.2)
    close(services, signals[3], datetime(2026, 2, 9, tzinfo=UTC), None)  # never filled
    return signals


def entries_of(body: dict[str, Any]) -> list[LedgerEntry]:
    return [
        LedgerEntry(
            e["seq"],
            e["signal_id"] or "",  # null while sealed
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
    assert len(sealed) == 2 and all(e["data"] is None and e["signal_id"] is None for e in sealed)
    assert open_id not in json.dumps(entries)  # the ledger never names a live signal
    assert all(e["data"] is not None for e in entries if not e["sealed"])
    result = verify(entries_of({"entries": entries}))
    assert result.ok and result.sealed == 2
    # Once the signal closes, the same entries are served in full and match the published hashes.
    close(services, signals[4], T0 + timedelta(days=1), 0.4)
    revealed = api.get("/api/ledger").json()["entries"]
    assert not any(e["sealed"] for e in revealed)
    assert [e["hash"] for e in revealed[:10]] == [e["hash"] for e in entries]
    assert verify(entries_of({"entries": revealed})).sealed == 0
    # The created entry carries a 128-bit salt, revealed only now: without it, even the exact
    # content (signal id, every field) does not hash to the sealed commitment.
    created = next(e for e in revealed if e["signal_id"] == open_id and e["kind"] == "created")
    salt = created["data"]["salt"]
    assert isinstance(salt, str) and len(bytes.fromhex(salt)) == 16
    unsalted = {k: v for k, v in created["data"].items() if k != "salt"}
    at = datetime.fromisoformat(created["at"].replace("Z", "+00:00"))
    assert (
        entry_hash(created["prev_hash"], entry_body(created["seq"], open_id, "created", at, created["data"]))
        == (created["hash"])
    )
    guess = entry_hash(created["prev_hash"], entry_body(created["seq"], open_id, "created", at, unsalted))
    assert guess != created["hash"]
    salts = {e["data"]["salt"] for e in revealed if e["kind"] == "created"}
    assert len(salts) == 5  # one per signal, never reused


def test_the_documented_recipe_verifies_the_served_pages(api: TestClient, services: Services) -> None:
    """Only the OpenAPI description's recipe and the JSON served: no code of ours."""
    signals = seed(services)
    tricky = {"big": 1e22, "tiny": 5e-324, "neg": -0.0, "whole": 5.0, "int": 5, "huge": 2**70, "s": "→\u2028"}
    services.signals.add_event(SignalEvent(signals[0].id, SignalEventKind.UPDATED, T0, tricky))
    close(services, signals[4], T0 + timedelta(days=1), 0.4)
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
    assert served[10]["data"] == tricky | {"salt": served[10]["data"]["salt"]}  # an update is salted too


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
    [
        {"from": -1},
        {"to": -5},
        {"from": "x"},
        {"from": 5, "to": 4},
        {"limit": 0},
        {"limit": 5001},
        {"from": 2**63},  # past a 64-bit integer: a reason, never a 500
        {"to": 10**30},
    ],
)
def test_bad_ledger_parameters_are_422(api: TestClient, params: dict[str, Any]) -> None:
    r = api.get("/api/ledger", params=params)
    assert r.status_code == 422, params
    if params == {"from": 5, "to": 4}:
        assert r.json()["detail"] == "to (4) is before from (5)"


# --- /api/history --------------------------------------------------------------------------------


def test_history_lists_closes_newest_first_with_fill_exit_and_net(
    api: TestClient, services: Services
) -> None:
    signals = seed(services)
    items = api.get("/api/history").json()["items"]
    assert [i["id"] for i in items] == [signals[3].id, signals[2].id, signals[1].id, signals[0].id]
    first = items[-1]
    assert first["symbol"] == "AAPL" and first["outcome"] == "target" and first["target_index"] == 0
    assert (first["fill_price"], first["exit_price"], first["win"]) == (100.0, 104.5, True)
    assert first["gross_pnl_pct"] == pytest.approx(4.5) and first["costs_pct"] == pytest.approx(0.5)
    assert first["net_pnl_pct"] == pytest.approx(4.0) and first["net_r"] == pytest.approx(0.8)
    assert first["gross_r"] == pytest.approx(0.9) and first["model_version"] == "test-1"
    assert first["decided_at"].startswith("2026-01-05T14:59:30")
    assert first["filled_at"].startswith("2026-01-05T15:01:00")
    assert first["holding_seconds"] == (datetime(2026, 1, 20, tzinfo=UTC) - T0).total_seconds()
    assert first["closed_at"].startswith("2026-01-20T00:00:00") and first["targets"] == [105.0, 110.0]
    assert first["legacy"] is False
    never = items[0]  # listed, with no fill and no P/L
    assert (never["outcome"], never["win"], never["fill_price"], never["net_r"]) == (
        "not_filled",
        False,
        None,
        None,
    )
    assert signals[4].id not in {i["id"] for i in items}  # never a live signal
    assert not any(k in first for k in ("pnl_pct", "r_multiple", "total_return_pct"))


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
        {"before": 2**63},  # past a 64-bit integer: a reason, never a 500
        {"before": 10**40},
        {"limit": 501},
        {"symbol": "A;B"},
    ],
)
def test_bad_history_parameters_are_422(api: TestClient, params: dict[str, Any]) -> None:
    r = api.get("/api/history", params=params)
    assert r.status_code == 422, params
    assert r.json()["detail"]
    if "before" not in params and "limit" not in params:
        assert api.get("/api/history/summary", params=params).status_code == 422, params


def test_the_largest_cursor_is_served(api: TestClient, services: Services) -> None:
    seed(services)
    assert len(api.get("/api/history", params={"before": 2**63 - 1}).json()["items"]) == 4


def test_summary_numbers(api: TestClient, services: Services) -> None:
    seed(services)
    s = api.get("/api/history/summary").json()
    o = s["overall"]
    # Filled net R 0.8, -1.1, 0.2; TSLA was never filled.
    assert (s["closed"], s["skipped"], s["legacy"]) == (4, 0, 0)
    assert (o["closes"], o["count"], o["not_filled"], o["wins"], o["losses"]) == (4, 3, 1, 2, 1)
    assert o["hit_rate"] == pytest.approx(2 / 3) and s["hit_rate"] == o["hit_rate"]
    assert o["avg_net_r"] == pytest.approx(-0.1 / 3) and s["avg_net_r"] == o["avg_net_r"]
    assert o["median_net_r"] == pytest.approx(0.2) and o["avg_gross_r"] == pytest.approx(0.2 / 3)
    assert o["avg_net_pnl_pct"] == pytest.approx(-0.5 / 3) and o["avg_costs_pct"] == pytest.approx(0.5)
    assert o["net_profit_factor"] == pytest.approx(1.0 / 1.1)
    assert o["outcomes"] == {"expired": 1, "not_filled": 1, "stop": 1, "target": 1}
    assert s["reliability"] == o["reliability"]
    table = [(b["lo"], b["hi"], b["n"], b["hit_rate"]) for b in s["reliability"]]
    assert table == [(0.25, 0.3, 1, 1.0), (0.3, 0.35, 2, 0.5)]  # the not-filled 0.40 is in no bucket
    assert s["reliability"][1]["mean_confidence"] == pytest.approx(0.32)
    assert s["missing"] == {}
    assert [(m["model_version"], m["count"], m["hit_rate"]) for m in s["by_model"]] == [
        ("test-1", 2, 1.0),
        ("test-2", 1, 0.0),
    ]
    assert s["by_model"][0]["not_filled"] == 1 and s["by_model"][0]["net_profit_factor"] is None
    assert set(s["by_type"]) == {"day", "swing"} and s["by_type"]["day"]["net_profit_factor"] == 0.0
    assert s["by_symbol"]["AAPL"]["count"] == 2 and s["by_symbol"]["AAPL"]["avg_net_r"] == pytest.approx(0.5)
    assert {m: v["closes"] for m, v in s["by_month"].items()} == {"2026-01": 2, "2026-02": 2}
    assert "total_return_pct" not in json.dumps(s)

    aapl = api.get("/api/history/summary", params={"symbol": "AAPL", "month": "2026-02"}).json()
    assert aapl["overall"]["count"] == 1 and aapl["hit_rate"] == 1.0


def test_a_close_recorded_before_the_rulebook_is_listed_and_left_out(
    api: TestClient, services: Services
) -> None:
    signals = seed(services)
    old = {"outcome": "stop", "target_index": None, "exit_price": 95.0, "pnl_pct": -5.0, "r_multiple": -1.0}
    services.signals.set_status(
        signals[4].id,
        OutcomeKind.STOP.status,
        SignalEvent(signals[4].id, SignalEventKind.CLOSED, T0 + timedelta(days=3), old),
    )
    item = api.get("/api/history", params={"limit": 1}).json()["items"][0]
    assert item["id"] == signals[4].id and item["legacy"] is True
    assert (item["outcome"], item["exit_price"], item["net_r"], item["win"]) == ("stop", 95.0, None, None)
    s = api.get("/api/history/summary").json()
    assert (s["closed"], s["skipped"], s["legacy"], s["overall"]["count"]) == (5, 1, 1, 3)
    assert s["hit_rate"] == pytest.approx(2 / 3)  # as before: the legacy close is in no rate
    assert s["missing"]["net_r"] == 1


def test_closed_signals_carry_their_outcome(api: TestClient, services: Services) -> None:
    signals = seed(services)
    one = api.get(f"/api/signals/{signals[1].id}").json()
    assert (one["status"], one["outcome"], one["win"]) == ("stopped", "stop", False)
    assert (one["fill_price"], one["exit_price"]) == (100.0, 95.0)
    assert one["net_r"] == pytest.approx(-1.1) and one["net_pnl_pct"] == pytest.approx(-5.5)
    assert one["gross_pnl_pct"] == pytest.approx(-5.0) and one["costs_pct"] == pytest.approx(0.5)
    assert one["decided_at"].startswith("2026-01-05T15:00:30") and one["filled_at"].startswith(
        "2026-01-05T15:02"
    )
    assert one["edge"] == pytest.approx(0.03) and one["base_rate"] == 0.3
    page = {s["id"]: s for s in api.get("/api/signals").json()["items"]}
    assert page[signals[3].id]["status"] == "not_filled" and page[signals[3].id]["outcome"] == "not_filled"
    assert page[signals[3].id]["fill_price"] is None
    assert signals[4].id not in page  # open: not in an anonymous caller's list, and 403 on its own
    assert api.get(f"/api/signals/{signals[4].id}").status_code == 403
    assert page[signals[0].id]["net_r"] == pytest.approx(0.8)


def test_summary_equals_the_one_rebuilt_from_the_public_ledger(api: TestClient, services: Services) -> None:
    signals = seed(services)
    close(services, signals[4], T0 + timedelta(days=3), -0.2)
    served = api.get("/api/history/summary").json()
    rebuilt = summarize(history_from_ledger(entries_of(api.get("/api/ledger").json())).rows)
    assert served["overall"]["count"] == rebuilt.overall.count == 4
    assert served["hit_rate"] == pytest.approx(rebuilt.overall.hit_rate)
    assert served["avg_net_r"] == pytest.approx(rebuilt.overall.avg_net_r)
    assert served["overall"]["net_profit_factor"] == pytest.approx(rebuilt.overall.net_profit_factor)
    assert [(b["lo"], b["n"]) for b in served["reliability"]] == [
        (b.lo, b.n) for b in rebuilt.overall.reliability
    ]
    assert [m["model_version"] for m in served["by_model"]] == list(rebuilt.by_model)
    assert served["by_month"].keys() == rebuilt.by_month.keys()


def test_an_empty_track_record(api: TestClient) -> None:
    assert api.get("/api/history").json() == {"items": [], "next_before": None}
    s = api.get("/api/history/summary").json()
    assert s["closed"] == 0 and s["overall"]["count"] == 0 and s["hit_rate"] is None
    assert s["reliability"] == [] and s["by_model"] == []


def test_the_openapi_schema_is_typed(api: TestClient) -> None:
    schemas = api.get("/openapi.json").json()["components"]["schemas"]
    summary = schemas["SummaryOut"]["properties"]
    assert summary["reliability"]["items"] == {"$ref": "#/components/schemas/BucketOut"}
    assert set(schemas["BucketOut"]["required"]) == {"lo", "hi", "n", "mean_confidence", "hit_rate"}
    assert summary["by_model"]["items"] == {"$ref": "#/components/schemas/ModelStatsOut"}
    outcome = schemas["HistoryItem"]["properties"]["outcome"]["anyOf"][0]
    assert schemas[outcome["$ref"].split("/")[-1]]["enum"] == ["target", "stop", "expired", "not_filled"]
    assert "total_return_pct" not in schemas["StatsOut"]["properties"]
