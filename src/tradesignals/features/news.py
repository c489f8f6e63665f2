"""News features per symbol over rolling windows, point-in-time on ``received_at``.

What a decision at time ``t`` may know of the news is what we had *received* by ``t``: the
provider's ``published_at`` is not used, because a story stamped 09:00 that reached us at 09:05
could not have informed a 09:01 decision (and in a backtest would leak). Each feature at ``t``
reads only items with ``received_at <= t`` and ``received_at > t - window``.

Features, for each window ``w`` in ``WINDOWS``:

* ``news_count_<w>``: items naming the symbol;
* ``news_sentiment_<w>``: mean signed sentiment (+score positive, -score negative, 0 neutral),
  0 when there is no item;
* ``news_<catalyst>_<w>``: 1.0 when an item in the window carries that catalyst, else 0.0;

and ``news_sentiment_surprise``: the short window's mean minus the long window's (how far today's
tone departs from the symbol's recent norm; 0 without news).

``NewsFeatureState`` keeps, per symbol, the items of the longest window in arrival order and
answers ``features(symbol, t)`` from them; items may be added in any order of ``received_at``
(a late replay batch) and are kept sorted.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field

from tradesignals.domain.catalysts import CATALYSTS
from tradesignals.domain.market import NS_PER_SECOND
from tradesignals.domain.news import ScoredNews

DAY_NS = 86_400 * NS_PER_SECOND
WINDOWS: dict[str, int] = {"1d": DAY_NS, "5d": 5 * DAY_NS, "20d": 20 * DAY_NS}
SHORT, LONG = "1d", "20d"
_SIGN = {"positive": 1.0, "negative": -1.0, "neutral": 0.0}


def feature_names() -> list[str]:
    names = []
    for w in WINDOWS:
        names += [f"news_count_{w}", f"news_sentiment_{w}"]
        names += [f"news_{c.value}_{w}" for c in CATALYSTS]
    return [*names, "news_sentiment_surprise"]


@dataclass(slots=True)
class _Entry:
    received_at: int
    signed: float
    catalysts: frozenset[str]


@dataclass
class NewsFeatureState:
    """Rolling news per symbol.

    ``live=True`` (the default) bounds memory by dropping what is older than the longest window
    behind the symbol's newest item, so it answers for times at or after that item (the live path
    asks "now"). ``live=False`` keeps everything, for building a research dataset at past times.
    """

    live: bool = True
    _by_symbol: dict[str, list[_Entry]] = field(default_factory=dict)
    _keys: dict[str, list[int]] = field(default_factory=dict)

    def add(self, scored: ScoredNews) -> None:
        entry = _Entry(
            scored.item.received_at,
            _SIGN.get(scored.sentiment, 0.0) * scored.sentiment_score,
            frozenset(scored.catalysts),
        )
        horizon = max(WINDOWS.values())
        for symbol in scored.item.symbols:
            entries = self._by_symbol.setdefault(symbol, [])
            keys = self._keys.setdefault(symbol, [])
            i = bisect.bisect_right(keys, entry.received_at)
            entries.insert(i, entry)
            keys.insert(i, entry.received_at)
            cut = bisect.bisect_right(keys, keys[-1] - horizon) if self.live else 0
            if cut:
                del entries[:cut]
                del keys[:cut]

    def add_all(self, items: Iterable[ScoredNews]) -> None:
        for s in items:
            self.add(s)

    def features(self, symbol: str, at_ns: int) -> dict[str, float]:
        """The features of ``symbol`` as known at ``at_ns`` (items received at or before it)."""
        entries = self._by_symbol.get(symbol, [])
        keys = self._keys.get(symbol, [])
        end = bisect.bisect_right(keys, at_ns)
        out: dict[str, float] = {}
        means: dict[str, float] = {}
        for name, width in WINDOWS.items():
            start = bisect.bisect_right(keys, at_ns - width, 0, end)
            window = entries[start:end]
            n = len(window)
            mean = sum(e.signed for e in window) / n if n else 0.0
            means[name] = mean
            out[f"news_count_{name}"] = float(n)
            out[f"news_sentiment_{name}"] = mean
            seen = frozenset().union(*(e.catalysts for e in window)) if window else frozenset()
            for c in CATALYSTS:
                out[f"news_{c.value}_{name}"] = 1.0 if c.value in seen else 0.0
        out["news_sentiment_surprise"] = means[SHORT] - means[LONG] if out[f"news_count_{SHORT}"] else 0.0
        return out
