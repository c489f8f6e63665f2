"""GET /api/signals?profile=…&capital=…: the signals a risk profile accepts, each with its size.

Volatility comes from real stored bars (the embedded Parquet store) with a known realised volatility,
so the filter the API applies is the one ``domain.risk.fit`` states, on a number we can compute.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from tradesignals.domain.market import Timeframe, to_ns
from tradesignals.domain.risk import PRESETS, ProfileName
from tradesignals.domain.sessions import DAY_NS
from tradesignals.domain.signals import Direction, Signal, SignalType
from tradesignals.wiring import Services

T0 = datetime(2026, 3, 2, 21, 0, tzinfo=UTC)  # the decisions: a session close
ORDER = [ProfileName.CONSERVATIVE, ProfileName.MODERATE, ProfileName.AGGRESSIVE]

# Per-bar log move of each symbol's daily closes, alternating up and down: annualised volatility
# is move × √252 — CALM 0.16 (every profile), MID 0.40 (not conservative), WILD 1.27 (aggressive only).
MOVES = {"CALM": 0.01, "MID": 0.025, "WILD": 0.08}


def seed_bars(services: Services) -> None:
    rows = []
    first = to_ns(datetime(2026, 1, 20, tzinfo=UTC))
    for symbol, move in MOVES.items():
        for i in range(42):  # through 2026-03-02, the decision's own day
            close = 100.0 * math.exp(move * (i % 2))
            rows.append((first + i * DAY_NS, symbol, close, close, close, close, 1000.0))
        # A bar after the decisions, far off: it must never count.
        rows.append((first + 42 * DAY_NS, symbol, 900.0, 900.0, 900.0, 900.0, 1000.0))
    frame = pd.DataFrame(rows, columns=["ts", "symbol", "open", "high", "low", "close", "volume"])
    frame["ts"] = frame["ts"].astype(np.int64)
    services.bars.upsert(Timeframe.D1, frame)


def make_signal(
    i: int,
    symbol: str,
    confidence: float,
    base_rate: float | None = 0.25,
    type: SignalType = SignalType.SWING,
    stop: float = 80.0,  # 20 % away: sizes 2.5 / 5 / 10 % of capital, under every cap
    rank: float | None = None,
) -> Signal:
    created = T0 + timedelta(minutes=i)
    return Signal(
        id=f"{int(created.timestamp() * 1000):012x}{i:010x}",
        symbol=symbol,
        type=type,
        direction=Direction.LONG,
        entry=100.0,
        stop=stop,
        targets=(120.0, 140.0),
        confidence=confidence,
        created_at=created,
        expires_at=created + timedelta(days=5),
        model_version="swing-test",
        decided_at=T0,
        base_rate=base_rate,
        confidence_rank=rank,
    )


# name -> (signal, the profiles expected to accept it). Base rate 0.25: every profile needs an edge
# >= 0 (confidence >= 0.25) and a rank of at least 0.90 (conservative), 0.75 (moderate), 0.50
# (aggressive) among the model's own confidences; a signal without a rank counts as 0.50.
CASES: dict[str, tuple[Signal, set[ProfileName]]] = {
    "top tenth": (make_signal(0, "CALM", 0.30, rank=0.95), set(ORDER)),
    "top quarter": (make_signal(1, "CALM", 0.27, rank=0.80), {ProfileName.MODERATE, ProfileName.AGGRESSIVE}),
    "top half": (make_signal(2, "CALM", 0.26, rank=0.60), {ProfileName.AGGRESSIVE}),
    "bottom half": (make_signal(3, "CALM", 0.30, rank=0.40), set()),
    "edge 0": (make_signal(4, "CALM", 0.25, rank=0.90), set(ORDER)),
    "edge-1": (make_signal(5, "CALM", 0.24, rank=1.0), set()),  # no rank makes up for a negative edge
    "mid vol": (make_signal(6, "MID", 0.35, rank=0.95), {ProfileName.MODERATE, ProfileName.AGGRESSIVE}),
    "wild vol": (make_signal(7, "WILD", 0.35, rank=0.95), {ProfileName.AGGRESSIVE}),
    "no bars": (make_signal(8, "NOBARS", 0.35, rank=0.95), set()),
    "day type": (make_signal(9, "CALM", 0.35, type=SignalType.DAY, rank=0.95), {ProfileName.AGGRESSIVE}),
    "no rank": (make_signal(10, "CALM", 0.30), {ProfileName.AGGRESSIVE}),  # +5 but no rank
    "rule-based": (make_signal(11, "CALM", 0.55, base_rate=None), {ProfileName.AGGRESSIVE}),  # +5 over 0.5
}


@pytest.fixture
def client(client: TestClient, premium: dict[str, str]) -> TestClient:
    """A premium caller: open signals are theirs to see (anonymous and free callers see none)."""
    client.headers.update(premium)
    return client


@pytest.fixture
def seeded(services: Services) -> dict[str, Signal]:
    seed_bars(services)
    for signal, _ in CASES.values():
        services.signals.add(signal)
    return {name: s for name, (s, _) in CASES.items()}


def fitted(client: TestClient, **params: Any) -> dict[str, dict[str, Any]]:
    r = client.get("/api/signals", params=params)
    assert r.status_code == 200, r.text
    return {s["id"]: s for s in r.json()["items"]}


def test_each_profile_gets_the_signals_it_accepts_nested(
    client: TestClient, seeded: dict[str, Signal]
) -> None:
    got = {p: set(fitted(client, profile=p.value)) for p in ORDER}
    for name, (signal, accepted_by) in CASES.items():
        assert {p for p in ORDER if signal.id in got[p]} == accepted_by, name
    assert got[ProfileName.CONSERVATIVE] <= got[ProfileName.MODERATE] <= got[ProfileName.AGGRESSIVE]
    assert got[ProfileName.CONSERVATIVE]  # every profile receives signals
    own = fitted(client)  # a premium user who has not answered the questionnaire: moderate, sized
    assert set(own) == got[ProfileName.MODERATE] and all(
        s["size"]["profile"] == "moderate" for s in own.values()
    )
    everything = {s.id: client.get(f"/api/signals/{s.id}").json() for s, _ in CASES.values()}
    assert all(s["size"] is None for s in everything.values())
    # the rank the profiles filtered on is the one stored and shown, null where there is none
    assert {i: s["confidence_rank"] for i, s in everything.items()} == {
        s.id: s.confidence_rank for s, _ in CASES.values()
    }


@pytest.mark.parametrize(("profile", "pct"), [("conservative", 2.5), ("moderate", 5.0), ("aggressive", 10.0)])
def test_sizes_for_the_stated_capital(
    client: TestClient, seeded: dict[str, Signal], profile: str, pct: float
) -> None:
    s = seeded["top tenth"]
    size = fitted(client, profile=profile, capital=25_000)[s.id]["size"]
    preset = PRESETS[ProfileName(profile)]
    assert size["profile"] == profile and size["capital"] == 25_000
    assert size["position_pct"] == pytest.approx(pct) and size["notes"] == []
    assert size["position_value"] == pytest.approx(250.0 * pct) and size["units"] == pytest.approx(2.5 * pct)
    # Stopped out, the position loses exactly the profile's risk per trade.
    assert size["risk_amount"] == pytest.approx(25_000 * preset.risk_per_trade_pct / 100)
    assert size["edge"] == pytest.approx(0.05)
    assert size["volatility"] == pytest.approx(0.01 * math.sqrt(252))  # the later 900 bar is not counted


def test_every_size_is_within_its_caps(client: TestClient, services: Services) -> None:
    seed_bars(services)
    for i, stop in enumerate((99.9, 99.0, 97.0, 90.0, 60.0)):  # tight stops ask for huge positions
        services.signals.add(make_signal(20 + i, "CALM", 0.4, stop=stop, rank=0.95))
    for p in ORDER:
        preset = PRESETS[p]
        items = fitted(client, profile=p.value, capital=10_000).values()
        assert len(items) == 5
        for item in items:
            size = item["size"]
            assert 0 < size["position_pct"] <= preset.max_position_pct
            assert size["risk_amount"] <= 10_000 * preset.risk_per_trade_pct / 100 * (1 + 1e-9)
            uncapped = preset.risk_per_trade_pct / ((item["entry"] - item["stop"]) / item["entry"])
            assert size["position_pct"] == pytest.approx(min(uncapped, preset.max_position_pct))
            assert bool(size["notes"]) == (uncapped > preset.max_position_pct)  # a cap that bound says so


def test_the_cursor_runs_over_the_unfiltered_page(client: TestClient, seeded: dict[str, Signal]) -> None:
    seen: set[str] = set()
    params: dict[str, Any] = {"profile": "conservative", "limit": 2}
    while True:
        page = client.get("/api/signals", params=params).json()
        seen |= {s["id"] for s in page["items"]}
        if page["next_before"] is None:
            break
        params["before"] = page["next_before"]
    assert seen == set(fitted(client, profile="conservative", limit=500))
    assert seen == {seeded["top tenth"].id, seeded["edge 0"].id}  # 2 of 12, over 6 pages of 2


def test_anonymous_callers_get_no_open_signal_whatever_the_profile(
    client: TestClient, seeded: dict[str, Signal]
) -> None:
    del client.headers["authorization"]
    for profile in ORDER:
        assert fitted(client, profile=profile.value) == {}
    assert fitted(client) == {}


@pytest.mark.parametrize(
    "params",
    [
        {"profile": "reckless"},
        {"profile": "moderate", "capital": 99},
    ],
)
def test_bad_profile_parameters_are_422_for_anonymous_callers_too(
    client: TestClient, params: dict[str, Any]
) -> None:
    del client.headers["authorization"]
    assert client.get("/api/signals", params=params).status_code == 422


@pytest.mark.parametrize(
    "params",
    [
        {"profile": "reckless"},
        {"profile": "moderate", "capital": 99},
        {"profile": "moderate", "capital": 1e10},
        {"profile": "moderate", "capital": "nan"},
        {"profile": "moderate", "capital": "inf"},
        {"profile": "moderate", "capital": "lots"},
        {"limit": 2**64},
        {"limit": -(2**63) - 1},
    ],
)
def test_bad_profile_parameters_are_422_with_a_reason(client: TestClient, params: dict[str, Any]) -> None:
    r = client.get("/api/signals", params=params)
    assert r.status_code == 422, params
    assert r.json()["detail"]
