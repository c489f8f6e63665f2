"""BinanceFeed against a local server speaking Binance's documented combined-stream format."""

from __future__ import annotations

import asyncio
import random
import socket
from collections import Counter

import pytest

from tradesignals.domain.market import Bar, Tick, Timeframe
from tradesignals.marketdata.feeds._reconnect import Backoff
from tradesignals.marketdata.feeds.base import FeedError
from tradesignals.marketdata.feeds.binance import BinanceFeed

FAST = Backoff(initial=0.01, maximum=0.05)
MS = 1_000_000

# tests/fixtures/wire/binance/stream.json, normalised by hand: frame 2 is a kline still forming
# (x: false) and yields nothing.
EXPECTED = [
    Tick("BTCUSDT", 1672515782134 * MS, 16541.21, 0.0021),
    Tick("ETHUSDT", 1672515782501 * MS, 1196.45, 0.51),
    Tick("BTCUSDT", 1672515799010 * MS, 16541.2, 0.1),
    Bar("BTCUSDT", Timeframe.M1, 1672515780000 * MS, 16540.0, 16545.5, 16539.1, 16541.2, 12.345),
    Tick("ETHUSDT", 1672515841203 * MS, 1196.5, 2.0),
    Bar("ETHUSDT", Timeframe.M1, 1672515780000 * MS, 1196.0, 1197.1, 1195.8, 1196.45, 88.12),
    Tick("BTCUSDT", 1672515841998 * MS, 16542.0, 1.25),
]
ALL_STREAMS = "btcusdt@trade/btcusdt@kline_1m/ethusdt@trade/ethusdt@kline_1m"


@pytest.fixture
def frames(wire) -> list:
    return wire.fixture("binance", "stream")["frames"]


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_trades_and_closed_klines_become_ticks_and_bars(wire, frames, take) -> None:
    server = await wire.binance(wire.send(*frames))
    feed = BinanceFeed(["btcusdt", "ETHUSDT"], url=server.url, backoff=FAST)
    try:
        events = await take(feed.stream(), len(EXPECTED))
    finally:
        await feed.close()

    assert events == EXPECTED
    assert feed.symbols() == ["BTCUSDT", "ETHUSDT"]
    assert server.sessions[0].path == f"/stream?streams={ALL_STREAMS}"
    assert feed.rejected == Counter()
    assert feed.reconnects == Counter()


async def test_a_drop_mid_stream_reconnects_resubscribes_and_loses_nothing(wire, frames, take) -> None:
    server = await wire.binance(
        wire.send(*frames[:4]) + wire.drop(),
        wire.send(*frames[4:]),
    )
    feed = BinanceFeed(["BTCUSDT", "ETHUSDT"], url=server.url, backoff=FAST)
    try:
        events = await take(feed.stream(), len(EXPECTED))
    finally:
        await feed.close()

    assert events == EXPECTED  # nothing lost, nothing twice
    assert [s.path for s in server.sessions] == [f"/stream?streams={ALL_STREAMS}"] * 2
    assert feed.reconnects == Counter({"dropped": 1})


async def test_streams_beyond_the_url_are_subscribed_by_message_on_every_connection(
    wire, frames, take
) -> None:
    server = await wire.binance(
        wire.await_received(1) + wire.send(frames[0]) + wire.drop(),
        wire.await_received(1) + wire.send(frames[1]),
    )
    feed = BinanceFeed(["BTCUSDT", "ETHUSDT"], url=server.url, backoff=FAST, max_url_streams=1)
    try:
        events = await take(feed.stream(), 2)
    finally:
        await feed.close()

    assert events == EXPECTED[:2]
    rest = ["btcusdt@kline_1m", "ethusdt@trade", "ethusdt@kline_1m"]
    assert [s.path for s in server.sessions] == ["/stream?streams=btcusdt@trade"] * 2
    assert [s.received for s in server.sessions] == [
        [{"method": "SUBSCRIBE", "params": rest, "id": 1}],
        [{"method": "SUBSCRIBE", "params": rest, "id": 2}],
    ]


async def test_malformed_frames_are_counted_by_reason_and_skipped(wire, frames, take) -> None:
    cases = wire.fixture("binance", "malformed")["cases"]
    server = await wire.binance(wire.send(frames[0], *(c["frame"] for c in cases), frames[1]))
    feed = BinanceFeed(["BTCUSDT", "ETHUSDT"], url=server.url, backoff=FAST)
    try:
        events = await take(feed.stream(), 2)
    finally:
        await feed.close()

    assert events == EXPECTED[:2]  # the good frames on either side survive
    assert feed.rejected == Counter(c["reason"] for c in cases)
    assert len(server.sessions) == 1  # bad data is no reason to reconnect


async def test_a_replayed_trade_or_kline_is_dropped_as_duplicate(wire, frames, take) -> None:
    server = await wire.binance(wire.send(frames[0], frames[4], frames[0], frames[4], frames[7]))
    feed = BinanceFeed(["BTCUSDT"], url=server.url, backoff=FAST)
    try:
        events = await take(feed.stream(), 3)
    finally:
        await feed.close()

    assert events == [EXPECTED[0], EXPECTED[3], EXPECTED[6]]
    assert feed.rejected == Counter({"duplicate": 2})


