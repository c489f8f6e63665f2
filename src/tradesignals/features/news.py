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

One definition, two paths. Live, the news pipeline ``add``s each item as it is scored and anything
may ask ``features(symbol, now)`` (``GET /api/news/features``). For training, ``news_feature_matrix``
loads every item into a research state (``live=False``) and asks the *same* ``features`` at each
row's decision time (the bar's real close, ``domain.sessions.bar_close_ns``). There is no second
implementation to drift from the first, and point-in-time holds by the one rule in ``features``:
an item received after a bar's close never reaches that bar's row
(``tests/unit/features/test_point_in_time.py``). What the windows and the sign mean is recorded in
``NEWS_PARAMS``, which the ``core_news`` feature set fingerprints: changing them makes a new set.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from tradesignals.domain.catalysts import CATALYSTS
from tradesignals.domain.market import NS_PER_SECOND
from tradesignals.domain.news import ScoredNews

DAY_NS = 86_400 * NS_PER_SECOND
WINDOWS: dict[str, int] = {"1d": DAY_NS, "5d": 5 * DAY_NS, "20d": 20 * DAY_NS}
SHORT, LONG = "1d", "20d"
_SIGN = {"positive": 1.0, "negative": -1.0, "neutral": 0.0}

#: What the columns mean, for the feature set's fingerprint (``features.catalog.CORE_NEWS_V1``).
NEWS_PARAMS: dict[str, Any] = {
    "time": "received_at",
    "windows_s": {name: width // NS_PER_SECOND for name, width in WINDOWS.items()},
    "window": "received_at in (t - w, t]",
    "sentiment": "mean of +score (positive), -score (negative), 0 (neutral); 0 without items",
    "surprise": [SHORT, LONG],
    "catalysts": "domain.catalysts rules on the headline and provider tags",
}


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

    def symbols(self) -> list[str]:
        """Symbols with at least one item held."""
        return sorted(s for s, keys in self._keys.items() if keys)

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


def news_feature_matrix(
    news: Iterable[ScoredNews], symbols: npt.ArrayLike, at_ns: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """Rows ``(symbols[i], at_ns[i])`` → their news features, ``feature_names()`` order.

    Training's path to the live definition: every item goes into one research state and each row
    asks it, at its own time, exactly what the live state answers then. Rows of a symbol without
    news get the state's answer for no items (zeros) without asking.
    """
    state = NewsFeatureState(live=False)
    state.add_all(news)
    sym = np.asarray(symbols).astype(str)
    at = np.asarray(at_ns, dtype=np.int64)
    if sym.shape != at.shape:
        raise ValueError(f"symbols {sym.shape} and times {at.shape} differ in shape")
    names = feature_names()
    out = np.zeros((len(sym), len(names)), dtype=np.float64)
    for symbol in state.symbols():
        for i in np.flatnonzero(sym == symbol).tolist():
            got = state.features(symbol, int(at[i]))
            out[i] = [got[n] for n in names]
    return out
