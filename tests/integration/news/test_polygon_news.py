"""Polygon news REST adapter against a local HTTP server on 127.0.0.1 speaking Polygon's format.

The server is a real socket server (stdlib ``ThreadingHTTPServer``) and the adapter uses its real
``httpx`` client, so URLs, headers, status codes and bodies cross a real connection. Each test
scripts the server's answers in order; the pages are Polygon's documented ``/v2/reference/news``
shape (tests/fixtures/wire/polygon_news).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tradesignals.domain.news import NewsError
from tradesignals.news.polygon import PolygonNewsFeed

WIRE = Path(__file__).resolve().parents[2] / "fixtures" / "wire" / "polygon_news"


def feed(server: Any, **kw: object) -> PolygonNewsFeed:
    opts: dict[str, object] = {"key": "k3y", "base_url": server.url, "backoff_s": 0.01, "interval_s": 0.01}
    opts.update(kw)
    return PolygonNewsFeed(**opts)  # type: ignore[arg-type]


async def test_pages_follow_next_url_with_key_and_count_malformed_items(server: Any) -> None:
    server.add(body=(WIRE / "page1.json").read_bytes())
    server.add(body=(WIRE / "page2.json").read_bytes())
    f = feed(server, tickers=["AAPL"], clock=lambda: 123)
    items = await f.poll_once()
    await f.close()

    assert [i.id for i in items] == [
        "polygon:8ec638777ca03b553ae516761c2a22ba2fdd2f37befae3ab6fdab74e9e5193eb",
        "polygon:a1b2c3",
        "polygon:d4e5f6",
    ]
    apple = items[1]
    assert apple.symbols == ("AAPL", "BRK.B")
    assert apple.summary == "Apple agreed to buy a startup."
    assert apple.received_at == 123
    assert apple.published_at == 1719254400 * 10**9
    # First request: ascending by published time, ticker filter, key; second: the cursor + key.
    first, second = server.query(0), server.query(1)
    assert first["order"] == ["asc"] and first["sort"] == ["published_utc"] and first["ticker"] == ["AAPL"]
    assert first["apiKey"] == ["k3y"]
    assert second["cursor"] == ["YXA9MjAyNC0wNi0yNFQxODo0MDowMFomYXM9YTFiMmMz"] and second["apiKey"] == [
        "k3y"
    ]
    # The cursor is followed on our host, never the host named in next_url.
    assert len(server.requests) == 2
    assert f.rejected == {"no symbol": 1, "no time": 1, "bad time": 1, "malformed": 1, "duplicate": 1}
    assert f.watermark == "2024-06-24T19:05:00Z"


async def test_next_poll_starts_at_watermark_and_drops_seen_ids(server: Any) -> None:
    server.add(body=(WIRE / "page2.json").read_bytes())
    server.add(body=(WIRE / "page2.json").read_bytes())
    f = feed(server)
    assert len(await f.poll_once()) == 2
    assert await f.poll_once() == []
    assert server.query(1)["published_utc.gte"] == ["2024-06-24T19:05:00Z"]
    assert f.rejected["duplicate"] == 2
    await f.close()


async def test_429_waits_retry_after_then_retries_same_page(server: Any) -> None:
    server.add(429, '{"status":"ERROR","error":"rate limited"}', {"Retry-After": "0.3"})
    server.add(body=(WIRE / "page2.json").read_bytes())
    f = feed(server)
    t0 = time.perf_counter()
    items = await f.poll_once()
    waited = time.perf_counter() - t0
    await f.close()
    assert len(items) == 2
    assert waited >= 0.3
    assert f.rejected["http 429"] == 1
    assert server.requests[0] == server.requests[1]


async def test_5xx_and_garbage_never_stop_the_stream(server: Any) -> None:
    server.add(503, "Service Unavailable")
    server.add(500, "oops")
    server.add(200, "<html>not json</html>")
    server.add(200, '{"status":"OK","results":{"not":"a list"}}')
    server.add(body=(WIRE / "page2.json").read_bytes())
    f = feed(server, max_retries=3)
    got = []
    async for item in f.stream():
        got.append(item)
        if len(got) == 2:
            break
    await f.close()
    assert [i.id for i in got] == ["polygon:d4e5f6", "polygon:syndicated-copy"]
    assert f.rejected["http 5xx"] == 2
    assert f.rejected["invalid json"] == 1
    assert f.rejected["unexpected shape"] == 1


async def test_retries_exhausted_ends_the_poll_not_the_feed(server: Any) -> None:
    for _ in range(3):
        server.add(502, "bad gateway")
    f = feed(server, max_retries=2)
    assert await f.poll_once() == []
    assert f.rejected["http 5xx"] == 3
    server.add(body=(WIRE / "page2.json").read_bytes())
    assert len(await f.poll_once()) == 2
    await f.close()


async def test_rejected_key_is_one_line_error(server: Any) -> None:
    server.add(401, '{"status":"ERROR","error":"Unknown API Key"}')
    f = feed(server)
    with pytest.raises(NewsError, match=r"rejected the API key \(HTTP 401\)"):
        await f.poll_once()
    await f.close()


async def test_unreachable_host_is_counted() -> None:
    f = PolygonNewsFeed(key="k", base_url="http://127.0.0.1:9", backoff_s=0.01, max_retries=1)
    assert await f.poll_once() == []
    assert f.rejected["connection error"] == 2
    await f.close()


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(NewsError, match="API key"):
        PolygonNewsFeed(key="")
    with pytest.raises(NewsError, match="base URL"):
        PolygonNewsFeed(key="k", base_url="ftp://x")


async def test_an_item_without_tickers_gets_one_from_a_company_name(server: Any) -> None:
    """With TS_COMPANY_TICKERS: "Microsoft …" with no tickers is MSFT; a name-less one is still dropped."""
    import orjson

    from tradesignals.news.names import CompanyNames

    def row(ident: str, title: str) -> dict[str, object]:
        return {
            "id": ident,
            "publisher": {"name": "Benzinga"},
            "title": title,
            "published_utc": "2024-06-24T18:40:00Z",
            "article_url": f"https://example.com/{ident}",
            "tickers": [],
        }

    page = {"results": [row("n1", "Microsoft Unveils New Surface Laptops"), row("n2", "Macro wrap")]}
    server.add(body=orjson.dumps({**page, "status": "OK", "request_id": "r", "count": 2}))
    names = CompanyNames.load(WIRE.parents[1] / "company_tickers.json")
    f = feed(server, names=names)
    items = await f.poll_once()
    await f.close()
    assert [(i.id, i.symbols) for i in items] == [("polygon:n1", ("MSFT",))]
    assert f.mapped_by_name == 1 and f.rejected == {"no symbol": 1}