async def test_connection_is_rotated_before_the_24h_cut_without_a_gap(wire, frames, take) -> None:
    # The old connection keeps streaming until the new one is subscribed, and both carry frame 3.
    server = await wire.binance(
        wire.send(frames[0], frames[1]) + wire.await_connections(2) + wire.send(frames[3]),
        wire.send(*frames[3:]),
    )
    feed = BinanceFeed(["BTCUSDT", "ETHUSDT"], url=server.url, backoff=FAST, max_connection_age=0.5)
    try:
        events = await take(feed.stream(), len(EXPECTED))
    finally:
        await feed.close()

    assert events == EXPECTED
    assert feed.reconnects == Counter({"rotation": 1})
    assert [s.path for s in server.sessions] == [f"/stream?streams={ALL_STREAMS}"] * 2


@pytest.mark.parametrize("notice", ["server_shutdown", "server_shutdown_event"])
async def test_server_shutdown_notice_moves_to_a_new_connection(wire, frames, take, notice: str) -> None:
    control = wire.fixture("binance", "control")
    server = await wire.binance(wire.send(frames[0], control[notice]), wire.send(frames[1]))
    feed = BinanceFeed(["BTCUSDT", "ETHUSDT"], url=server.url, backoff=FAST)
    try:
        events = await take(feed.stream(), 2)
    finally:
        await feed.close()

    assert events == EXPECTED[:2]
    assert feed.reconnects == Counter({"server_shutdown": 1})
    assert feed.rejected == Counter()


async def test_subscribe_answers_and_errors_are_not_market_data(wire, frames, take) -> None:
    control = wire.fixture("binance", "control")
    server = await wire.binance(wire.send(control["subscribe_response"], control["error"], frames[0]))
    feed = BinanceFeed(["BTCUSDT"], url=server.url, backoff=FAST)
    try:
        events = await take(feed.stream(), 1)
    finally:
        await feed.close()

    assert events == EXPECTED[:1]
    assert feed.rejected == Counter({"server error": 1})


async def test_server_pings_are_answered(wire, frames, take) -> None:
    server = await wire.binance(wire.ping(b"binance-keepalive") + wire.send(frames[0]))
    feed = BinanceFeed(["BTCUSDT"], url=server.url, backoff=FAST)
    try:
        # The server sends the trade only once its ping has been answered.
        assert await take(feed.stream(), 1) == EXPECTED[:1]
    finally:
        await feed.close()
    assert server.pongs == 1


async def test_close_ends_the_stream_promptly(wire, frames) -> None:
    server = await wire.binance(wire.send(frames[0]))
    feed = BinanceFeed(["BTCUSDT"], url=server.url, backoff=FAST)
    got: list = []

    async def consume() -> None:
        async for event in feed.stream():
            got.append(event)

    task = asyncio.create_task(consume())
    async with asyncio.timeout(5):
        while not got:
            await asyncio.sleep(0.01)
    await feed.close()
    await asyncio.wait_for(task, 1.0)  # the stream ended instead of waiting for more frames
    assert got == EXPECTED[:1]


async def test_close_interrupts_the_backoff_wait() -> None:
    feed = BinanceFeed(
        ["BTCUSDT"], url=f"ws://127.0.0.1:{unused_port()}", backoff=Backoff(initial=30.0, maximum=30.0)
    )
    task = asyncio.create_task(anext(feed.stream(), None))
    async with asyncio.timeout(5):
        while not feed.failures:
            await asyncio.sleep(0.01)
    await feed.close()
    assert await asyncio.wait_for(task, 1.0) is None
    assert feed.failures == Counter({"ConnectionRefusedError": 1})


async def test_gives_up_after_max_retries_with_one_line_error() -> None:
    url = f"ws://127.0.0.1:{unused_port()}"
    feed = BinanceFeed(["BTCUSDT"], url=url, backoff=FAST, max_retries=2)
    with pytest.raises(FeedError) as raised:
        await asyncio.wait_for(anext(feed.stream()), 5)
    assert (
        str(raised.value)
        == f"binance: gave up after 3 failed connection attempts to {url}/stream?streams=btcusdt@trade/btcusdt@kline_1m"
    )
    assert feed.failures["ConnectionRefusedError"] == 3


async def test_a_refused_upgrade_is_not_retried(wire) -> None:
    server = await wire.binance()
    feed = BinanceFeed(["BTCUSDT"], url=f"{server.url}/api", backoff=FAST)
    with pytest.raises(FeedError, match=r"refused the WebSocket upgrade with HTTP 404"):
        await asyncio.wait_for(anext(feed.stream()), 5)
    assert feed.failures == Counter()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"symbols": []}, "no symbols"),
        ({"symbols": ["BTC/USDT"]}, "not a Binance symbol"),
        ({"symbols": ["BTCUSDT"], "streams": ("depth",)}, "unsupported stream 'depth'"),
        ({"symbols": [f"S{i}" for i in range(513)]}, "exceed the 1024"),
        ({"symbols": ["BTCUSDT"], "url": "https://stream.binance.com"}, "not a WebSocket URL"),
    ],
)
def test_bad_settings_fail_at_construction(kwargs: dict, message: str) -> None:
    symbols = kwargs.pop("symbols")
    with pytest.raises(FeedError, match=message):
        BinanceFeed(symbols, **kwargs)


def test_backoff_grows_exponentially_caps_and_jitters_downwards() -> None:
    backoff = Backoff(initial=0.5, maximum=30.0, factor=2.0, jitter=0.5)
    rng = random.Random(7)
    for attempt, base in [(1, 0.5), (2, 1.0), (3, 2.0), (6, 16.0), (7, 30.0), (60, 30.0)]:
        delays = [backoff.delay(attempt, rng) for _ in range(200)]
        assert all(base * 0.5 <= d <= base for d in delays), attempt
        assert max(delays) - min(delays) > base * 0.3  # spread out, not in lockstep
