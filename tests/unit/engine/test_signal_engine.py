from tradesignals.domain.market import Bar, Tick, Timeframe
from tradesignals.domain.signals import Direction
from tradesignals.engine.decide import DecideParams
from tradesignals.engine.pipeline import SignalEngine
from tradesignals.engine.placeholder_rule import Decision, PlaceholderRule


class Always:
    """A scorer that wants to go long on every bar: the engine must still de-duplicate."""

    version = "always-long"

    def on_bar(self, bar: Bar) -> Decision | None:
        return Decision(Direction.LONG, 0.6, atr=1.0, reasons=("test",))


def bar(i: int, symbol: str = "A", tf: Timeframe = Timeframe.M1) -> Bar:
    return Bar(symbol, tf, i * tf.ns, 100, 101, 99, 100, 10)


def test_one_open_signal_per_symbol_and_direction_until_expiry() -> None:
    eng = SignalEngine(Always(), Timeframe.M1, DecideParams(cooldown_bars=0))
    first = eng.on_bar(bar(0))
    assert first is not None and first.model_version == "always-long"
    horizon = eng.params.day_horizon_bars
    # Bars before expiry are suppressed; the first bar ending at/after expiry may signal again.
    again = [eng.on_bar(bar(i)) for i in range(1, horizon + 1)]
    assert all(s is None for s in again[:-1])
    assert again[-1] is not None
    assert eng.stats.suppressed_duplicates == horizon - 1
    # Another symbol is independent.
    assert eng.on_bar(bar(0, "B")) is not None


def test_ticks_are_aggregated_into_bars_before_scoring() -> None:
    eng = SignalEngine(PlaceholderRule(), Timeframe.M1)
    ns = Timeframe.M1.ns
    signals = []
    prices = [100 - 0.5 * i for i in range(25)] + [88 + 2.0 * i for i in range(1, 15)]
    for i, p in enumerate(prices):
        for j in range(3):
            signals += eng.on_tick(Tick("X", i * ns + j * ns // 3, p + 0.01 * j, 1.0))
    assert eng.stats.ticks == 3 * len(prices)
    assert eng.stats.bars == len(prices) - 1  # the last bar is still open
    assert len(signals) == 1 and signals[0].direction is Direction.LONG
    assert signals[0].symbol == "X"


def test_a_stopped_signal_frees_its_slot_and_reports_the_outcome() -> None:
    eng = SignalEngine(Always(), Timeframe.M1, DecideParams(cooldown_bars=0))
    first = eng.on_bar(bar(0))
    assert first is not None and first.stop == 98.5  # 100 - 1.5 * ATR(1.0)
    crash = Bar("A", Timeframe.M1, 1 * Timeframe.M1.ns, 99, 99.5, 97, 97.5, 10)
    second = eng.on_bar(crash)
    outcomes = eng.drain_outcomes()
    assert [(o.signal_id, o.outcome.value) for o in outcomes] == [(first.id, "stop")]
    assert outcomes[0].exit_price == 98.5 and outcomes[0].r_multiple == -1.0
    assert second is not None and second.id != first.id, "the closed signal's slot is free again"
    assert eng.drain_outcomes() == []


def test_restore_resumes_following_open_signals() -> None:
    eng = SignalEngine(Always(), Timeframe.M1)
    s = eng.on_bar(bar(0))
    assert s is not None
    fresh = SignalEngine(Always(), Timeframe.M1)
    fresh.restore([s])
    assert fresh.on_bar(bar(1)) is None, "the restored open signal still blocks a duplicate"
    target = Bar("A", Timeframe.M1, 2 * Timeframe.M1.ns, 100, 106, 99.9, 105, 10)
    fresh.on_bar(target)
    (o,) = fresh.drain_outcomes()
    assert o.signal_id == s.id and o.outcome.value == "target" and o.target_index == 2


def test_cooldown_after_a_close_then_signals_again() -> None:
    eng = SignalEngine(Always(), Timeframe.M1, DecideParams(cooldown_bars=3))
    first = eng.on_bar(bar(0))
    assert first is not None
    crash = Bar("A", Timeframe.M1, 1 * Timeframe.M1.ns, 99, 99.5, 97, 97.5, 10)
    assert eng.on_bar(crash) is None  # stopped at the end of bar 1; cool-down until bar 1 end + 3 bars
    assert [eng.on_bar(bar(i)) for i in (2, 3, 4)] == [None, None, None]
    assert eng.stats.suppressed_cooldown == 4
    assert eng.on_bar(bar(5)) is not None


def test_signals_expire_before_the_next_earnings_report() -> None:
    from tradesignals.news.earnings import EarningsCalendar

    day = Timeframe.D1.ns
    cal = EarningsCalendar({"A": [10 * day + 12 * 3600 * 10**9]})
    eng = SignalEngine(Always(), Timeframe.D1, earnings=cal)
    s = eng.on_bar(Bar("A", Timeframe.D1, 7 * day, 100, 101, 99, 100, 10))
    assert s is not None
    assert s.expires_at.isoformat() == "1970-01-11T12:00:00+00:00"  # the release, not 5 days on
    too_close = SignalEngine(Always(), Timeframe.D1, earnings=cal)
    assert too_close.on_bar(Bar("A", Timeframe.D1, 9 * day, 100, 101, 99, 100, 10)) is None
