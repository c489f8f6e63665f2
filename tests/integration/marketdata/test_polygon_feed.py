"""PolygonFeed against a local server speaking Polygon's documented WebSocket protocol."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from tradesignals.domain.market import Bar, Tick, Timeframe
from tradesignals.marketdata.feeds._reconnect import Backoff
from tradesignals.marketdata.feeds.base import FeedError
from tradesignals.marketdata.feeds.polygon import PolygonFeed

FAST = Backoff(initial=0.01, maximum=0.05)
KEY = "pOlYgOnTeStKeY"
MS = 1_000_000

# tests/fixtures/wire/polygon/stocks.json, normalised by hand; frame 2 is a quote (ignored),
# frames 3 and 4 batch two events each.
EXPECTED = [
    Tick("AAPL", 1536036818784 * MS, 114.125, 100.0),
    Tick("MSFT", 1536036818791 * MS, 108.49, 50.0),
    Tick("AAPL", 1536036819456 * MS, 114.13, 20.0),
    Tick("AAPL", 1536036819460 * MS, 114.14, 300.0),
    Bar("AAPL", Timeframe.M1, 1536036780000 * MS, 114.04, 114.15, 114.01, 114.125, 4110.0),
    Bar("MSFT", Timeframe.M1, 1536036780000 * MS, 108.45, 108.52, 108.41, 108.49, 2250.0),
    Tick("MSFT", 1536036841002 * MS, 108.5, 75.0),
]
AUTH = {"action": "auth", "params": KEY}


@pytest.fixture
def stocks(wire) -> dict:
    return wire.fixture("polygon", "stocks")


def feed_for(url: str, **kwargs) -> PolygonFeed:
    return PolygonFeed(["aapl", "MSFT"], key=KEY, url=url, backoff=FAST, **kwargs)


async def test_trades_and_minute_aggregates_become_ticks_and_bars(wire, stocks, take) -> None:
    server = await wire.polygon(wire.send(*stocks["frames"]), key=KEY)
    feed = feed_for(server.url)
    try:
        events = await take(feed.stream(), len(EXPECTED))
    finally:
        await feed.close()

    assert events == EXPECTED
    assert server.sessions[0].received == [AUTH, {"action": "subscribe", "params": stocks["subscribed"]}]
    assert feed.symbols() == ["AAPL", "MSFT"]
    assert feed.rejected == Counter()


async def test_crypto_pairs_are_subscribed_as_polygon_spells_them_and_emitted_as_ours(wire, take) -> None:
    crypto = wire.fixture("polygon", "crypto")
    server = await wire.polygon(wire.send(*crypto["frames"]), key=KEY, cluster="crypto")
    feed = PolygonFeed(["btc-usd"], key=KEY, cluster="crypto", url=server.url, backoff=FAST)
    try:
        events = await take(feed.stream(), 2)
    finally:
        await feed.close()

    assert events == [
        Tick("BTCUSD", 1610462007425 * MS, 33021.9, 0.01616617),
        Bar("BTCUSD", Timeframe.M1, 1610461980000 * MS, 33001.2, 33050.0, 32990.1, 33021.9, 951.6112),
    ]
    assert server.sessions[0].received[1] == {"action": "subscribe", "params": crypto["subscribed"]}
    assert feed.symbols() == ["BTCUSD"]


async def test_a_drop_mid_stream_reconnects_reauthenticates_and_resubscribes(wire, stocks, take) -> None:
    frames = stocks["frames"]
    server = await wire.polygon(wire.send(*frames[:3]) + wire.drop(), wire.send(*frames[3:]), key=KEY)
    feed = feed_for(server.url)
    try:
        events = await take(feed.stream(), len(EXPECTED))
    finally:
        await feed.close()

    assert events == EXPECTED  # nothing lost, nothing twice
    subscribe = {"action": "subscribe", "params": stocks["subscribed"]}
    assert [s.received for s in server.sessions] == [[AUTH, subscribe], [AUTH, subscribe]]
    assert feed.reconnects == Counter({"dropped": 1})


async def test_malformed_events_are_counted_and_valid_siblings_kept(wire, stocks, take) -> None:
    frames = stocks["frames"]
    cases = wire.fixture("polygon", "malformed")["cases"]
    mixed = [*frames[0], *cases[3]["frame"]]  # a good trade batched with one missing its price
    server = await wire.polygon(wire.send(mixed, *(c["frame"] for c in cases), frames[1]), key=KEY)
    feed = feed_for(server.url)
    try:
        events = await take(feed.stream(), 2)
    finally:
        await feed.close()

    assert events == EXPECTED[:2]
    assert feed.rejected == Counter(c["reason"] for c in cases) + Counter({"missing field": 1})
    assert len(server.sessions) == 1


async def test_a_replayed_aggregate_is_dropped_as_duplicate(wire, stocks, take) -> None:
    frames = stocks["frames"]
    server = await wire.polygon(wire.send(frames[4], frames[4], frames[5]), key=KEY)
    feed = feed_for(server.url)
    try:
        events = await take(feed.stream(), 3)
    finally:
        await feed.close()

    assert events == EXPECTED[4:]
    assert feed.rejected == Counter({"duplicate": 2})


async def test_a_rejected_key_ends_the_stream_with_one_line_and_no_retry(wire) -> None:
    server = await wire.polygon(key=KEY)
    feed = PolygonFeed(["AAPL"], key="wrong-key", url=server.url, backoff=FAST)
    with pytest.raises(FeedError) as raised:
        await asyncio.wait_for(anext(feed.stream()), 5)

    assert str(raised.value) == f"polygon: {server.url} rejected the API key (authentication failed)"
    assert len(server.sessions) == 1


async def test_max_connections_is_retried(wire, stocks, take) -> None:
    control = wire.fixture("polygon", "control")
    server = await wire.polygon(
        [], wire.send(stocks["frames"][0]), key=KEY, auth_replies=[control["max_connections"]]
    )
    feed = feed_for(server.url)
    try:
        assert await take(feed.stream(), 1) == EXPECTED[:1]
    finally:
        await feed.close()
    assert feed.failures == Counter({"TransientFeedError": 1})
    assert len(server.sessions) == 2


async def test_close_ends_the_stream_promptly(wire, stocks) -> None:
    server = await wire.polygon(wire.send(stocks["frames"][0]), key=KEY)
    feed = feed_for(server.url)
    got: list = []

    async def consume() -> None:
        async for event in feed.stream():
            got.append(event)

    task = asyncio.create_task(consume())
    async with asyncio.timeout(5):
        while not got:
            await asyncio.sleep(0.01)
    await feed.close()
    await asyncio.wait_for(task, 1.0)
    assert got == EXPECTED[:1]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"key": ""}, "API key is required"),
        ({"cluster": "forex"}, "unsupported cluster 'forex'"),
        ({"channels": ("Q",)}, "stocks channels must be among T, AM"),
        ({"cluster": "crypto", "symbols": ["BTCUSD"]}, "must be written BASE-QUOTE"),
    ],
)
def test_bad_settings_fail_at_construction(kwargs: dict, message: str) -> None:
    args = {"symbols": ["AAPL"], "key": KEY, **kwargs}
    with pytest.raises(FeedError, match=message):
        PolygonFeed(args.pop("symbols"), **args)
