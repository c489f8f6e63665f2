"""The rulebook on real data, end to end: a swing model trained on the S&P file up to 2016, 2017 replayed.

* Every profile receives signals, the accepted sets are nested (conservative ⊆ moderate ⊆
  aggressive) and every size is within its caps — thresholds on the calibrated model's scale
  (edge over its base rate), not on a raw probability it never reaches.
* Every closed signal was filled inside the range of a bar after its decision — at that bar's open,
  never at the deciding bar's close — and the replay feed, the engine and the lifecycle are the
  ones ``demo --feed replay:PATH`` runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tradesignals.config import load_settings
from tradesignals.domain.market import AssetClass, Bar, Timeframe, to_ns
from tradesignals.domain.outcomes import Outcome
from tradesignals.domain.risk import PRESETS, ProfileName, annualised_volatility, fit
from tradesignals.domain.signals import Signal
from tradesignals.marketdata.feeds.replay import ReplayFeed
from tradesignals.models.dataset import build_dataset, load_bars
from tradesignals.models.registry import ModelRegistry
from tradesignals.models.train import TrainConfig, train_dataset
from tradesignals.wiring.engine_builder import build_engine

pytestmark = [pytest.mark.realdata, pytest.mark.slow]

SP500 = "sp500_daily_2013-2018.csv.gz"
REPLAY_FROM = pd.Timestamp("2016-09-01").value  # warm-up for the live features (34 bars)
HOLDOUT_FROM = pd.Timestamp("2017-01-01").value
HOLDOUT_TO = pd.Timestamp("2018-01-01").value
REPLAY_SYMBOLS = 120


@pytest.fixture(scope="module")
def home(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TS_HOME whose registry holds a swing model trained on the file up to 2016."""
    home = tmp_path_factory.mktemp("home")
    ds = build_dataset(load_bars([data_dir / SP500]))
    train_dataset(ds, ModelRegistry.at_home(home), until="2017-01-01", config=TrainConfig(num_threads=2))
    return home


@pytest.fixture(scope="module")
def replay_file(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    bars = load_bars([data_dir / SP500])
    symbols = sorted(bars["symbol"].unique())[:: max(1, bars["symbol"].nunique() // REPLAY_SYMBOLS)]
    keep = bars["symbol"].isin(symbols) & (bars["ts"] >= REPLAY_FROM) & (bars["ts"] < HOLDOUT_TO)
    part = bars.loc[keep, ["ts", "symbol", "open", "high", "low", "close", "volume"]].copy()
    part.insert(0, "date", pd.to_datetime(part.pop("ts"), unit="ns").dt.strftime("%Y-%m-%d"))
    path = tmp_path_factory.mktemp("replay") / "sp500_2017_part.csv"
    part.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def replay(home: Path, replay_file: Path) -> tuple[list[Signal], list[Outcome], dict[tuple[str, int], Bar]]:
    """Replay the held-out file through the engine ``demo`` builds (the one engine builder), with
    the registered model and the default settings (engine floor: edge >= 0)."""
    import asyncio

    settings = load_settings(home=home, feed=f"replay:{replay_file}")
    engine = build_engine(settings)
    signals: list[Signal] = []
    outcomes: list[Outcome] = []
    seen: dict[tuple[str, int], Bar] = {}

    async def run() -> None:
        feed = ReplayFeed(replay_file)
        async for event in feed.stream():
            assert isinstance(event, Bar)
            seen[(event.symbol, event.ts)] = event
            s = engine.on_bar(event)
            if s is not None and s.decided_at is not None and to_ns(s.decided_at) >= HOLDOUT_FROM:
                signals.append(s)
            outcomes.extend(engine.drain_outcomes())
        await feed.close()

    asyncio.run(run())
    return signals, outcomes, seen


def test_every_profile_receives_signals_nested_and_sized_within_caps(
    replay: tuple[list[Signal], list[Outcome], dict[tuple[str, int], Bar]],
) -> None:
    signals, _, seen = replay
    assert len(signals) > 100, "the model at the engine's default floor (edge >= 0) must publish"
    assert all(s.base_rate is not None and 0 < s.base_rate < 1 for s in signals)
    closes: dict[str, list[tuple[int, float]]] = {}
    for (sym, ts), b in sorted(seen.items(), key=lambda kv: kv[0][1]):
        closes.setdefault(sym, []).append((ts, b.close))
    accepted: dict[ProfileName, set[str]] = {p: set() for p in ProfileName}
    for s in signals:
        assert s.decided_at is not None
        history = [c for ts, c in closes[s.symbol] if ts < to_ns(s.decided_at)]
        vol = annualised_volatility(history[-21:], Timeframe.D1, AssetClass.EQUITY)
        sizes = {}
        for name, profile in PRESETS.items():
            f = fit(s, profile, volatility=vol, sector=None, open_exposure_by_sector={})
            if f.accepted:
                accepted[name].add(s.id)
                sizes[name] = f.position_pct
                assert 0 < f.position_pct <= profile.max_position_pct + 1e-12
                risk_taken = f.position_pct * s.risk_per_unit / s.entry
                assert risk_taken <= profile.risk_per_trade_pct + 1e-9
        # a bolder profile never sizes smaller
        order = [ProfileName.CONSERVATIVE, ProfileName.MODERATE, ProfileName.AGGRESSIVE]
        taken = [sizes[p] for p in order if p in sizes]
        assert taken == sorted(taken)
    for name in ProfileName:
        assert accepted[name], f"the {name} profile received no signal on the 2017 replay"
    assert (
        accepted[ProfileName.CONSERVATIVE]
        <= accepted[ProfileName.MODERATE]
        <= accepted[ProfileName.AGGRESSIVE]
    )


def test_every_closed_signal_filled_inside_a_bar_after_its_decision(
    replay: tuple[list[Signal], list[Outcome], dict[tuple[str, int], Bar]],
) -> None:
    signals, outcomes, seen = replay
    by_id = {s.id: s for s in signals}
    checked = 0
    for o in outcomes:
        s = by_id.get(o.signal_id)
        if s is None or not o.filled:
            continue
        assert o.filled_at is not None and o.fill_price is not None and s.decided_at is not None
        fill_bar = seen[(s.symbol, to_ns(o.filled_at))]
        assert fill_bar.ts >= to_ns(s.created_at), "filled before publication"
        assert fill_bar.low <= o.fill_price <= fill_bar.high
        assert o.fill_price == fill_bar.open
        deciding = seen[(s.symbol, to_ns(s.decided_at) - to_ns(s.decided_at) % 86_400_000_000_000)]
        assert fill_bar.ts > deciding.ts
        checked += 1
    assert checked > 100
    assert np.isfinite([o.net_r for o in outcomes if o.filled and o.net_r is not None]).all()
