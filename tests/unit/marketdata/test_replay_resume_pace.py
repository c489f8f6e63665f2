"""A paced replay restarted from a stored position does not sleep through the pace of the bars it
skips: its pace starts at the first bar this run publishes (ADR 0025).

Counted on a fake clock (the replay's ``time.monotonic`` and ``asyncio.sleep``), never wall time.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import pytest

from tradesignals.bus import topics
from tradesignals.bus.codec import decoder
from tradesignals.bus.memory import MemoryBus
from tradesignals.domain.market import Bar
from tradesignals.engine.ingest import run_ingest
from tradesignals.marketdata.feeds import replay
from tradesignals.marketdata.feeds.replay import ReplayFeed
from tradesignals.storage.base import IngestPosition

DAYS = 20
DONE = 15  # bars an earlier run published (the stored position)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.slept.append(seconds)
            self.now += seconds
        await asyncio.sleep(0)


class Positions:
    def __init__(self, published: int) -> None:
        self.saved = IngestPosition(published={topics.MARKET_BARS: published}, ids={}) if published else None

    def load(self, feed: str) -> IngestPosition | None:
        return self.saved

    def save(self, feed: str, position: IngestPosition) -> None:
        self.saved = position


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(replay, "time", SimpleNamespace(monotonic=fake.monotonic))
    monkeypatch.setattr(replay, "asyncio", SimpleNamespace(sleep=fake.sleep))
    return fake


def daily(tmp_path: Path) -> Path:
    rows = [f"2020-01-{d:02d},AAA,10,11,9,10.5,100" for d in range(1, DAYS + 1)]
    f = tmp_path / "daily.csv"
    f.write_text("date,Name,open,high,low,close,volume\n" + "\n".join(rows) + "\n")
    return f


async def ingest(tmp_path: Path, published: int) -> tuple[list[Bar], ReplayFeed]:
    feed = ReplayFeed(daily(tmp_path), speed=86_400.0)  # one simulated day per wall second
    bus = MemoryBus(partitions=1)
    reader = bus.consumer(topics.MARKET_BARS, "check", "c", decoder(Bar), lease_seconds=30)
    await reader.fetch(1, wait=0)  # joined before anything is published: reads it all
    await run_ingest(feed, bus, positions=Positions(published))
    got = [d.value for d in await reader.fetch(100, wait=0)]
    await bus.close()
    return got, feed


async def test_a_restarted_paced_replay_paces_only_what_it_publishes(
    tmp_path: Path, clock: FakeClock
) -> None:
    got, feed = await ingest(tmp_path, DONE)
    assert len(got) == DAYS - DONE and feed.emitted == DAYS
    # The first published bar comes at once; each later one a simulated day (1 s) after the previous.
    assert clock.slept == pytest.approx([1.0] * (DAYS - DONE - 1))


async def test_a_fresh_paced_replay_paces_from_its_first_bar(tmp_path: Path, clock: FakeClock) -> None:
    got, _ = await ingest(tmp_path, 0)
    assert len(got) == DAYS
    assert sum(clock.slept) == pytest.approx(DAYS - 1.0)
