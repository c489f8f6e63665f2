"""GET /api/news: stored items with sentiment and catalysts; bad parameters are 422 with a reason."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient

from tradesignals.domain.news import NewsItem, ScoredNews
from tradesignals.wiring import Services

S = 10**9
T0 = 1_591_000_000  # 2020-06-01T08:26:40Z


def add(services: Services) -> None:
    assert services.news is not None
    items = []
    for n, (symbols, label, cats) in enumerate(
        [
            (("A",), "positive", ("earnings",)),
            (("A", "AAP"), "negative", ("analyst",)),
            (("AAP",), "neutral", ("none",)),
        ]
    ):
        item = NewsItem(f"benzinga:{n}", "benzinga", (T0 + n) * S, (T0 + n) * S, symbols, f"headline {n}")
        items.append(ScoredNews(item, label, 0.8, cats, (T0 + n) * S))
    services.news.add(items)


def test_news_by_symbol_with_labels(client: TestClient, services: Services) -> None:
    add(services)
    r = client.get("/api/news", params={"symbol": "a"})
    assert r.status_code == 200
    items = r.json()["items"]
    assert [i["id"] for i in items] == ["benzinga:1", "benzinga:0"]
    assert items[0]["sentiment"] == {"label": "negative", "score": 0.8}
    assert items[0]["catalysts"] == ["analyst"]
    assert items[0]["symbols"] == ["A", "AAP"]
    assert items[1]["received_at"] == "2020-06-01T08:26:40Z"


def test_news_since_is_on_received_time(client: TestClient, services: Services) -> None:
    add(services)
    r = client.get("/api/news", params={"since": "2020-06-01T08:26:41Z"})
    assert [i["id"] for i in r.json()["items"]] == ["benzinga:2", "benzinga:1"]


def test_bad_parameters_are_422_with_reason(client: TestClient) -> None:
    r = client.get("/api/news", params={"since": "2020-06-01T00:00:00"})
    assert r.status_code == 422 and "time zone" in r.json()["detail"]
    assert client.get("/api/news", params={"since": "yesterday"}).status_code == 422
    assert client.get("/api/news", params={"symbol": "A;DROP"}).status_code == 422
    assert client.get("/api/news", params={"limit": 0}).status_code == 422


def _recent(services: Services, n_live: int, n_old: int, symbol: str = "A") -> None:
    """``n_live`` items received in the last minutes and ``n_old`` received hours ago."""
    import time

    assert services.news is not None
    now = time.time_ns()
    rows = [(f"live:{k}", now - (k + 1) * 60 * S) for k in range(n_live)]
    rows += [(f"old:{k}", now - (3 * 3600 + k) * S) for k in range(n_old)]
    services.news.add(
        ScoredNews(NewsItem(i, "t", at, at, (symbol,), f"headline {i}"), "neutral", 0.5, ("none",), at)
        for i, at in rows
    )


def test_free_callers_get_full_pages_of_history_and_are_told_of_the_delay(
    client: TestClient,
    services: Services,
    user_factory: Callable[..., dict[str, str]],
    premium: dict[str, str],
) -> None:
    """The delay is part of the query: a page of 2 for a free caller holds 2 old items, not the 2
    newest filtered down to none."""
    _recent(services, n_live=3, n_old=3)
    free = user_factory("free@example.com")
    for headers in ({}, free):
        body = client.get("/api/news", params={"limit": 2, "symbol": "A"}, headers=headers).json()
        assert [i["id"] for i in body["items"]] == ["old:0", "old:1"]
        assert body["delayed"]["minutes"] == 60 and body["delayed"]["reason"].startswith("news received")
        unfiltered = client.get("/api/news", params={"limit": 2}, headers=headers).json()
        assert [i["id"] for i in unfiltered["items"]] == ["old:0", "old:1"]
    body = client.get("/api/news", params={"limit": 2}, headers=premium).json()
    assert [i["id"] for i in body["items"]] == ["live:0", "live:1"] and body["delayed"] is None


def test_the_delay_is_a_setting(tmp_path: Path) -> None:
    import asyncio

    from tradesignals.api.app import create_app
    from tradesignals.config import load_settings
    from tradesignals.wiring import build_services

    services = asyncio.run(
        build_services(load_settings(mode="embedded", home=tmp_path, news_public_delay_min=0))
    )
    _recent(services, n_live=1, n_old=1)
    with TestClient(create_app(services, roles=frozenset({"api"}))) as client:
        body = client.get("/api/news").json()
        assert [i["id"] for i in body["items"]] == ["live:0", "old:0"]  # nothing held back at 0 minutes
        assert body["delayed"] is None


def test_news_features_from_the_live_state(client: TestClient, services: Services) -> None:
    from tradesignals.domain.news import NewsItem, ScoredNews

    item = NewsItem("t:1", "t", T0 * S, T0 * S, ("A",), "Agilent beats")
    services.news_features.add(ScoredNews(item, "positive", 0.9, ("earnings",), T0 * S))
    r = client.get("/api/news/features", params={"symbol": "a", "at": "2020-06-01T09:00:00Z"})
    assert r.status_code == 200
    body = r.json()
    assert body["symbol"] == "A" and body["at"] == "2020-06-01T09:00:00Z"
    f = body["features"]
    assert f["news_count_1d"] == 1.0 and f["news_sentiment_1d"] == 0.9 and f["news_earnings_1d"] == 1.0
    assert f["news_analyst_1d"] == 0.0
    before = client.get("/api/news/features", params={"symbol": "A", "at": "2020-06-01T08:00:00Z"}).json()
    assert before["features"]["news_count_1d"] == 0.0  # received after `at`: not known yet
    assert (
        client.get("/api/news/features", params={"symbol": "A", "at": "2020-06-01T09:00:00"}).status_code
        == 422
    )
    assert client.get("/api/news/features").status_code == 422


def test_signal_explanation_cites_stored_news(
    client: TestClient, services: Services, premium: dict[str, str]
) -> None:
    from datetime import UTC, datetime, timedelta

    from tradesignals.domain.signals import Direction, Signal, SignalType

    created = datetime(2020, 6, 1, 9, 0, tzinfo=UTC)
    sig = Signal(
        id="0123456789abcdef012345",
        symbol="A",
        type=SignalType.SWING,
        direction=Direction.LONG,
        entry=100.0,
        stop=95.0,
        targets=(105.0,),
        confidence=0.6,
        created_at=created,
        expires_at=created + timedelta(days=3),
        model_version="test-1",
    )
    services.signals.add(sig)
    add(services)
    # the text names the plan's levels: a live signal's explanation is for those who may see it
    assert client.get(f"/api/signals/{sig.id}/explanation").status_code == 403
    r = client.get(f"/api/signals/{sig.id}/explanation", headers=premium)
    assert r.status_code == 200
    body = r.json()
    assert body["citations"] == ["benzinga:1", "benzinga:0"]
    assert "[benzinga:1]" in body["text"] and body["model"] == "template"
    assert client.get("/api/signals/ffffffffffffffffffffff/explanation").status_code == 404
