"""AlpacaFeed against a local server speaking Alpaca's documented market data v2 stream.

The last test drives alpaca-py's own ``StockDataStream`` against the same server, so the server is
checked against the official client and not only against our reading of the documentation.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime

import pytest

from tradesignals.domain.market import Bar, Tick, Timeframe, to_ns
from tradesignals.marketdata.feeds._reconnect import Backoff
from tradesignals.marketdata.feeds.alpaca import AlpacaFeed, rfc3339_ns
from tradesignals.marketdata.feeds.base import FeedError

FAST = Backoff(initial=0.01, maximum=0.05)
KEY, SECRET = "PKTEST0000000000", "s3cr3t-s3cr3t-s3cr3t"


def at(hour: int, minute: int, second: int, ns: int = 0) -> int:
    return to_ns(datetime(2021, 2, 22, hour, minute, second, tzinfo=UTC)) + ns


# tests/fixtures/wire/alpaca/stream.json, normalised by hand; frame 1 is a quote (not subscribed
# by us, ignored) and frame 2 batches two trades.
EXPECTED = [
    Tick("AAPL", at(15, 51, 44, 208_000_000), 126.55, 1.0),
    Tick("AAPL", at(15, 51, 45, 335_689_322), 126.56, 100.0),
    Tick("MSFT", at(15, 51, 45, 500_000_000), 234.51, 25.0),
    Bar("AAPL", Timeframe.M1, at(15, 51, 0), 126.5, 126.6, 126.4, 126.56, 4312.0),
    Tick("MSFT", at(15, 52, 1, 1), 234.55, 10.0),
    Bar("MSFT", Timeframe.M1, at(15, 51, 0), 234.4, 234.6, 234.3, 234.51, 1280.0),
]
AUTH = {"action": "auth", "key": KEY, "secret": SECRET}
SUBSCRIBE = {"action": "subscribe", "trades": ["AAPL", "MSFT"], "bars": ["AAPL", "MSFT"]}


@pytest.fixture
def frames(wire) -> list:
    return wire.fixture("alpaca", "stream")["frames"]


def feed_for(url: str, **kwargs) -> AlpacaFeed:
    return AlpacaFeed(["aapl", "MSFT"], key=KEY, secret=SECRET, url=url, backoff=FAST, **kwargs)


async def test_trades_and_bars_become_ticks_and_bars(wire, frames, take) -> None:
    server = await wire.alpaca(wire.send(*frames), key=KEY, secret=SECRET)
    feed = feed_for(server.url)
    try:
        events = await take(feed.stream(), len(EXPECTED))
    finally:
        await feed.close()

    assert events == EXPECTED
    assert server.sessions[0].received == [AUTH, SUBSCRIBE]
    assert feed.rejected == Counter()


async def test_a_drop_mid_stream_reconnects_reauthenticates_and_resubscribes(wire, frames, take) -> None:
    server = await wire.alpaca(
        wire.send(*frames[:3]) + wire.drop(),
        wire.send(*frames[3:]),
        key=KEY,
        secret=SECRET,
    )
    feed = feed_for(server.url)
    try:
        events = await take(feed.stream(), len(EXPECTED))
    finally:
        await feed.close()

    assert events == EXPECTED  # nothing lost, nothing twice
    assert [s.received for s in server.sessions] == [[AUTH, SUBSCRIBE], [AUTH, SUBSCRIBE]]
    assert feed.reconnects == Counter({"dropped": 1})


async def test_malformed_messages_are_counted_and_valid_siblings_kept(wire, frames, take) -> None:
    cases = wire.fixture("alpaca", "malformed")["cases"]
    mixed = [*cases[3]["frame"], *frames[0]]  # one bad trade batched with a good one
    server = await wire.alpaca(
        wire.send(*(c["frame"] for c in cases), mixed, frames[2]), key=KEY, secret=SECRET
    )
    feed = feed_for(server.url)
    try:
        events = await take(feed.stream(), 3)
    finally:
        await feed.close()

    assert events == EXPECTED[:3]
    assert feed.rejected == Counter(c["reason"] for c in cases) + Counter({"missing field": 1})
    assert len(server.sessions) == 1


async def test_a_replayed_bar_is_dropped_as_duplicate(wire, frames, take) -> None:
    server = await wire.alpaca(wire.send(frames[3], frames[3], frames[4]), key=KEY, secret=SECRET)
    feed = feed_for(server.url)
    try:
        events = await take(feed.stream(), 2)
    finally:
        await feed.close()

    assert events == [EXPECTED[3], EXPECTED[4]]
    assert feed.rejected == Counter({"duplicate": 1})


async def test_bad_credentials_end_the_stream_with_one_line_and_no_retry(wire) -> None:
    server = await wire.alpaca(key=KEY, secret=SECRET)
    feed = AlpacaFeed(["AAPL"], key=KEY, secret="not-the-secret", url=server.url, backoff=FAST)
    with pytest.raises(FeedError) as raised:
        await asyncio.wait_for(anext(feed.stream()), 5)

    message = str(raised.value)
    assert message == f"alpaca: 402 auth failed from {server.url} (check the API key and secret)"
    assert "not-the-secret" not in message
    assert len(server.sessions) == 1


async def test_a_feed_outside_the_plan_is_fatal(wire) -> None:
    control = wire.fixture("alpaca", "control")
    server = await wire.alpaca(
        key=KEY, secret=SECRET, feed="sip", auth_replies=[control["insufficient_subscription"]]
    )
    feed = AlpacaFeed(["AAPL"], key=KEY, secret=SECRET, feed="sip", url=server.url, backoff=FAST)
    with pytest.raises(FeedError, match=r"^alpaca: 409 insufficient subscription .*'iex'\)$"):
        await asyncio.wait_for(anext(feed.stream()), 5)
    assert len(server.sessions) == 1


async def test_connection_limit_is_retried_until_the_old_session_is_gone(wire, frames, take) -> None:
    control = wire.fixture("alpaca", "control")
    server = await wire.alpaca(
        [],
        wire.send(frames[0]),
        key=KEY,
        secret=SECRET,
        auth_replies=[control["connection_limit"]],
    )
    feed = feed_for(server.url)
    try:
        assert await take(feed.stream(), 1) == EXPECTED[:1]
    finally:
        await feed.close()
    assert feed.failures == Counter({"TransientFeedError": 1})
    assert len(server.sessions) == 2


async def test_close_ends_the_stream_promptly(wire, frames) -> None:
    server = await wire.alpaca(wire.send(frames[0]), key=KEY, secret=SECRET)
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
    ("text", "ns"),
    [
        ("2021-02-22T15:51:44Z", at(15, 51, 44)),
        ("2021-02-22T15:51:44.208Z", at(15, 51, 44, 208_000_000)),
        ("2021-02-22T15:51:45.335689322Z", at(15, 51, 45, 335_689_322)),
        ("2021-02-22T10:51:45.5-05:00", at(15, 51, 45, 500_000_000)),
    ],
)
def test_rfc3339_keeps_nanoseconds(text: str, ns: int) -> None:
    assert rfc3339_ns(text) == ns


@pytest.mark.parametrize(
    "text", ["2021-02-22 15:51:44", "2021-02-22T15:51:44.1234567891Z", "2021-02-22T15:51:44+0500", 17]
)
def test_rfc3339_refuses_what_it_cannot_read_exactly(text: object) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies by what is wrong
        rfc3339_ns(text)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"secret": ""}, "key and secret are required"),
        ({"feed": "nasdaq"}, "unknown feed 'nasdaq'"),
        ({"channels": ("quotes",)}, "channels must be among trades, bars"),
        ({"symbols": ["AAPL MSFT"]}, "not a stock symbol"),
    ],
)
def test_bad_settings_fail_at_construction(kwargs: dict, message: str) -> None:
    args = {"symbols": ["AAPL"], "key": KEY, "secret": SECRET, **kwargs}
    with pytest.raises(FeedError, match=message):
        AlpacaFeed(args.pop("symbols"), **args)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # alpaca-py imports websockets.legacy
async def test_alpaca_py_reads_the_same_trades_from_this_server(wire, frames, take) -> None:
    """The official SDK (MessagePack, its own handshake) agrees with the fake server and with us."""
    pytest.importorskip("msgpack")
    from alpaca.data.live.stock import StockDataStream

    server = await wire.alpaca(wire.send(*frames), key=KEY, secret=SECRET)
    received: asyncio.Queue[dict] = asyncio.Queue()

    async def on_trade(trade: dict) -> None:
        await received.put(trade)

    sdk = StockDataStream(KEY, SECRET, raw_data=True, url_override=server.url)
    sdk.subscribe_trades(on_trade, "AAPL", "MSFT")
    runner = asyncio.create_task(sdk._run_forever())  # its public run() owns the event loop
    try:
        trades = [await asyncio.wait_for(received.get(), 5) for _ in range(4)]
    finally:
        # On Python 3.11 its asyncio.wait_for(recv) swallows a cancel that lands as a frame
        # arrives, so one cancel() is not always enough to stop it.
        while not runner.done():
            runner.cancel()
            await asyncio.wait({runner}, timeout=0.2)
        await sdk.close()

    assert server.sessions[0].msgpack
    assert server.sessions[0].received == [
        {"action": "auth", "key": KEY, "secret": SECRET},
        {"action": "subscribe", "trades": ["AAPL", "MSFT"]},
    ]
    as_ticks = [Tick(t["S"], t["t"].to_unix_nano(), t["p"], float(t["s"])) for t in trades]
    assert as_ticks == [e for e in EXPECTED if isinstance(e, Tick)]
