import pytest

from tradesignals.domain.market import Bar, Tick, Timeframe, to_ns
from tradesignals.domain.signals import Direction
from tradesignals.domain.trade_plan import PlanMismatch, PlanParams
from tradesignals.engine.pipeline import SignalEngine
from tradesignals.engine.placeholder_rule import Decision, PlaceholderRule

NS_S = 10**9
DAY = 86_400 * NS_S
NO_COOLDOWN = PlanParams(cooldown_bars=0)


class Always:
    """A scorer that wants to go long on every bar: the engine must still de-duplicate."""

    version = "always-long"

    def __init__(self, version: str = "always-long", plan: PlanParams | None = None) -> None:
        self.version = version
        if plan is not None:
            self.plan = plan

    def on_bar(self, bar: Bar) -> Decision | None:
        return Decision(Direction.LONG, 0.6, atr=1.0, reasons=("test",))


def bar(i: int, symbol: str = "A", tf: Timeframe = Timeframe.M1) -> Bar:
    return Bar(symbol, tf, i * tf.ns, 100, 101, 99, 100, 10)


def test_one_open_signal_per_symbol_and_direction_until_expiry() -> None:
    eng = SignalEngine(Always(), plan=NO_COOLDOWN)
    first = eng.on_bar(bar(0))
    assert first is not None and first.model_version == "always-long"
    # A day signal on an always-open clock lives to the end of its UTC day.
    assert to_ns(first.expires_at) == DAY
    assert [eng.on_bar(bar(i)) for i in range(1, 6)] == [None] * 5
    assert eng.stats.suppressed_duplicates == 5
    # The first bar of the next day expires it (at the last price before expiry) and may signal again.
    again = eng.on_bar(Bar("A", Timeframe.M1, DAY, 100, 101, 99, 100, 10))
    (expired,) = eng.drain_outcomes()
    assert expired.signal_id == first.id and expired.outcome.value == "expired"
    assert expired.exit_price == 100 and expired.closed_at == first.expires_at
    assert again is not None and again.id != first.id
    # Another symbol is independent.
    assert eng.on_bar(bar(0, "B")) is not None


