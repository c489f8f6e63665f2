"""``market:status``: each exchange's session state, one message per change however many nodes check."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import orjson

from tradesignals.api.broadcast import MARKET_STATUS, market_status, session_state
from tradesignals.api.channel_seq import MemoryChannelLog
from tradesignals.marketdata.calendar import exchange_calendar


def ns(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1e9)


def test_session_state_of_the_new_york_exchange() -> None:
    xnys = exchange_calendar("XNYS")
    assert session_state(xnys, ns(2024, 3, 5, 15, 0))[0] == "open"  # 10:00 New York
    assert session_state(xnys, ns(2024, 3, 5, 22, 0))[0] == "closed"  # after the close
    assert session_state(xnys, ns(2024, 3, 9, 15, 0))[0] == "closed"  # a Saturday
    # the same stretch has the same key, whenever in it a node looks
    assert session_state(xnys, ns(2024, 3, 5, 15, 0)) == session_state(xnys, ns(2024, 3, 5, 19, 0))


async def test_two_nodes_publish_each_change_once() -> None:
    log = MemoryChannelLog()
    stop = asyncio.Event()
    now = [ns(2024, 3, 5, 13, 0)]  # before the open
    exchanges = {"XNYS": exchange_calendar("XNYS")}
    checks = [0, 0]  # rounds each node has made (each reads the clock once)

    def clock_of(node: int) -> Callable[[], int]:
        def clock() -> int:
            checks[node] += 1
            return now[0]

        return clock

    nodes = [
        asyncio.create_task(market_status(log, stop, exchanges, every_s=0.01, clock=clock_of(i)))
        for i in range(2)
    ]
    loop = asyncio.get_running_loop()
    for t in (ns(2024, 3, 5, 13, 0), ns(2024, 3, 5, 15, 0), ns(2024, 3, 5, 16, 0), ns(2024, 3, 5, 22, 0)):
        now[0] = t
        seen, deadline = list(checks), loop.time() + 10
        while any(c - s < 3 for c, s in zip(checks, seen, strict=True)):  # both nodes saw t, twice over
            assert loop.time() < deadline, "a node stopped checking"
            await asyncio.sleep(0.005)  # polling the condition above
    stop.set()
    await asyncio.gather(*nodes)
    frames = [orjson.loads(e.frame) for e in await log.read(MARKET_STATUS, 0, 100)]
    assert [(f["seq"], f["data"]["state"]) for f in frames] == [(1, "closed"), (2, "open"), (3, "closed")]
    assert all(f["data"]["exchange"] == "XNYS" and f["type"] == "session" for f in frames)
