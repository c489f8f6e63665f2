from tradesignals.domain.market import Bar, Tick, Timeframe
from tradesignals.domain.signals import Direction
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
    eng = SignalEngine(Always(), Timeframe.M1)
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
