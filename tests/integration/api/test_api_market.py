from __future__ import annotations

import pandas as pd
from fastapi.testclient import TestClient

from tradesignals.domain.market import Timeframe
from tradesignals.wiring import Services

DAY = Timeframe.D1.ns
T0 = 1_704_153_600 * 10**9  # 2024-01-02T00:00Z


def seed(services: Services, n: int = 10) -> None:
    frame = pd.DataFrame(
        {
            "ts": [T0 + i * DAY for i in range(n)],
            "symbol": ["AAPL"] * n,
            "open": [100.0 + i for i in range(n)],
            "high": [101.0 + i for i in range(n)],
            "low": [99.0 + i for i in range(n)],
            "close": [100.5 + i for i in range(n)],
            "volume": [1e6] * n,
        }
    )
    services.bars.upsert(Timeframe.D1, frame)


def test_bars_in_range_oldest_first(client: TestClient, services: Services) -> None:
    seed(services)
    r = client.get(
        "/api/market/aapl/bars", params={"timeframe": "1d", "start": "2024-01-04", "end": "2024-01-07"}
    )
    assert r.status_code == 200, r.text
    bars = r.json()
    assert [b["ts"][:10] for b in bars] == ["2024-01-04", "2024-01-05", "2024-01-06"]
    assert bars[0] == {
        "ts": "2024-01-04T00:00:00Z",
        "open": 102.0,
        "high": 103.0,
        "low": 101.0,
        "close": 102.5,
        "volume": 1e6,
    }
    tail = client.get("/api/market/AAPL/bars", params={"limit": 2}).json()
    assert [b["close"] for b in tail] == [108.5, 109.5]


def test_unknown_symbol_is_404_and_bad_ranges_are_422(client: TestClient, services: Services) -> None:
    seed(services)
    r = client.get("/api/market/ZZZZ/bars")
    assert r.status_code == 404 and "no 1d bars for ZZZZ" in r.json()["detail"]
    r = client.get("/api/market/AAPL/bars", params={"start": "2024-01-05", "end": "2024-01-05"})
    assert r.status_code == 422 and "empty range" in r.json()["detail"]
    r = client.get("/api/market/AAPL/bars", params={"start": "2024-01-05T10:00:00"})
    assert r.status_code == 422 and "no timezone" in r.json()["detail"]
    assert client.get("/api/market/AAPL/bars", params={"timeframe": "2d"}).status_code == 422
    r = client.get("/api/market/AAPL/bars", params={"start": "yesterday"})
    assert r.status_code == 422 and "start: 'yesterday' is not a date" in r.json()["detail"]
