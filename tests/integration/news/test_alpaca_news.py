"""AlpacaNewsFeed against a local server speaking Alpaca's documented real-time news stream."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime

import pytest

from tradesignals.domain.market import to_ns
from tradesignals.domain.news import NewsError, NewsItem
from tradesignals.marketdata.feeds._reconnect import Backoff
from tradesignals.news.alpaca import AlpacaNewsFeed

FAST = Backoff(initial=0.01, maximum=0.05)
KEY, SECRET = "PKTEST0000000000", "s3cr3t-s3cr3t-s3cr3t"
AUTH = {"action": "auth", "key": KEY, "secret": SECRET}
SUBSCRIBE_ALL = {"action": "subscribe", "news": ["*"]}


class Clock:
    """Received times: 1, 2, 3 … seconds after an epoch, one tick per decoded frame."""

    def __init__(self) -> None:
        self.now = to_ns(datetime(2022, 1, 28, tzinfo=UTC))

    def __call__(self) -> int:
        self.now += 1_000_000_000
        return self.now


def feed_for(url: str, symbols: tuple[str, ...] = ("*",), **kwargs: object) -> AlpacaNewsFeed:
    return AlpacaNewsFeed(symbols, key=KEY, secret=SECRET, url=url, backoff=FAST, clock=Clock(), **kwargs)  # type: ignore[arg-type]


def expected(received: list[int]) -> list[NewsItem]:
    """tests/fixtures/wire/alpaca_news/stream.json, normalised by hand."""
    return [
        NewsItem(
            "alpaca:24918784",
            "alpaca",
            to_ns(datetime(2022, 1, 5, 22, 0, 37, tzinfo=UTC)),
            received[0],
            ("CRSR",),
            "Corsair Reports Purchase Of Majority Ownership In iDisplay, No Terms Disclosed",
            "Corsair Gaming, Inc. (NASDAQ:CRSR) (\u201cCorsair\u201d), a leading global provider and innovator of "
            "high-performance gear for gamers and content creators, today announced that it acquired a 51% "
            "stake in iDisplay",
            "https://www.benzinga.com/m-a/22/01/24918784/corsair-reports-purchase-of-majority-ownership-in-idisplay-no-terms-disclosed",
        ),
        NewsItem(
            "alpaca:24918801",
            "alpaca",
            to_ns(datetime(2022, 1, 27, 21, 31, 2, tzinfo=UTC)),
            received[1],
            ("AAPL",),
            "Apple Q1 EPS $2.10 Beats $1.89 Estimate, Sales $123.9B Beat $118.3B",
            "",
            "https://www.benzinga.com/news/earnings/22/01/24918801/apple-q1-eps-beats",
        ),
        NewsItem(
            "alpaca:24918802",
            "alpaca",
            to_ns(datetime(2022, 1, 27, 21, 31, 4, 500_000, tzinfo=UTC)),
            received[1],  # batched in the same frame: received together
            ("F", "TSLA"),
            "Tesla, Ford Shares Trade Lower As Chip Shortage Persists",
            "Shares of several automakers are trading lower.",
            "https://www.benzinga.com/news/22/01/24918802/tesla-ford-shares-trade-lower",
        ),
    ]


T0 = to_ns(datetime(2022, 1, 28, tzinfo=UTC))
SECOND = 1_000_000_000


async def test_stories_become_news_items_received_when_decoded(alpaca_news, news_wire, take) -> None:
    frames = news_wire("stream")["frames"]
    server = await alpaca_news(KEY, SECRET, [frames])
    feed = feed_for(server.url)
    try:
        items = await take(feed.stream(), 3)
    finally:
        await feed.close()

    assert items == expected([T0 + SECOND, T0 + 2 * SECOND])
    assert server.received == [[AUTH, SUBSCRIBE_ALL]]
    assert feed.rejected == Counter()


async def test_symbols_are_subscribed_in_our_spelling(alpaca_news, news_wire, take) -> None:
    frames = news_wire("stream")["frames"]
    server = await alpaca_news(KEY, SECRET, [frames[1:]])
    feed = feed_for(server.url, ("aapl", "$TSLA"))
    try:
        await take(feed.stream(), 2)
    finally:
        await feed.close()
    assert server.received[0][1] == {"action": "subscribe", "news": ["AAPL", "TSLA"]}


async def test_malformed_items_are_counted_by_reason_and_valid_siblings_kept(
    alpaca_news, news_wire, take
) -> None:
    cases = news_wire("malformed")["cases"]
    frames = news_wire("stream")["frames"]
    mixed = [*cases[6]["frame"], *frames[0]]  # an undated story batched with a good one
    server = await alpaca_news(KEY, SECRET, [[*(c["frame"] for c in cases), mixed, frames[1]]])
    feed = feed_for(server.url)
    try:
        items = await take(feed.stream(), 3)
    finally:
        await feed.close()

    assert [i.id for i in items] == ["alpaca:24918784", "alpaca:24918801", "alpaca:24918802"]
    assert feed.rejected == Counter(c["reason"] for c in cases) + Counter({"no time": 1})
    assert len(server.received) == 1  # bad items never cost the connection


async def test_a_drop_reconnects_reauthenticates_resubscribes_and_drops_the_resent_story(
    alpaca_news, news_wire, take, drop
) -> None:
    frames = news_wire("stream")["frames"]
    # The second connection re-sends the first story (as a reconnect can): dropped by id.
    server = await alpaca_news(KEY, SECRET, [[frames[0], drop], [frames[0], frames[1]]])
    feed = feed_for(server.url)
    try:
        items = await take(feed.stream(), 3)
    finally:
        await feed.close()

    assert [i.id for i in items] == ["alpaca:24918784", "alpaca:24918801", "alpaca:24918802"]
    assert server.received == [[AUTH, SUBSCRIBE_ALL], [AUTH, SUBSCRIBE_ALL]]
    assert feed.reconnects == Counter({"dropped": 1})
    assert feed.rejected == Counter({"duplicate": 1})


async def test_a_connection_limit_is_retried(alpaca_news, news_wire, take) -> None:
    control = news_wire("control")
    frames = news_wire("stream")["frames"]
    server = await alpaca_news(KEY, SECRET, [[], [frames[0]]], auth_replies=[control["connection_limit"]])
    feed = feed_for(server.url)
    try:
        items = await take(feed.stream(), 1)
    finally:
        await feed.close()
    assert [i.id for i in items] == ["alpaca:24918784"]
    assert len(server.received) == 2


async def test_bad_credentials_end_the_stream_with_one_line_and_no_retry(alpaca_news) -> None:
    server = await alpaca_news(KEY, SECRET, [])
    feed = AlpacaNewsFeed(key=KEY, secret="not-the-secret", url=server.url, backoff=FAST)
    with pytest.raises(NewsError) as raised:
        await asyncio.wait_for(anext(feed.stream()), 5)

    message = str(raised.value)
    assert message == f"alpaca news: 402 auth failed from {server.url} (check the API key and secret)"
    assert "not-the-secret" not in message
    assert len(server.received) == 1


async def test_an_account_without_news_is_fatal(alpaca_news, news_wire) -> None:
    control = news_wire("control")
    server = await alpaca_news(KEY, SECRET, [], auth_replies=[control["insufficient_subscription"]])
    feed = feed_for(server.url)
    with pytest.raises(NewsError, match=r"^alpaca news: 409 insufficient subscription .*plan\)$"):
        await asyncio.wait_for(anext(feed.stream()), 5)


async def test_close_ends_the_stream_promptly(alpaca_news) -> None:
    server = await alpaca_news(KEY, SECRET, [[]])
    feed = feed_for(server.url)
    stream = feed.stream()
    waiting = asyncio.ensure_future(anext(stream))
    async with asyncio.timeout(5):
        while not server.received or len(server.received[0]) < 2:  # subscribed: now waiting on a frame
            await asyncio.sleep(0.01)
    await feed.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, 2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"key": "", "secret": "x"}, "key and secret are required"),
        ({"key": "k", "secret": "s", "url": "http://example"}, "is not a WebSocket URL"),
        ({"key": "k", "secret": "s", "symbols": ["AAPL", "not a ticker"]}, "not all stock symbols"),
    ],
)
def test_bad_settings_fail_at_construction(kwargs: dict, message: str) -> None:
    with pytest.raises(NewsError, match=message):
        AlpacaNewsFeed(**kwargs)
