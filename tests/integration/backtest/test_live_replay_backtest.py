"""Live = replay = backtest: one file through `demo`'s path and through `backtest`, the same signals.

The demo path is the whole embedded process — replay feed → ingest validator → bus → EngineService
(built by `build_engine`) → repository and ledger. The backtest drives the engine the same builder
makes, directly. Both must publish the same signal ids and close them with the same fills and exits;
the only difference allowed is the end of the data, where the demo leaves signals open and the
backtest closes them at the last close.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pandas as pd
import pytest

from tradesignals.backtest.run import BacktestSpec, run_backtest
from tradesignals.config import load_settings
from tradesignals.domain.market import Timeframe
from tradesignals.domain.signals import SignalEventKind
from tradesignals.marketdata.feeds.simulator import SimulatorFeed
from tradesignals.storage.base import SignalQuery
from tradesignals.wiring import build_feed, build_services, start_roles


@pytest.fixture
def data(tmp_path: Path) -> Path:
    feed = SimulatorFeed(5, seed=21, speed=float("inf"), timeframe=Timeframe.D1, emit="bars")
    rows = [
        (
            pd.Timestamp(b.ts, tz="UTC").strftime("%Y-%m-%d"),
            b.symbol,
            b.open,
            b.high,
            b.low,
            b.close,
            b.volume,
        )
        for b in feed.history(250)
    ]
    path = tmp_path / "sim.csv"
    pd.DataFrame(rows, columns=["date", "symbol", "open", "high", "low", "close", "volume"]).to_csv(
        path, index=False
    )
    return path


async def _demo(settings) -> tuple[dict[str, object], dict[str, dict[str, object]]]:  # type: ignore[no-untyped-def]
    services = await build_services(settings)
    try:
        start_roles(services, {"engine", "ingest"}, build_feed(settings))
        ingest = next(t for t in services.tasks if t.get_name() == "ingest")
        last, stable = -1, 0
        while stable < 10:  # the feed is done and the engine has written nothing for 1 s
            await asyncio.sleep(0.1)
            events = await asyncio.to_thread(services.signals.events, None, 0, 100_000)
            n = len(events)
            stable = stable + 1 if (ingest.done() and n == last) else 0
            last = n
        signals = {}
        before = None
        while True:
            page = services.signals.query(SignalQuery(before_id=before, limit=500))
            signals.update({s.id: s for s in page})
            if len(page) < 500:
                break
            before = page[-1].id
        closed = {e.event.signal_id: e.event.data for e in events if e.event.kind is SignalEventKind.CLOSED}
        return signals, closed
    finally:
        await services.close()


def test_demo_path_and_backtest_publish_and_close_the_same_signals(data: Path, tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home", feed=f"replay:{data}", speed=float("inf"), model="rule")
    signals, closed = asyncio.run(_demo(settings))
    result = run_backtest(
        load_settings(home=tmp_path / "home2", model="rule"), BacktestSpec(data, profile="aggressive")
    )
    run = result.run
    assert len(signals) > 10
    assert {p.signal.id for p in run.signals} == set(signals)
    for p in run.signals:
        s = signals[p.signal.id]
        assert (p.signal.entry, p.signal.stop, p.signal.targets, p.signal.created_at) == (
            s.entry, s.stop, s.targets, s.created_at,
        )  # fmt: skip
    assert set(closed) == set(run.outcomes) - run.end_of_data
    for sid, data_ in closed.items():
        assert run.outcomes[sid].to_event_data() == data_, sid
    # and the portfolio's trades are those outcomes, priced as the rulebook closed them
    for t in result.portfolio.trades:
        if t.exit_reason != "end_of_data":
            assert closed[t.signal_id]["fill_price"] == run.outcomes[t.signal_id].fill_price
