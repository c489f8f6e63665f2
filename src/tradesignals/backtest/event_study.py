"""Measuring the event rules (``engine.event_rules``) on real bars and news, with the rulebook's outcomes.

The engine ``build_engine`` makes, with only the event rules deciding (the scorer is silenced), is
fed daily bars in (time, symbol) order; news reaches the catalyst rule's book as it would live —
an item is added once the bar clock passes its ``received_at``. Every event signal is followed by
the lifecycle to its outcome (fill at the next open, stop / last target / expiry, costs of
``domain.costs``); signals still open when the data ends are closed at the last close
(``LifecycleTracker.close_at``), as in the backtest.

Each rule is compared with a **base rate**: the same plan in the same direction decided at *every*
bar of the same symbols over the same dates (the label kernel, ``models.labels``, which is the
lifecycle's arithmetic), so "hit rate 55 %" reads against what any bar would have given. The rules
have no fitted parameters (their settings were fixed before measuring), so there is no training
window to be out of; the figures are also split by period to show whether they hold.

The earnings dates come from the news itself when no calendar file is given
(``earnings_from_news``): the first results headline of each report ("Agilent Reports Q4 EPS…"),
before the open → ``bmo``, after the close → ``amc``. That uses the report's own headline as if its
date had been announced beforehand, which companies do (weeks ahead), but a file of announced dates
would be the proper input; the bench says which it used.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from tradesignals.config import Settings
from tradesignals.domain.catalysts import Catalyst, classify
from tradesignals.domain.exits import is_win
from tradesignals.domain.market import Bar, Timeframe, to_ns
from tradesignals.domain.news import NewsItem, ScoredNews
from tradesignals.domain.outcomes import Outcome
from tradesignals.domain.signals import Direction, Signal
from tradesignals.domain.trade_plan import PlanParams
from tradesignals.engine.event_rules import CatalystBook
from tradesignals.engine.placeholder_rule import AtrState, Decision
from tradesignals.marketdata.calendar import calendar_resolver
from tradesignals.models.labels import LabelSpec, triple_barrier_labels
from tradesignals.news.earnings import EarningsCalendar
from tradesignals.wiring.engine_builder import build_engine, cost_schedule, plan_params

NEW_YORK = ZoneInfo("America/New_York")
_OPEN, _CLOSE = time(9, 30), time(16, 0)
# A results headline: the report itself, not its schedule, a preview or a comment on it.
_NOT_RESULTS = re.compile(
    r"\b(scheduled|preview|ahead of|head of|expectations for|conference call|transcript)\b"
)
_CLUSTER_NS = 20 * 86_400 * 10**9


class _Silent:
    """The scorer of a run where only the event rules decide."""

    version = "silent"

    def on_bar(self, bar: Bar) -> Decision | None:
        return None


def earnings_from_news(items: Iterable[NewsItem]) -> EarningsCalendar:
    """One release per report: the first results headline of each 20-day cluster per symbol.

    Before 09:30 New York → before the open (known at 08:00, as ``news.earnings`` reads ``bmo``),
    at or after 16:00 → after the close (16:05, ``amc``); during the session → the headline's own
    time (the market knew from then).
    """
    seen: dict[str, list[int]] = {}
    for item in sorted(items, key=lambda i: i.received_at):
        if Catalyst.EARNINGS not in classify(item.headline) or _NOT_RESULTS.search(item.headline.lower()):
            continue
        local = datetime.fromtimestamp(item.published_at / 1e9, tz=UTC).astimezone(NEW_YORK)
        if local.time() < _OPEN:
            at = datetime.combine(local.date(), time(8, 0), tzinfo=NEW_YORK)
        elif local.time() >= _CLOSE:
            at = datetime.combine(local.date(), time(16, 5), tzinfo=NEW_YORK)
        else:
            at = local
        ns = to_ns(at.astimezone(UTC))
        for symbol in item.symbols:
            releases = seen.setdefault(symbol, [])
            if not releases or ns - releases[-1] > _CLUSTER_NS:
                releases.append(ns)
    return EarningsCalendar(seen)


def score_news(items: Iterable[NewsItem]) -> list[ScoredNews]:
    """Catalysts by the rules (``domain.catalysts``); sentiment is not used by the event rules."""
    return [
        ScoredNews(
            item=i,
            sentiment="neutral",
            sentiment_score=0.0,
            catalysts=tuple(c.value for c in classify(i.headline)),
            scored_at=i.received_at,
        )
        for i in items
    ]


@dataclass(frozen=True, slots=True)
class Traded:
    signal: Signal
    outcome: Outcome


def run_rules(
    bars: Sequence[Bar],
    news: Sequence[ScoredNews],
    earnings: EarningsCalendar,
    settings: Settings,
) -> list[Traded]:
    """Every event signal the engine publishes over ``bars`` with its outcome (open ones closed at the end)."""
    book = CatalystBook()
    engine = build_engine(settings, earnings=earnings, catalysts=book, scorer_for=lambda _tf: _Silent())
    queue = sorted(news, key=lambda s: s.item.received_at)
    nxt = 0
    signals: dict[str, Signal] = {}
    outcomes: dict[str, Outcome] = {}
    last: dict[str, Bar] = {}
    for bar in bars:
        close_ns = engine.lifecycle.bar_close(bar)
        while nxt < len(queue) and queue[nxt].item.received_at <= close_ns:
            book.add(queue[nxt])
            nxt += 1
        for s in engine.on_bar_signals(bar):
            signals[s.id] = s
        for o in engine.drain_outcomes():
            outcomes[o.signal_id] = o
        last[bar.symbol] = bar
    for sig in engine.lifecycle.open_signals():
        end = last[sig.symbol]
        outcomes[sig.id] = engine.lifecycle.close_at(sig.id, end.close, engine.lifecycle.bar_close(end))
    return [Traded(signals[i], outcomes[i]) for i in signals]


def _wilder_atr(frame: pd.DataFrame) -> np.ndarray:
    out = np.full(len(frame), np.nan)
    state: dict[str, AtrState] = {}
    cols = zip(
        frame["symbol"], frame["ts"], frame["open"], frame["high"], frame["low"], frame["close"], strict=True
    )
    for k, (sym, ts, o, h, lo, c) in enumerate(cols):
        value = state.setdefault(sym, AtrState()).update(Bar(sym, Timeframe.D1, int(ts), o, h, lo, c, 0.0))
        out[k] = np.nan if value is None else value
    return out


def base_rates(frame: pd.DataFrame, settings: Settings, sessions: int) -> dict[str, dict[str, Any]]:
    """The plan decided at every bar (``sessions`` of horizon), per direction: the yardstick."""
    plan = plan_params(settings)
    plan = PlanParams(plan.stop_atr, plan.target_r, sessions, plan.cooldown_bars)
    spec = LabelSpec(plan=plan, costs=cost_schedule(settings))
    atr = _wilder_atr(frame)
    out = {}
    for direction in (Direction.LONG, Direction.SHORT):
        lab = triple_barrier_labels(
            frame, atr, direction=direction, spec=spec, calendar=calendar_resolver(settings.asset_class)
        )
        filled = lab["net_r"].notna().to_numpy()
        r = lab["net_r"].to_numpy()[filled]
        out[direction.value] = _figures(r.tolist())
    return out


def _figures(net_r: list[float], *, not_filled: int = 0, seed: int = 7) -> dict[str, Any]:
    n = len(net_r)
    if n == 0:
        return {"n": 0, "not_filled": not_filled}
    a = np.asarray(net_r, dtype=np.float64)
    rng = np.random.default_rng(seed)
    boot = a[rng.integers(0, n, size=(2000, n))].mean(axis=1) if n > 1 else a
    return {
        "n": n,
        "not_filled": not_filled,
        "hit_rate": round(float(np.mean([is_win(x) for x in a])), 4),
        "mean_net_r": round(float(a.mean()), 4),
        "mean_net_r_ci95": [
            round(float(np.percentile(boot, 2.5)), 4),
            round(float(np.percentile(boot, 97.5)), 4),
        ],
    }


def summarise(traded: Sequence[Traded], split_ns: int | None = None) -> dict[str, Any]:
    """Per rule and direction: hit rate and mean net R (filled trades), with not-filled counted."""
    out: dict[str, Any] = {}
    for version in sorted({t.signal.model_version for t in traded}):
        mine = [t for t in traded if t.signal.model_version == version]
        per: dict[str, Any] = {}
        for direction in (Direction.LONG, Direction.SHORT):
            rows = [t for t in mine if t.signal.direction is direction]
            if not rows:
                continue
            per[direction.value] = _slice(rows)
            if split_ns is not None:
                per[direction.value]["periods"] = {
                    "before_split": _slice([t for t in rows if to_ns(t.signal.created_at) < split_ns]),
                    "after_split": _slice([t for t in rows if to_ns(t.signal.created_at) >= split_ns]),
                }
        out[version] = per
    return out


def _slice(rows: Sequence[Traded]) -> dict[str, Any]:
    r = [t.outcome.net_r for t in rows if t.outcome.net_r is not None and math.isfinite(t.outcome.net_r)]
    return _figures(r, not_filled=sum(1 for t in rows if t.outcome.net_r is None))


def bars_of(frame: pd.DataFrame) -> list[Bar]:
    """Rows (``ts symbol open high low close volume``, time order) as daily bars, bad ones dropped."""
    cols = [frame[c].to_numpy().tolist() for c in ("ts", "symbol", "open", "high", "low", "close", "volume")]
    bars = [Bar(s, Timeframe.D1, int(t), o, h, lo, c, v) for t, s, o, h, lo, c, v in zip(*cols, strict=True)]
    return [b for b in bars if not b.problems()]


__all__ = [
    "Traded",
    "bars_of",
    "base_rates",
    "earnings_from_news",
    "run_rules",
    "score_news",
    "summarise",
]
