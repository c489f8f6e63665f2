"""The event rules on the real S&P daily bars and Benzinga headlines: what they publish keeps the rules.

Not an edge test (docs/event-rules.md has the figures, bench/event_rules.py prints them): every
earnings play is long, decided at most three sessions before a known release and out at or before
it; every catalyst reaction names news received since the previous close; every signal has the
rulebook's outcome, net of costs, closed no later than its expiry. The figures are printed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tradesignals.backtest.event_study import bars_of, earnings_from_news, run_rules, score_news, summarise
from tradesignals.config import Settings
from tradesignals.domain.market import to_ns
from tradesignals.domain.signals import Direction, SignalType
from tradesignals.engine.event_rules import CATALYST_REACTION_VERSION, EARNINGS_PLAY_VERSION
from tradesignals.marketdata.ohlcv_file import read_ohlcv
from tradesignals.news.replay import ReplayNewsFeed

pytestmark = pytest.mark.realdata

SYMBOLS = ("A", "AAP", "ABBV", "ABC")


def test_event_rules_on_real_bars_and_headlines(data_dir: Path, tmp_path: Path) -> None:
    frame = read_ohlcv(data_dir / "sp500_daily_2013-2018.csv.gz")
    frame = frame[frame["symbol"].isin(SYMBOLS)].sort_values(["ts", "symbol"]).reset_index(drop=True)
    lo, hi = int(frame["ts"].min()), int(frame["ts"].max())
    items = [
        i
        for i in ReplayNewsFeed(data_dir / "news_headlines_benzinga_sample.csv.gz").load()
        if lo <= i.received_at <= hi and set(i.symbols) & set(SYMBOLS)
    ]
    earnings = earnings_from_news(items)
    assert all(earnings.count(s) >= 10 for s in SYMBOLS)  # about four reports a year each
    settings = Settings(model="rule", event_rules="earnings,catalyst", home=tmp_path)
    traded = run_rules(bars_of(frame), score_news(items), earnings, settings)
    plays = [t for t in traded if t.signal.model_version == EARNINGS_PLAY_VERSION]
    reactions = [t for t in traded if t.signal.model_version == CATALYST_REACTION_VERSION]
    assert len(plays) >= 40 and len(reactions) >= 40
    for t in traded:
        s, o = t.signal, t.outcome
        assert s.type is SignalType.EVENT and "a rule, no fitted edge" in s.reasons[0]
        assert o.signal_id == s.id and o.closed_at <= s.expires_at
        assert (o.net_r is None) == (o.outcome.value == "not_filled")
    for t in plays:
        s = t.signal
        release = earnings.next_release(s.symbol, to_ns(s.created_at))
        assert s.direction is Direction.LONG and release is not None
        assert to_ns(s.expires_at) <= release  # out at or before the event
        assert release - to_ns(s.created_at) <= 7 * 86_400 * 10**9  # at most 3 sessions (+ weekend, holiday)
        assert "reports at" in s.reasons[0]
    for t in reactions:
        assert "news [benzinga:" in t.signal.reasons[0]
    print(json.dumps(summarise(traded)))
