"""/api/history/summary from running figures: the same numbers as from scratch, on SQLite and on
the real PostgreSQL, as closes arrive between requests; and reads on the API's own pool.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tradesignals.api.app import create_app
from tradesignals.api.routes.history import SummaryOut, summary_from_scratch
from tradesignals.config import load_settings
from tradesignals.domain.outcomes import Outcome, OutcomeKind
from tradesignals.domain.signals import Direction, Signal, SignalEvent, SignalEventKind, SignalType
from tradesignals.engine.summary_cache import SummaryCache, SummaryFilter
from tradesignals.wiring import Services, build_services

T0 = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)
SYMBOLS = ("AAPL", "MSFT", "TSLA")


@pytest.fixture
def services(db_url: str, tmp_path: Path) -> Services:
    return asyncio.run(build_services(load_settings(home=tmp_path, mode="embedded", database_url=db_url)))


@pytest.fixture
def api(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services)) as client:
        yield client


def make_signal(rng: random.Random, i: int) -> Signal:
    created = T0 + timedelta(hours=i)
    return Signal(
        id=f"{int(T0.timestamp() * 1000):012x}{i:010x}",
        symbol=rng.choice(SYMBOLS),
        type=rng.choice([SignalType.SWING, SignalType.DAY]),
        direction=Direction.LONG,
        entry=100.0,
        stop=95.0,
        targets=(105.0,),
        confidence=rng.choice([0.22, 0.31, 0.35, 0.4, rng.random()]),
        created_at=created,
        expires_at=created + timedelta(days=3),
        model_version=rng.choice(["m1", "m2"]),
        decided_at=created,
    )


def close_event(rng: random.Random, s: Signal, at: datetime) -> SignalEvent:
    if rng.random() < 0.1:  # legacy or malformed data is counted apart, never raised
        data: dict[str, Any] = rng.choice(
            [{"outcome": "stop", "pnl_pct": -5.0, "r_multiple": -1.0}, {"outcome": "bogus"}]
        )
        return SignalEvent(s.id, SignalEventKind.CLOSED, at, data)
    net_r = rng.choice([None, rng.uniform(-2, 3), 0.0, round(rng.uniform(-2, 2), 1)])
    kind = OutcomeKind.NOT_FILLED if net_r is None else OutcomeKind.TARGET if net_r > 0 else OutcomeKind.STOP
    gross = None if net_r is None else net_r + 0.1
    out = Outcome(
        signal_id=s.id,
        symbol=s.symbol,
        outcome=kind,
        target_index=0 if kind is OutcomeKind.TARGET else None,
        decided_at=s.created_at,
        filled_at=None if net_r is None else s.created_at,
        fill_price=None if net_r is None else 100.0,
        first_price=94.0 if net_r is None else None,
        exit_price=None if gross is None else 100.0 + 5 * gross,
        gross_pnl_pct=None if gross is None else 5 * gross,
        costs_pct=None if net_r is None else 0.5,
        net_pnl_pct=None if net_r is None else 5 * net_r,
        gross_r=gross,
        net_r=net_r,
        mfe_pct=None if gross is None else max(0.0, gross),
        mae_pct=None if gross is None else min(0.0, gross),
        holding_seconds=60.0,
        closed_at=at,
    )
    return out.to_event()


FILTERS: list[dict[str, str]] = [
    {},
    {"symbol": "aapl"},
    {"type": "day"},
    {"month": "2026-01"},
    {"month": "2026-02", "symbol": "MSFT"},
    {"symbol": "NONE"},
]


def expected(services: Services, params: dict[str, str]) -> dict[str, Any]:
    scratch = summary_from_scratch(
        services.signals,
        symbol=params.get("symbol"),
        type=SignalType(params["type"]) if "type" in params else None,
        month=params.get("month"),
    )
    body = SummaryOut.of(scratch).model_dump(mode="json")
    body.pop("checkpoint")
    return dict(body)


def served(api: TestClient, params: dict[str, str]) -> dict[str, Any]:
    body = api.get("/api/history/summary", params=params).json()
    body.pop("checkpoint")
    return dict(body)


def test_running_summary_equals_from_scratch_as_closes_arrive(api: TestClient, services: Services) -> None:
    """Random closes in rounds, some signals closed twice; after each round every filter's answer is
    exactly (floats included) what reading every close and recomputing gives."""
    rng = random.Random(5)
    signals = [make_signal(rng, i) for i in range(60)]
    for s in signals:
        services.signals.add(s)
    for _round in range(4):
        for s in rng.sample(signals, 15):
            at = s.created_at + timedelta(days=rng.randint(1, 50))
            event = close_event(rng, s, at)
            if rng.random() < 0.5:
                services.signals.set_status(s.id, OutcomeKind.STOP.status, event)
            else:  # a second close of an already closed signal: the latest one counts
                services.signals.add_event(event)
        for params in FILTERS:
            assert served(api, params) == expected(services, params), params
    assert served(api, {})["closed"] > 20


def test_closes_after_reads_only_the_new_closes_oldest_first(services: Services) -> None:
    rng = random.Random(1)
    signals = [make_signal(rng, i) for i in range(4)]
    for s in signals:
        services.signals.add(s)
    for s in signals[:3]:
        services.signals.add_event(close_event(rng, s, s.created_at + timedelta(days=1)))
    services.signals.add_event(close_event(rng, signals[0], signals[0].created_at + timedelta(days=2)))
    every = services.signals.closes_after(0)
    assert [c.signal.id for c in every] == [signals[0].id, signals[1].id, signals[2].id, signals[0].id]
    seqs = [c.close.seq for c in every]
    assert seqs == sorted(seqs)
    assert [c.close.seq for c in services.signals.closes_after(seqs[1])] == seqs[2:]
    assert services.signals.closes_after(seqs[-1]) == []


def test_the_cache_reads_each_close_once(services: Services) -> None:
    """O(new closes) per refresh: a request after nothing closed reads nothing."""
    rng = random.Random(2)
    signals = [make_signal(rng, i) for i in range(10)]
    for s in signals:
        services.signals.add(s)
        services.signals.add_event(close_event(rng, s, s.created_at + timedelta(days=1)))
    cache = SummaryCache(services.signals)
    assert cache.refresh() == 10 and cache.refresh() == 0
    before = cache.summary(SummaryFilter(symbol="AAPL"))
    services.signals.add_event(close_event(rng, signals[0], signals[0].created_at + timedelta(days=9)))
    assert cache.refresh() == 1 and cache.closes == 10
    assert cache.summary(SummaryFilter(symbol="AAPL")) == summary_from_scratch(
        services.signals, symbol="AAPL"
    )
    assert before.closed == sum(1 for s in signals if s.symbol == "AAPL")


def test_a_flood_of_filters_keeps_a_bounded_number_of_views(services: Services) -> None:
    rng = random.Random(3)
    for i in range(5):
        s = make_signal(rng, i)
        services.signals.add(s)
        services.signals.add_event(close_event(rng, s, s.created_at + timedelta(days=1)))
    cache = SummaryCache(services.signals, max_views=4)
    for n in range(50):
        assert cache.summary(SummaryFilter(symbol=f"X{n}")).closed == 0
    assert len(cache._views) == 4  # the unfiltered view and the three most recent
    assert cache.summary() == summary_from_scratch(services.signals)


def test_slow_reads_fill_the_api_pool_not_the_engine_s(api: TestClient, services: Services) -> None:
    """Every API database thread busy with a slow read: health still answers 200 and an engine
    write (on the default executor, as the engine does) completes while the reads still run."""
    import threading

    pool = api.app.state.db_pool  # type: ignore[attr-defined]
    release = threading.Event()
    started = threading.Semaphore(0)

    def slow_read() -> int:
        with services.db.connect() as conn:  # a real read that holds its thread and a connection
            started.release()
            release.wait(30)
            return int(conn.exec_driver_sql("SELECT 1").scalar_one())

    async def scenario() -> tuple[int, list[bool]]:
        reads = [asyncio.ensure_future(pool.run(slow_read)) for _ in range(pool.threads + 3)]
        for _ in range(pool.threads):
            await asyncio.to_thread(started.acquire)
        s = make_signal(random.Random(4), 999)
        await asyncio.to_thread(services.signals.add, s)  # the engine's write path
        status = (await services.check_health())["database"].ok
        pending = [not r.done() for r in reads]
        release.set()
        assert [await r for r in reads] == [1] * len(reads)
        return int(status), pending

    ok, pending = api.portal.call(scenario)  # type: ignore[union-attr]
    assert ok == 1 and all(pending)
    assert api.get("/api/health").status_code == 200


def test_the_running_figures_are_filled_at_start_not_on_the_first_request(
    services: Services,
) -> None:
    rng = random.Random(6)
    for i in range(8):
        s = make_signal(rng, i)
        services.signals.add(s)
        services.signals.add_event(close_event(rng, s, s.created_at + timedelta(days=1)))
    head = services.signals.last_close_seq()
    with TestClient(create_app(services)) as client:
        app = client.app

        async def warmed() -> int:
            await app.state.summary_warmup  # type: ignore[attr-defined]
            return int(app.state.summary_cache.last_seq)  # type: ignore[attr-defined]

        assert client.portal.call(warmed) == head > 0  # type: ignore[union-attr]
        assert served(client, {}) == expected(services, {})
