"""Event signals (``type = event``) through the engine's decide path: expiry at or before the event."""

from __future__ import annotations

from datetime import UTC, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tradesignals.config import ConfigError, Settings
from tradesignals.domain.market import Bar, Timeframe, to_ns
from tradesignals.domain.news import NewsItem, ScoredNews
from tradesignals.domain.sessions import Session, utc_date_ns
from tradesignals.domain.signals import Direction, Signal, SignalType
from tradesignals.engine.event_rules import (
    CATALYST_REACTION_VERSION,
    EARNINGS_PLAY_VERSION,
    CatalystBook,
)
from tradesignals.engine.pipeline import SignalEngine
from tradesignals.engine.placeholder_rule import Decision
from tradesignals.marketdata.calendar import calendar_resolver
from tradesignals.news.earnings import EarningsCalendar
from tradesignals.wiring.engine_builder import build_engine

NY = ZoneInfo("America/New_York")
SESSIONS: list[Session] = calendar_resolver(None)("AAPL").sessions_between(
    utc_date_ns(2024, 1, 2), utc_date_ns(2024, 3, 28)
)


class Silent:
    version = "silent"

    def on_bar(self, bar: Bar) -> Decision | None:
        return None


class LongOnBar20:
    version = "long-on-20"

    def on_bar(self, bar: Bar) -> Decision | None:
        if bar.ts != SESSIONS[20].label:
            return None
        return Decision(Direction.LONG, 0.6, atr=2.0, reasons=("test",))


def release(k: int, when: str) -> int:
    """The release of session ``k``'s day: 08:00 New York before the open, 16:05 after the close."""
    clock = time(8, 0) if when == "bmo" else time(16, 5)
    return to_ns(datetime.combine(SESSIONS[k].date, clock, tzinfo=NY).astimezone(UTC))


def bar(k: int, close: float = 100.0, prev: float = 100.0) -> Bar:
    return Bar(
        "AAPL", Timeframe.D1, SESSIONS[k].label, prev, max(prev, close) + 1, min(prev, close) - 1, close, 1e6
    )


def engine(tmp: Path, rules: str, *, earnings: EarningsCalendar | None = None, book: CatalystBook | None = None,
           scorer: object = None) -> SignalEngine:  # fmt: skip
    settings = Settings(model="rule", event_rules=rules, home=tmp)
    return build_engine(
        settings, earnings=earnings, catalysts=book, scorer_for=lambda _tf: scorer or Silent()
    )  # type: ignore[return-value,arg-type]


def run(eng: SignalEngine, bars: list[Bar]) -> tuple[list[Signal], dict[str, object]]:
    made: list[Signal] = []
    outcomes = {}
    for b in bars:
        made += eng.on_bar_signals(b)
        outcomes.update({o.signal_id: o for o in eng.drain_outcomes()})
    return made, outcomes


@pytest.mark.parametrize(("when", "decided_k", "last_held_k"), [("amc", 22, 25), ("bmo", 21, 24)])
def test_the_earnings_play_is_long_into_the_release_and_out_before_it(
    tmp_path: Path, when: str, decided_k: int, last_held_k: int
) -> None:
    at = release(25, when)
    eng = engine(tmp_path, "earnings", earnings=EarningsCalendar({"AAPL": [at]}))
    made, outcomes = run(eng, [bar(k) for k in range(30)])
    (sig,) = made
    assert sig.type is SignalType.EVENT and sig.direction is Direction.LONG
    assert sig.model_version == EARNINGS_PLAY_VERSION and sig.base_rate is None
    assert to_ns(sig.created_at) == SESSIONS[decided_k].close
    # Expiry at or before the event: the close of the last session that ends before the release.
    assert to_ns(sig.expires_at) == SESSIONS[last_held_k].close <= at
    assert "Earnings play (a rule, no fitted edge)" in sig.reasons[0] and "reports at" in sig.reasons[0]
    out = outcomes[sig.id]
    assert out.outcome.value == "expired" and to_ns(out.closed_at) <= at  # type: ignore[attr-defined]
    assert eng.stats.signals == 1  # once per release


def test_no_earnings_play_without_a_whole_session_before_the_release(tmp_path: Path) -> None:
    # Released before the open of the session after the first warm bar: no session to hold.
    eng = engine(tmp_path, "earnings", earnings=EarningsCalendar({"AAPL": [release(15, "bmo")]}))
    made, _ = run(eng, [bar(k) for k in range(14, 20)])
    assert made == []


def heard(k: int, headline: str, catalyst: str, item_id: str = "benzinga:1") -> ScoredNews:
    received = to_ns(datetime.combine(SESSIONS[k].date, time(11, 0), tzinfo=NY).astimezone(UTC))
    item = NewsItem(item_id, "benzinga", received, received, ("AAPL",), headline)
    return ScoredNews(item, "neutral", 0.0, (catalyst,), received)


