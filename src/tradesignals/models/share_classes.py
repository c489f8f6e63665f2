"""Share-class twins: two tickers of one company (GOOG/GOOGL, DISCA/DISCK, FOX/FOXA, NWS/NWSA,
UA/UAA, BRK.A/BRK.B) are one business, one price path. A model trained on one has seen the other.

Evaluation uses this to decide which symbols are really "unseen": scoring GOOGL's in-period rows as
new to a model trained on GOOG would grade it on answers it learnt. The rule, in two parts:

1. **Name.** A ticker's *root* (``domain.share_classes.share_class_root``, shared with the news
   name mapping) is the ticker without a share-class suffix: an explicit one (``.``,
   ``-``, ``/`` or a space, then one or two letters: ``BRK.B``, ``BF-B``, ``HEI.A``) or a bare
   trailing class letter (one of ``A B C K L``: ``GOOGL`` → ``GOOG``, ``DISCK`` → ``DISC``,
   ``FOXA`` → ``FOX``) on a root of at least two characters. Two tickers are *name candidates* when
   they share a root, or one is the other's root.
2. **Prices.** Explicit-suffix candidates are twins on the name alone (no exchange reuses
   ``X.A``/``X.B`` for two companies). A bare-letter match is ambiguous — ``BA``/``BAC`` (Boeing,
   Bank of America), ``UA``/``UAL``, ``AA``/``AAL`` share a "root" too — so it counts as a twin when
   the two tickers' daily close-to-close log returns correlate at ``NAME_MATCH_MIN_CORR`` (0.9) or
   more over at least ``MIN_OVERLAP_DATES`` (20) common dates. The correlation is taken on ranks
   (each ticker's returns ranked once over its own dates, then Pearson over the common dates, a
   Spearman correlation up to the ranking window): one bad print in one class (the S&P file has
   DISCA/DISCK glitches) would wreck a correlation of the raw returns. Two share classes of one company
   track each other almost exactly; two companies in one index rarely exceed 0.8 on daily returns.
   When the returns cannot be compared (a ticker absent from the data, too short an overlap), a
   name candidate **counts as a twin**: in doubt, a row is treated as seen, never as fresh.
   Independently of names, two tickers whose returns correlate at ``RETURNS_ONLY_MIN_CORR``
   (0.98) or more over ``MIN_OVERLAP_DATES`` common dates are twins (a renamed ticker, a class
   whose letters follow no convention).

Thresholds were set from that reasoning before looking at any file, and are not tuned.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tradesignals.domain.share_classes import CLASS_LETTERS, share_class_root

__all__ = [
    "CLASS_LETTERS",
    "MIN_OVERLAP_DATES",
    "NAME_MATCH_MIN_CORR",
    "RETURNS_ONLY_MIN_CORR",
    "Twin",
    "daily_returns",
    "find_twins",
    "name_candidates",
    "share_class_root",
]

NAME_MATCH_MIN_CORR = 0.9
RETURNS_ONLY_MIN_CORR = 0.98
MIN_OVERLAP_DATES = 20


@dataclass(frozen=True, slots=True)
class Twin:
    """``symbol`` counts as seen because of ``twin_of``; ``reason`` says which rule matched and
    ``correlation`` is the daily-return correlation where it was measured."""

    symbol: str
    twin_of: str
    reason: str  # "explicit class suffix", "name and returns", "name (returns not comparable)", "returns"
    correlation: float | None

    def to_dict(self) -> dict[str, object]:
        return {
            "symbol": self.symbol,
            "twin_of": self.twin_of,
            "reason": self.reason,
            "correlation": self.correlation,
        }


def name_candidates(a: str, b: str) -> tuple[bool, bool]:
    """``(candidates, explicit)``: do ``a`` and ``b`` look like classes of one company by name, and
    is the match explicit (both or one carrying a separator suffix on the same root)?"""
    sa, sb = a.strip().upper(), b.strip().upper()
    if sa == sb:
        return False, False
    ra, ea = share_class_root(sa)
    rb, eb = share_class_root(sb)
    explicit = ea or eb
    if explicit:
        # BRK.A/BRK.B, BRK.B/BRK: same explicit root.
        root_a = ra if ea else sa
        root_b = rb if eb else sb
        return root_a == root_b, root_a == root_b
    # Bare letters: DISCA/DISCK (same root), FOX/FOXA and GOOG/GOOGL (one is the other's root).
    return ra in (rb, sb) or rb == sa, False


def daily_returns(bars: pd.DataFrame, symbols: Iterable[str] | None = None) -> pd.DataFrame:
    """Daily close-to-close log returns, one column per symbol, indexed by UTC date (``ts`` // day)."""
    frame = bars[["ts", "symbol", "close"]]
    if symbols is not None:
        frame = frame[frame["symbol"].isin(list(symbols))]
    day = frame["ts"].to_numpy(dtype=np.int64) // 86_400_000_000_000
    wide = (
        pd.DataFrame({"day": day, "symbol": frame["symbol"].astype(str).to_numpy(), "close": frame["close"]})
        .pivot_table(index="day", columns="symbol", values="close", aggfunc="last")
        .sort_index()
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = pd.DataFrame(np.log(wide.to_numpy(dtype=np.float64)), index=wide.index, columns=wide.columns)
    out: pd.DataFrame = logs.diff().replace([np.inf, -np.inf], np.nan)
    return out


def find_twins(
    candidates: Iterable[str], seen: Iterable[str], returns: pd.DataFrame | None = None
) -> dict[str, Twin]:
    """Which of ``candidates`` (symbols a model did not train on) are share-class twins of a ``seen``
    symbol, by the module's rule. ``returns`` is ``daily_returns`` of the data at hand (any superset
    of the symbols); without it only the name rule applies, and every name candidate is a twin."""
    seen_list = sorted({str(s) for s in seen})
    out: dict[str, Twin] = {}
    returns = None if returns is None else returns.rank()
    cols: Mapping[str, object] = {} if returns is None else {str(c): c for c in returns.columns}
    for sym in sorted({str(c) for c in candidates} - set(seen_list)):
        best: Twin | None = None
        for other in seen_list:
            match, explicit = name_candidates(sym, other)
            if not match:
                continue
            if explicit:
                best = Twin(sym, other, "explicit class suffix", _corr(returns, cols, sym, other))
                break
            corr = _corr(returns, cols, sym, other)
            if corr is None:
                best = best or Twin(sym, other, "name (returns not comparable)", None)
            elif corr >= NAME_MATCH_MIN_CORR:
                best = Twin(sym, other, "name and returns", corr)
                break
        if best is None and returns is not None and sym in cols:
            best = _returns_only(returns, cols, sym, seen_list)
        if best is not None:
            out[sym] = best
    return out


def _corr(ranks: pd.DataFrame | None, cols: Mapping[str, object], a: str, b: str) -> float | None:
    """Correlation of two symbols' ranked daily returns over their common dates; None if fewer than
    ``MIN_OVERLAP_DATES`` or either is absent or flat."""
    returns = ranks
    if returns is None or a not in cols or b not in cols:
        return None
    pair = returns[[cols[a], cols[b]]].dropna()
    if len(pair) < MIN_OVERLAP_DATES:
        return None
    x, y = pair.iloc[:, 0].to_numpy(), pair.iloc[:, 1].to_numpy()
    if x.std() == 0 or y.std() == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def _returns_only(
    returns: pd.DataFrame, cols: Mapping[str, object], sym: str, seen: list[str]
) -> Twin | None:
    """The seen symbol whose returns track ``sym``'s at ``RETURNS_ONLY_MIN_CORR`` or more, if any."""
    others = [cols[s] for s in seen if s in cols]
    if not others:
        return None
    target = returns[cols[sym]]
    block = returns[others]
    valid = block.notna() & target.notna().to_numpy()[:, None]
    overlap = valid.sum(axis=0)
    corr = block.corrwith(target)
    corr = corr[(overlap >= MIN_OVERLAP_DATES) & corr.notna()]
    if corr.empty or float(corr.max()) < RETURNS_ONLY_MIN_CORR:
        return None
    best = str(corr.idxmax())
    return Twin(sym, best, "returns", float(corr.max()))