def test_ticks_are_aggregated_and_a_signal_fills_at_the_next_tick() -> None:
    eng = SignalEngine(PlaceholderRule(), Timeframe.M1)
    ns = Timeframe.M1.ns
    signals = []
    prices = [100 - 0.5 * i for i in range(25)] + [88 + 2.0 * i for i in range(1, 15)]
    ticks = [
        Tick("X", i * ns + j * ns // 3, p + 0.01 * j, 1.0) for i, p in enumerate(prices) for j in range(3)
    ]
    published_by: dict[str, Tick] = {}
    for t in ticks:
        for s in eng.on_tick(t):
            signals.append(s)
            published_by[s.id] = t
    assert eng.stats.ticks == 3 * len(prices)
    assert eng.stats.bars == len(prices) - 1  # the last bar is still open
    assert len(signals) == 1 and signals[0].direction is Direction.LONG
    s = signals[0]
    # Decided at the bar's close; published when the tick that revealed the close arrived.
    tick = published_by[s.id]
    assert s.decided_at is not None and to_ns(s.decided_at) == tick.ts - tick.ts % ns
    assert to_ns(s.created_at) == tick.ts
    # The first tradable price is the next tick's, never the publishing tick's. In this fast rally
    # it is already beyond the first target, so the signal is recorded as not filled.
    later = [t for t in ticks if t.ts > tick.ts]
    eng.on_tick(Tick("X", later[-1].ts + DAY, later[-1].price, 1.0))  # far past expiry: closes it
    (o,) = eng.drain_outcomes()
    assert o.outcome.value == "not_filled" and o.first_price == later[0].price
    assert later[0].price >= s.targets[0] and to_ns(o.closed_at) == later[0].ts


def test_a_stopped_signal_frees_its_slot_and_reports_the_outcome_net_of_costs() -> None:
    eng = SignalEngine(Always(), plan=NO_COOLDOWN)
    first = eng.on_bar(bar(0))
    assert first is not None and first.stop == 98.5  # 100 - 1.5 * ATR(1.0)
    crash = Bar("A", Timeframe.M1, 1 * Timeframe.M1.ns, 99, 99.5, 97, 97.5, 10)
    second = eng.on_bar(crash)
    (o,) = eng.drain_outcomes()
    assert (o.signal_id, o.outcome.value) == (first.id, "stop")
    # Filled at the next bar's open (99), stopped at the stop (98.5): -0.5 on a 1.5 risk.
    assert o.fill_price == 99 and o.exit_price == 98.5
    assert o.gross_r == pytest.approx(-0.5 / 1.5)
    # Equity costs: 5 bp a side of each side's price, in percent of the fill.
    assert o.costs_pct == pytest.approx(5 * (99 + 98.5) / 99 / 100)
    assert o.net_r is not None and o.net_r < o.gross_r and not o.win
    assert second is not None and second.id != first.id, "the closed signal's slot is free again"
    assert eng.drain_outcomes() == []


def test_restore_resumes_following_open_signals() -> None:
    eng = SignalEngine(Always())
    s = eng.on_bar(bar(0))
    assert s is not None
    fresh = SignalEngine(Always())
    fresh.restore([s])
    assert fresh.on_bar(bar(1)) is None, "the restored open signal still blocks a duplicate"
    target = Bar("A", Timeframe.M1, 2 * Timeframe.M1.ns, 100, 106, 99.9, 105, 10)
    fresh.on_bar(target)
    (o,) = fresh.drain_outcomes()
    assert o.signal_id == s.id and o.outcome.value == "target" and o.target_index == 2
    assert o.exit_price == s.targets[-1] and o.win


def test_cooldown_after_a_close_then_signals_again() -> None:
    eng = SignalEngine(Always(), plan=PlanParams(cooldown_bars=3))
    first = eng.on_bar(bar(0))
    assert first is not None
    crash = Bar("A", Timeframe.M1, 1 * Timeframe.M1.ns, 99, 99.5, 97, 97.5, 10)
    assert eng.on_bar(crash) is None  # stopped at the end of bar 1; cool-down until bar 1 end + 3 bars
    assert [eng.on_bar(bar(i)) for i in (2, 3, 4)] == [None, None, None]
    assert eng.stats.suppressed_cooldown == 4
    assert eng.on_bar(bar(5)) is not None


def test_signals_expire_before_the_next_earnings_report() -> None:
    from tradesignals.news.earnings import EarningsCalendar

    cal = EarningsCalendar({"A": [10 * DAY + 12 * 3600 * NS_S]})
    eng = SignalEngine(Always(), earnings=cal)
    s = eng.on_bar(Bar("A", Timeframe.D1, 7 * DAY, 100, 101, 99, 100, 10))
    assert s is not None
    # Not 5 days on: out at the last close before the release (12:00 on day 10; sessions are UTC days).
    assert s.expires_at.isoformat() == "1970-01-11T00:00:00+00:00"
    too_close = SignalEngine(Always(), earnings=cal)
    assert too_close.on_bar(Bar("A", Timeframe.D1, 9 * DAY, 100, 101, 99, 100, 10)) is None


def test_the_timeframe_comes_from_the_bars_not_from_a_default() -> None:
    asked: list[Timeframe] = []
    scorers = {Timeframe.D1: Always("swing-model"), Timeframe.M1: Always("day-model")}

    def scorer_for(tf: Timeframe) -> Always:
        asked.append(tf)
        return scorers[tf]

    eng = SignalEngine(scorer_for)  # no timeframe given: an engine role that knows nothing of the feed
    s = eng.on_bar(Bar("A", Timeframe.D1, 7 * DAY, 100, 101, 99, 100, 10))
    assert s is not None and s.model_version == "swing-model" and s.type.value == "swing"
    eng.on_bar(Bar("A", Timeframe.D1, 8 * DAY, 100, 101, 99, 100, 10))
    m = eng.on_bar(bar(0, "B"))
    assert m is not None and m.model_version == "day-model" and m.type.value == "day"
    assert asked == [Timeframe.D1, Timeframe.M1], "one scorer per timeframe, asked once"


def test_a_model_labelled_under_another_plan_is_refused() -> None:
    other = PlanParams(stop_atr=2.0)
    with pytest.raises(PlanMismatch, match=r"stop_atr.*2\.0.*engine trades.*1\.5"):
        SignalEngine(Always(plan=other))
    eng = SignalEngine(lambda _tf: Always(plan=other))
    with pytest.raises(PlanMismatch):
        eng.on_bar(bar(0))


def test_expiry_runs_on_each_symbols_own_clock() -> None:
    eng = SignalEngine(Always())
    a = eng.on_bar(bar(0, "A"))
    assert a is not None
    eng.on_bar(bar(1, "A"))  # filled at its open
    # Symbol B's partition runs two days ahead: A's signal must not expire on B's clock.
    eng.on_bar(Bar("B", Timeframe.M1, 2 * DAY, 100, 101, 99, 100, 10))
    assert eng.drain_outcomes() == []
    assert a.id in eng.lifecycle
    eng.on_bar(Bar("A", Timeframe.M1, 2 * DAY, 100, 101, 99, 100, 10))
    (o,) = eng.drain_outcomes()
    assert o.signal_id == a.id and o.outcome.value == "expired"


def test_a_replay_gives_the_same_signal_ids() -> None:
    bars = [Bar("A", Timeframe.D1, d * DAY, 100 + d, 101 + d, 99 + d, 100 + d, 10) for d in range(30)]
    runs = []
    for _ in range(2):
        eng = SignalEngine(Always(), plan=NO_COOLDOWN)
        runs.append([s.id for b in bars if (s := eng.on_bar(b)) is not None])
    assert runs[0] and runs[0] == runs[1]


def walk(symbol: str, n: int, seed: int) -> list[Bar]:
    import random

    rng = random.Random(seed)
    price, out = 100.0, []
    for i in range(n):
        c = price * (1 + rng.gauss(0, 0.02))
        out.append(
            Bar(symbol, Timeframe.D1, i * DAY, price, max(price, c) * 1.01, min(price, c) * 0.99, c, 10)
        )
        price = c
    return out


def test_forget_then_replay_rebuilds_exactly_the_state_one_engine_had() -> None:
    """What a new partition owner does (ADR 0015): forget the symbols, replay their bars, go on."""
    a, b = walk("AUSDT", 160, 1), walk("BUSDT", 160, 2)
    rows = [x for pair in zip(a, b, strict=True) for x in pair]
    cut = 140  # A has state here (warm averages, an open signal) that changes what follows
    one = SignalEngine(PlaceholderRule())
    before = [s.id for x in rows[:cut] if (s := one.on_bar(x)) is not None]
    after = [s.id for x in rows[cut:] if (s := one.on_bar(x)) is not None]
    assert len(set(before + after)) == len(before + after) and len(after) > 2

    # An owner that takes A at the cut without its history decides otherwise: the state matters.
    cold = SignalEngine(PlaceholderRule())
    for x in rows[:cut]:
        if x.symbol == "BUSDT":
            cold.on_bar(x)
    cold_after = [s.id for x in rows[cut:] if (s := cold.on_bar(x)) is not None]
    assert cold_after != after

    eng = SignalEngine(PlaceholderRule())
    for x in rows[:cut]:
        eng.on_bar(x)
    eng.on_bar(Bar("AUSDT", Timeframe.D1, 10**6 * DAY, 1, 1, 1, 1, 1))  # state that must not survive
    eng.forget(lambda symbol: symbol == "AUSDT")
    assert [s for s in eng.lifecycle.open_signals() if s.symbol == "AUSDT"] == []
    assert "AUSDT" not in eng.scorer._state  # type: ignore[attr-defined]
    assert "BUSDT" in eng.scorer._state  # type: ignore[attr-defined]
    eng.learning = False
    for x in rows[:cut]:  # replay A's history only, outputs discarded
        if x.symbol == "AUSDT":
            eng.on_bar(x)
    eng.drain_outcomes()
    eng.learning = True
    rebuilt_after = [s.id for x in rows[cut:] if (s := eng.on_bar(x)) is not None]
    assert rebuilt_after == after


def test_a_report_before_the_open_is_not_held_into_through_the_days_open() -> None:
    """A daily equity bar opens after a 08:00 report: the signal must be out at the prior close."""
    from datetime import UTC, datetime, time
    from zoneinfo import ZoneInfo

    from tradesignals.domain.sessions import utc_date_ns
    from tradesignals.marketdata.calendar import calendar_resolver
    from tradesignals.news.earnings import EarningsCalendar

    cal = calendar_resolver(None)
    sessions = cal("AAPL").sessions_between(utc_date_ns(2024, 1, 2), utc_date_ns(2024, 2, 1))
    at = datetime.combine(sessions[3].date, time(8, 0), tzinfo=ZoneInfo("America/New_York"))
    eng = SignalEngine(
        Always(), calendar=cal, earnings=EarningsCalendar({"AAPL": [to_ns(at.astimezone(UTC))]})
    )
    first = eng.on_bar(Bar("AAPL", Timeframe.D1, sessions[0].label, 100, 101, 99, 100, 1))
    assert first is not None and to_ns(first.expires_at) == sessions[2].close
    for k, (o, c) in enumerate([(100.5, 100.6), (100.7, 100.8), (104.0, 104.5)], start=1):
        eng.on_bar(Bar("AAPL", Timeframe.D1, sessions[k].label, o, max(o, c) + 0.1, min(o, c) - 0.1, c, 1))
    (out,) = [o for o in eng.drain_outcomes() if o.signal_id == first.id]
    # The close before the report, not the report day's gapped open (104.0).
    assert out.outcome.value == "expired" and out.exit_price == 100.8
