"""SEC EDGAR submissions JSON against a local server on 127.0.0.1 speaking the SEC's format
(tests/fixtures/wire/sec_edgar, the documented ``submissions/CIK##########.json`` shape)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from tradesignals.domain.catalysts import Catalyst, classify, classify_item
from tradesignals.domain.news import NewsError
from tradesignals.news.edgar import EdgarFilingsFeed, headline

WIRE = Path(__file__).resolve().parents[2] / "fixtures" / "wire" / "sec_edgar" / "CIK0000320193.json"
UA = "tradesignals tests ops@example.com"


def feed(server: Any, **kw: Any) -> EdgarFilingsFeed:
    opts: dict[str, Any] = {"user_agent": UA, "base_url": server.url, "backoff_s": 0.01, "clock": lambda: 42}
    opts.update(kw)
    return EdgarFilingsFeed(["320193"], **opts)


async def test_8k_and_form4_become_items_with_user_agent(server: Any) -> None:
    server.add(body=WIRE.read_bytes())
    f = feed(server)
    items = await f.poll_once()
    await f.close()
    assert server.requests == ["/submissions/CIK0000320193.json"]
    assert server.headers[0]["User-Agent"] == UA
    assert [i.id for i in items] == [
        "sec:0000320193-24-000070",
        "sec:0001140361-24-045612",
        "sec:0000320193-24-000120",
    ]
    results = items[2]
    assert results.symbols == ("AAPL",) and results.source == "sec" and results.received_at == 42
    assert results.headline == "Apple Inc. files 8-K: Results of Operations and Financial Condition (2.02)"
    assert (
        results.url == "https://www.sec.gov/Archives/edgar/data/320193/000032019324000120/aapl-20241031.htm"
    )
    assert "insider transaction" in items[1].headline
    # The 8-K without an acceptance time is counted, not guessed; the 10-K and 10-Q are not asked for.
    assert f.rejected == {"no time": 1}


async def test_seen_filings_are_not_repeated(server: Any) -> None:
    server.add(body=WIRE.read_bytes())
    server.add(body=WIRE.read_bytes())
    f = feed(server)
    assert len(await f.poll_once()) == 3
    assert await f.poll_once() == []
    assert f.rejected["duplicate"] == 3
    await f.close()


async def test_unequal_arrays_and_no_tickers_are_counted(server: Any) -> None:
    doc = orjson.loads(WIRE.read_bytes())
    bad = orjson.loads(WIRE.read_bytes())
    bad["filings"]["recent"]["form"].pop()
    untickered = {**doc, "tickers": []}
    server.add(body=orjson.dumps(bad))
    server.add(body=orjson.dumps(untickered))
    server.add(body=b'{"filings": "nope"}')
    f = feed(server)
    for _ in range(3):
        assert await f.poll_once() == []
    assert f.rejected == {"unequal arrays": 1, "no symbol": 4, "unexpected shape": 1}
    await f.close()


async def test_429_retry_after_then_forbidden_is_one_line(server: Any) -> None:
    server.add(429, "slow down", {"Retry-After": "0.05"})
    server.add(body=WIRE.read_bytes())
    f = feed(server)
    assert len(await f.poll_once()) == 3
    assert f.rejected["http 429"] == 1
    server.add(403, "<html>Your Request Originates from an Undeclared Automated Tool</html>")
    with pytest.raises(NewsError, match=r"refused the client .*\(HTTP 403\)"):
        await f.poll_once()
    await f.close()


def test_configuration_errors() -> None:
    with pytest.raises(NewsError, match="User-Agent with a contact e-mail"):
        EdgarFilingsFeed([320193], user_agent="python-httpx")
    with pytest.raises(NewsError, match="CIKs must be numbers"):
        EdgarFilingsFeed(["apple"], user_agent=UA)
    with pytest.raises(NewsError, match="at least one CIK"):
        EdgarFilingsFeed([], user_agent=UA)


def test_headlines_and_item_tags_give_catalysts() -> None:
    assert (
        headline("Acme Corp", "8-K", "5.02")
        == "Acme Corp files 8-K: Departure or Appointment of Directors or Officers (5.02)"
    )
    assert headline("Acme Corp", "8-K", "9.01") == "Acme Corp files 8-K"
    # The headline words alone are not read by the text rules; the item numbers are.
    assert classify(headline("Acme", "8-K", "2.02,9.01")) == (Catalyst.NONE,)
    assert classify_item(headline("Acme", "8-K", "2.02,9.01"), ("8-K:2.02", "8-K:9.01")) == (
        Catalyst.EARNINGS,
    )
    assert classify_item("Acme files 8-K", ("8-K:5.02", "8-K:3.02")) == (
        Catalyst.OFFERING,
        Catalyst.MANAGEMENT,
    )
    assert classify_item("Acme files 8-K", ("8-K:8.01",)) == (Catalyst.NONE,)


async def test_items_carry_their_8k_tags(server: Any) -> None:
    server.add(body=WIRE.read_bytes())
    f = feed(server)
    items = await f.poll_once()
    await f.close()
    assert [i.tags for i in items] == [("8-K:5.07", "8-K:8.01"), (), ("8-K:2.02", "8-K:9.01")]