def moves(last: float) -> list[Bar]:
    """20 flat bars (ATR 2), then one closing at ``last``."""
    return [bar(k) for k in range(20)] + [bar(20, close=last)]


@pytest.mark.parametrize(("last", "direction"), [(103.0, Direction.LONG), (97.0, Direction.SHORT)])
def test_a_catalyst_with_a_move_makes_an_event_signal_naming_the_news(
    tmp_path: Path, last: float, direction: Direction
) -> None:
    book = CatalystBook()
    book.add(heard(20, "Morgan Stanley Upgrades Apple to Overweight", "analyst", "benzinga:77"))
    eng = engine(tmp_path, "catalyst", book=book)
    made, _ = run(eng, moves(last))
    (sig,) = made
    assert sig.type is SignalType.EVENT and sig.direction is direction
    assert sig.model_version == CATALYST_REACTION_VERSION
    assert (
        "benzinga:77" in sig.reasons[0] and "Upgrades Apple" in sig.reasons[0] and "analyst" in sig.reasons[0]
    )
    # The plan's swing horizon: 5 sessions after the deciding one.
    assert to_ns(sig.expires_at) == SESSIONS[25].close


def test_no_reaction_without_news_without_a_move_or_with_old_news(tmp_path: Path) -> None:
    assert run(engine(tmp_path, "catalyst", book=CatalystBook()), moves(104.0))[0] == []
    book = CatalystBook()
    book.add(heard(20, "Apple upgraded at Citi", "analyst"))
    assert run(engine(tmp_path, "catalyst", book=book), moves(100.5))[0] == []
    old = CatalystBook()
    old.add(heard(18, "Apple upgraded at Citi", "analyst"))  # before the previous close
    assert run(engine(tmp_path, "catalyst", book=old), moves(104.0))[0] == []
    other = CatalystBook()
    other.add(heard(20, "Apple names a new CFO", "management"))  # not a class the rule reacts to
    assert run(engine(tmp_path, "catalyst", book=other), moves(104.0))[0] == []


def test_a_reaction_is_never_held_through_the_next_earnings_release(tmp_path: Path) -> None:
    book = CatalystBook()
    book.add(heard(20, "Apple upgraded at Citi", "analyst"))
    at = release(23, "amc")
    eng = engine(tmp_path, "catalyst", book=book, earnings=EarningsCalendar({"AAPL": [at]}))
    (sig,) = run(eng, moves(104.0))[0]
    assert to_ns(sig.expires_at) == SESSIONS[23].close < at  # out at the close before the report


def test_event_signals_leave_the_scorers_signals_alone(tmp_path: Path) -> None:
    book = CatalystBook()
    book.add(heard(20, "Apple upgraded at Citi", "analyst"))
    eng = engine(tmp_path, "catalyst", book=book, scorer=LongOnBar20())
    made, _ = run(eng, moves(104.0))
    # One bar, two longs on one symbol: the scorer's first, then the rule's; both stay open.
    assert [(s.type, s.model_version) for s in made] == [
        (SignalType.SWING, "long-on-20"),
        (SignalType.EVENT, CATALYST_REACTION_VERSION),
    ]
    assert len(eng.lifecycle.open_signals("AAPL")) == 2
    fresh = engine(tmp_path, "catalyst", book=book, scorer=LongOnBar20())
    for b in moves(104.0)[:-1]:
        assert fresh.on_bar(b) is None
    with pytest.raises(RuntimeError, match="on_bar_signals"):
        fresh.on_bar(moves(104.0)[-1])


def test_the_rules_are_off_by_default_and_need_their_inputs(tmp_path: Path) -> None:
    assert build_engine(Settings(model="rule", home=tmp_path)).events == ()
    with pytest.raises(ConfigError, match="TS_EARNINGS_FILE"):
        engine(tmp_path, "earnings")
    with pytest.raises(ConfigError, match="TS_NEWS_FEED"):
        engine(tmp_path, "catalyst")
    with pytest.raises(ValueError, match="unknown event rule"):
        Settings(event_rules="earnings,astrology")
    assert Settings(event_rules=" catalyst , earnings,catalyst").event_rules == "catalyst,earnings"


def test_the_catalyst_book_answers_by_received_time_and_stays_bounded() -> None:
    book = CatalystBook(keep=3)
    for k in (5, 3, 4, 6):  # out of order, as a merged feed may deliver them
        book.add(heard(k, f"Apple upgraded, day {k}", "analyst", f"b:{k}"))
    book.add(heard(7, "Apple names a new CFO", "management", "b:7"))  # not a reaction class: not kept
    assert [h.item_id for h in book.between("AAPL", SESSIONS[3].close, SESSIONS[6].close)] == [
        "b:4",
        "b:5",
        "b:6",
    ]
    assert [h.item_id for h in book.between("AAPL", 0, SESSIONS[9].close)] == [
        "b:4",
        "b:5",
        "b:6",
    ]  # oldest dropped
    assert book.between("MSFT", 0, SESSIONS[9].close) == []
