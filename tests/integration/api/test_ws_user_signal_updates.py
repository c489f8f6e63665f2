"""``user:{id}:signals`` carries a fitted signal's close to the users it was fitted for, and the
relay completes an append that was cut short; on both stacks (SQLite + in-process bus and channel
log; PostgreSQL + Redis), through the relay and the channel log the API nodes run."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest

from tradesignals.api.broadcast import Router, relay
from tradesignals.api.channel_seq import ChannelLog, Entry, Item
from tradesignals.bus import topics
from tradesignals.bus.base import Delivery
from tradesignals.bus.codec import encode
from tradesignals.config import load_settings
from tradesignals.domain.costs import DEFAULT_COSTS
from tradesignals.domain.entitlements import live_channel
from tradesignals.domain.live import LiveUpdate, live_update
from tradesignals.domain.market import AssetClass, Timeframe, to_ns
from tradesignals.domain.outcomes import Outcome, OutcomeKind
from tradesignals.domain.sessions import DAY_NS
from tradesignals.domain.signals import Direction, Signal, SignalType, new_signal_id
from tradesignals.domain.tiers import Tier
from tradesignals.wiring import Services, build_services

PASSWORD = "correct horse battery staple"
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


@pytest.fixture
async def services(stack: dict[str, object]) -> AsyncIterator[Services]:
    built = await build_services(load_settings(**stack))
    yield built
    await built.close()


def calm_bars(services: Services, symbol: str) -> None:
    """45 daily bars of a calm symbol: its volatility is measurable and every profile accepts it."""
    first = to_ns(T0) - 45 * DAY_NS
    rows = [
        (first + i * DAY_NS, symbol, *(4 * [100.0 * math.exp(0.01 * (i % 2))]), 1000.0) for i in range(45)
    ]
    frame = pd.DataFrame(rows, columns=["ts", "symbol", "open", "high", "low", "close", "volume"])
    frame["ts"] = frame["ts"].astype(np.int64)
    services.bars.upsert(Timeframe.D1, frame)


def signal_on(symbol: str) -> Signal:
    created = T0 + timedelta(minutes=1)
    return Signal(
        id=new_signal_id(),
        symbol=symbol,
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


def target_hit(signal: Signal) -> Outcome:
    filled = signal.created_at + timedelta(hours=1)
    return Outcome(
        signal_id=signal.id,
        symbol=signal.symbol,
        outcome=OutcomeKind.TARGET,
        target_index=0,
        decided_at=signal.decided_at or signal.created_at,
        filled_at=filled,
        fill_price=101.0,
        first_price=101.0,
        exit_price=121.2,
        gross_pnl_pct=20.0,
        costs_pct=0.2,
        net_pnl_pct=19.8,
        gross_r=1.0,
        net_r=0.99,
        mfe_pct=20.0,
        mae_pct=-1.0,
        holding_seconds=3600.0,
        closed_at=filled + timedelta(hours=1),
    )


def premium(services: Services, email: str, capital: float | None) -> int:
    user = services.accounts.register(email, PASSWORD)
    services.accounts.users.set_tier(user.id, Tier.PREMIUM)
    if capital is not None:
        services.audience.set_capital(user.id, capital)
    return user.id


async def until(cond: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    async with asyncio.timeout(timeout):
        while not (got := await cond()):
            await asyncio.sleep(0.01)  # polling a condition, not a fixed wait
    assert got, what
    return got


def frames(entries: Sequence[Entry]) -> list[dict[str, Any]]:
    return [orjson.loads(e.frame) for e in entries]


async def test_a_close_reaches_the_users_the_signal_was_fitted_for_as_an_update(services: Services) -> None:
    calm_bars(services, "CALM")
    signal, unfitted = signal_on("CALM"), signal_on("NOBARS")  # no bars: no profile can accept it
    rich = premium(services, "rich@example.com", 25_000)
    plain = premium(services, "plain@example.com", None)
    free = services.accounts.register("free@example.com", PASSWORD).id
    for s in (signal, unfitted):
        services.signals.add(s)
    log = services.hub.log
    stop = asyncio.Event()
    router = Router(services.audience, services.bars, services.signals)
    joined = {t: asyncio.Event() for t in (topics.SIGNALS, topics.SIGNAL_EVENTS)}
    routes = router.routes()
    tasks = [
        asyncio.create_task(
            relay(services.bus, log, t, routes[t][0], routes[t][1], "node-a", stop, joined[t], lease_s=2.0)
        )
        for t in joined
    ]
    try:
        for e in joined.values():
            await asyncio.wait_for(e.wait(), 10)
        for s in (signal, unfitted):
            await services.bus.publish(topics.SIGNALS, s.symbol, encode(s))
        await until(lambda: log.current(f"user:{plain}:signals"), "the new signal never arrived")
        for s in (signal, unfitted):
            outcome = target_hit(s)
            assert services.signals.close_once(s.id, outcome.status, outcome.to_event())  # as the engine does
            await services.bus.publish(topics.SIGNAL_EVENTS, s.symbol, encode(outcome.to_event()))
        await until(lambda: log.current("signals"), "the public outcome never arrived")

        for uid, capital in ((rich, 25_000.0), (plain, 10_000.0)):
            new, update = frames(await log.read(f"user:{uid}:signals", 0, 10))  # nothing of `unfitted`
            assert (new["type"], new["data"]["id"], new["data"]["status"]) == ("signal", signal.id, "open")
            assert (update["seq"], update["type"]) == (2, "update")
            row = update["data"]
            assert (row["id"], row["status"], row["outcome"]) == (signal.id, "target_hit", "target")
            assert row["exit_price"] == 121.2 and row["net_r"] == 0.99 and row["win"] is True
            assert row["size"] == new["data"]["size"] and row["size"]["capital"] == capital
        assert await log.current(f"user:{free}:signals") == 0
        # the row is the one the list gives for that profile and capital (one fitting rule)
        [listed] = [
            r for r in frames(await log.read(f"user:{rich}:signals", 1, 1)) if r["data"]["id"] == signal.id
        ]
        assert listed["data"]["size"]["position_value"] > 0
    finally:
        stop.set()
        await asyncio.gather(*tasks)


async def test_a_fill_reaches_the_users_the_signal_was_fitted_for_once(services: Services) -> None:
    calm_bars(services, "CALM")
    signal = signal_on("CALM")
    services.signals.add(signal)
    uid = premium(services, "p@example.com", 25_000)
    log = services.hub.log
    stop = asyncio.Event()

    async def relayed(*updates: LiveUpdate) -> None:
        """A fresh relay node (nothing remembered) relays ``updates`` until the live channel has them."""
        joined = asyncio.Event()
        decode, route = Router(services.audience, services.bars, services.signals).routes()[
            topics.SIGNAL_LIVE
        ]
        task = asyncio.create_task(
            relay(services.bus, log, topics.SIGNAL_LIVE, decode, route, "node-a", stop, joined, lease_s=2.0)
        )
        try:
            await asyncio.wait_for(joined.wait(), 10)
            before = await log.current(live_channel(signal.id))
            await services.bus.publish_many(topics.SIGNAL_LIVE, [(signal.symbol, encode(u)) for u in updates])
            await until(
                lambda: _is(log.current(live_channel(signal.id)), before + len(updates)), "marks lost"
            )
        finally:
            stop.set()
            await task
            stop.clear()

    def mark(ts_ns: int, fill: float | None) -> LiveUpdate:
        return live_update(
            signal,
            ts_ns=ts_ns,
            price=102.0,
            fill=fill,
            filled_ns=None if fill is None else 1_767_366_000_000_000_000,
            costs=DEFAULT_COSTS[AssetClass.EQUITY],
            probability=0.5,
            model_version="m",
        )

    await relayed(mark(1, None), mark(2, 101.5), mark(3, 101.5))  # pending, then filled twice
    [update] = frames(await log.read(f"user:{uid}:signals", 0, 10))
    assert (update["type"], update["data"]["id"], update["data"]["status"]) == ("update", signal.id, "open")
    assert update["data"]["fill_price"] == 101.5 and update["data"]["filled_at"].startswith(
        "2026-01-02T15:00"
    )
    assert update["data"]["size"]["capital"] == 25_000.0
    await relayed(mark(4, 101.5))  # another node (a restart, a takeover) sees the fill: not again
    assert await log.current(f"user:{uid}:signals") == 1


async def test_a_fill_lookup_that_fails_keeps_the_marks_and_tries_the_fill_on_a_later_mark(
    services: Services,
) -> None:
    calm_bars(services, "CALM")
    signal = signal_on("CALM")
    services.signals.add(signal)
    uid = premium(services, "p@example.com", None)
    router = Router(services.audience, services.bars, services.signals)
    update = live_update(
        signal,
        ts_ns=1,
        price=102.0,
        fill=101.5,
        filled_ns=1,
        costs=DEFAULT_COSTS[AssetClass.EQUITY],
        probability=None,
        model_version="m",
    )

    class Away:
        def premium_users(self) -> list[Any]:
            raise RuntimeError("database away")

    router.audience = Away()  # type: ignore[assignment]
    [first] = await router.live([Delivery(topics.SIGNAL_LIVE, 0, "CALM", "1-0", update, 1)])
    assert [(c, t) for c, t, *_ in first] == [(live_channel(signal.id), "live")]  # the mark still goes
    router.audience = services.audience
    [second] = await router.live([Delivery(topics.SIGNAL_LIVE, 0, "CALM", "2-0", update, 1)])
    assert [(c, t) for c, t, *_ in second] == [
        (live_channel(signal.id), "live"),
        (f"user:{uid}:signals", "update"),
    ]


class CutShort:
    """A channel log whose first append raises after part of the work (a Redis blip mid-append)."""

    def __init__(self, inner: ChannelLog) -> None:
        self.inner = inner
        self.failures = 1

    async def append_many(self, items: Sequence[Item]) -> list[int | None]:
        if self.failures:
            self.failures -= 1
            await self.inner.append_many(items[:1])  # the first one landed, then the connection broke
            raise ConnectionError("connection reset mid-append")
        return await self.inner.append_many(items)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_the_relay_completes_an_append_cut_short_without_numbering_twice(services: Services) -> None:
    """A failed append is tried again with the same batch: a live member is not handed its unacked
    messages again, so moving on to the next fetch would leave them undelivered until a restart."""
    log = CutShort(services.hub.log)
    stop = asyncio.Event()
    joined = asyncio.Event()
    decode, route = Router().routes()[topics.SYSTEM_ALERTS]
    task = asyncio.create_task(
        relay(services.bus, log, topics.SYSTEM_ALERTS, decode, route, "node-a", stop, joined)
    )
    try:
        await asyncio.wait_for(joined.wait(), 10)
        await services.bus.publish_many(topics.SYSTEM_ALERTS, [("model", encode({"n": n})) for n in range(3)])
        await until(
            lambda: _is(log.inner.current("system:alerts"), 3), "the batch was never appended in full"
        )
        got = frames(await log.inner.read("system:alerts", 0, 10))
        assert [(f["seq"], f["data"]["n"]) for f in got] == [(1, 0), (2, 1), (3, 2)]  # none twice
    finally:
        stop.set()
        await task


async def _is(value: Any, expected: object) -> bool:
    return bool(await value == expected)


async def test_a_relay_stopped_while_redis_is_away_ends_cleanly(services: Services) -> None:
    """Stopping mid-retry leaves the batch unacked for another member; the task does not fail."""
    tried = asyncio.Event()

    class Away:
        async def append_many(self, items: Sequence[Item]) -> list[int | None]:
            tried.set()
            raise ConnectionError("Redis away")

    stop = asyncio.Event()
    joined = asyncio.Event()
    decode, route = Router().routes()[topics.SYSTEM_ALERTS]
    away: Any = Away()
    task = asyncio.create_task(
        relay(services.bus, away, topics.SYSTEM_ALERTS, decode, route, "n", stop, joined)
    )
    await asyncio.wait_for(joined.wait(), 10)
    await services.bus.publish(topics.SYSTEM_ALERTS, "model", encode({"n": 1}))
    await asyncio.wait_for(tried.wait(), 10)
    stop.set()
    await asyncio.wait_for(task, 10)  # returns: no exception
