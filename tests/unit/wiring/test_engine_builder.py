"""The one engine builder: what settings reach the engine, and the timeframe comes from the bars."""

from __future__ import annotations

from pathlib import Path

import pytest

from tradesignals.config import ConfigError, load_settings
from tradesignals.demo_model import ensure_demo_model
from tradesignals.domain.costs import DEFAULT_COSTS
from tradesignals.domain.market import AssetClass, Bar, Timeframe
from tradesignals.domain.signals import Direction, SignalType
from tradesignals.domain.trade_plan import PlanParams
from tradesignals.engine.pipeline import Scorer
from tradesignals.engine.placeholder_rule import Decision
from tradesignals.marketdata.calendar import ALWAYS_OPEN, calendar_for
from tradesignals.marketdata.feeds.simulator import SimulatorFeed
from tradesignals.wiring.engine_builder import (
    build_engine,
    cost_schedule,
    plan_params,
    symbol_calendars,
)


class Always:
    """Long on every bar with ATR 1: the plan alone sets the stop distance."""

    version = "always-long"

    def on_bar(self, bar: Bar) -> Decision | None:
        return Decision(Direction.LONG, 0.6, atr=1.0, reasons=("test",))


def test_plan_settings_become_the_plan_and_defaults_are_the_published_plan() -> None:
    assert plan_params(load_settings()) == PlanParams()
    plan = plan_params(
        load_settings(plan_stop_atr=2.0, plan_target_r="1,1.5", plan_swing_sessions=3, plan_cooldown_bars=0)
    )
    assert plan == PlanParams(stop_atr=2.0, target_r=(1.0, 1.5), swing_sessions=3, cooldown_bars=0)


def test_cost_settings_change_only_what_they_name() -> None:
    assert cost_schedule(load_settings()).by_class == DEFAULT_COSTS
    costs = cost_schedule(load_settings(costs_equity_slippage_bp=5.0, costs_crypto_commission_bp=0))
    equity, crypto = costs.for_class(AssetClass.EQUITY), costs.for_class(AssetClass.CRYPTO)
    assert equity == DEFAULT_COSTS[AssetClass.EQUITY].replace(slippage_bp=5.0)
    assert crypto == DEFAULT_COSTS[AssetClass.CRYPTO].replace(commission_bp=0.0)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"TS_COSTS_EQUITY_COMMISSION_BP": "-1"}, "TS_COSTS_EQUITY_COMMISSION_BP"),
        ({"TS_COSTS_CRYPTO_BORROW_BP_PER_DAY": "nan"}, "TS_COSTS_CRYPTO_BORROW_BP_PER_DAY"),
        ({"TS_PLAN_TARGET_R": "2,1"}, "TS_PLAN_TARGET_R"),
        ({"TS_PLAN_SWING_SESSIONS": "0"}, "TS_PLAN_SWING_SESSIONS"),
        ({"TS_PLAN_STOP_ATR": "0"}, "TS_PLAN_STOP_ATR"),
        ({"TS_TICK_TIMEFRAME": "2m"}, "TS_TICK_TIMEFRAME"),
        ({"TS_SIGNAL_TIMEFRAME": "1d"}, "TS_TICK_TIMEFRAME"),  # the old name says what replaced it
    ],
)
def test_a_bad_rulebook_setting_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], named: str
) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigError) as err:
        load_settings()
    message = str(err.value)
    assert "\n" not in message and named in message


def test_the_stop_setting_reaches_the_signals() -> None:
    def first_risk(stop_atr: float) -> float:
        engine = build_engine(load_settings(plan_stop_atr=stop_atr), scorer_for=lambda _tf: Always())
        signal = engine.on_bar(Bar("BTC-USD", Timeframe.H1, 0, 100, 101, 99, 100, 10))
        assert signal is not None
        return signal.entry - signal.stop

    assert first_risk(1.0) == pytest.approx(1.0)
    assert first_risk(2.5) == pytest.approx(2.5)


def test_a_declared_asset_class_overrides_the_spelling() -> None:
    assert symbol_calendars(load_settings())("AAPL") is calendar_for(AssetClass.EQUITY)
    assert symbol_calendars(load_settings())("BTCUSDT") is ALWAYS_OPEN
    declared = symbol_calendars(load_settings(asset_class="crypto"))
    assert declared("CRYPTO_BTCUSDT_1M_BINANCEUS") is ALWAYS_OPEN  # a file named after itself


def test_the_engine_role_alone_scores_daily_bars_with_the_swing_model(tmp_path: Path) -> None:
    """``serve --role engine``: no feed in the process, the tick timeframe left at its 1m default.

    Only a swing (daily) model is registered. The engine must take the timeframe from the bars:
    daily bars get the swing model and swing signals, and no day model is ever asked for.
    """
    trainer = load_settings(home=tmp_path, sim_symbols=4)
    assert ensure_demo_model(trainer, Timeframe.D1, "swing", bars_per_symbol=500)
    settings = load_settings(mode="server", home=tmp_path, model="auto", min_edge=-1.0)
    assert settings.tick_timeframe == "1m"
    asked: list[str] = []

    def seen(scorer: Scorer) -> None:
        asked.append(scorer.version)

    engine = build_engine(settings, on_scorer=seen)
    assert asked == []  # nothing is built before a bar says which timeframe it is
    feed = SimulatorFeed(4, seed=99, speed=float("inf"), timeframe=Timeframe.D1, emit="bars")
    signals = [s for b in feed.history(250) if (s := engine.on_bar(b)) is not None]
    assert len(asked) == 1 and asked[0].startswith("swing:")
    assert signals, "a warm swing model with no confidence floor decides on daily bars"
    assert {s.type for s in signals} == {SignalType.SWING}
    assert {s.model_version for s in signals} == {asked[0]}


def test_a_model_labelled_under_another_plan_is_refused_at_load_in_one_line(tmp_path: Path) -> None:
    """The model's labels record their plan; an engine trading another plan must not publish its
    confidence (it would speak of other stops and horizons)."""
    trainer = load_settings(home=tmp_path, sim_symbols=4)
    assert ensure_demo_model(trainer, Timeframe.D1, "swing", bars_per_symbol=300)
    same = load_settings(mode="server", home=tmp_path, model="swing")
    assert build_engine(same, warm=(Timeframe.D1,)) is not None
    other = load_settings(mode="server", home=tmp_path, model="swing", plan_stop_atr=2.0)
    with pytest.raises(ConfigError) as err:
        build_engine(other, warm=(Timeframe.D1,))
    message = str(err.value)
    assert "\n" not in message
    assert "'stop_atr': 1.5" in message and "'stop_atr': 2.0" in message, message
