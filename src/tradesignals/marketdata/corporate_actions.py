"""Flag one-bar moves that look like unadjusted corporate actions or vendor glitches.

"Split-adjusted" vendor files still hold spin-offs (EBAY fell 57 % the day PayPal left), missed
splits and one-day glitches (a close from another day or another symbol, undone the next bar). To
a label they are a −23 … −62 % stop that no trader suffered; to an indicator they are a level
shift that poisons every window they fall in. This module only *finds* them — a pure function of
the closes, no I/O — so ingest can count them and the dataset builder can keep them out of labels
and feature warm-up (``near_flags``).

The rules (per symbol, in time order, on close-to-close log returns ``r``):

* **Scale.** ``σ`` is a robust estimate of the symbol's recent daily noise: the median of ``|r|``
  over the previous ``window`` returns divided by 0.6745 (the normal's MAD), so the jumps
  themselves barely move it. A bar is judged only after ``min_history`` returns.
* **Jump.** ``|r| ≥ jump_sigma · σ`` and ``|r| ≥ min_move``. ``jump_sigma`` is 8, the live
  validator's spike threshold (``Validator.spike_sigma``): one meaning of "far beyond recent
  volatility" across the product. ``min_move`` (5 %) keeps a flat, illiquid series from calling
  every small move a jump. A jump alone is *not* flagged — earnings gaps of 20–30σ are real and
  tradable; it needs one of the three signatures below.
* ``reversed_jump``: the next close is nearer (in log) to the close before the jump than to the
  jump's close — the validator's rule for a reverted spike. The bar after it is the undoing, not
  a new jump, and is not judged.
* ``split_ratio``: not reversed, and ``r`` is within ``ratio_sigma · σ`` (3σ, an ordinary day's
  noise on top of the split) of the log of a standard split factor: 2:1, 3:2, 3:1, 4:1, 5:1,
  10:1 or one of their reverse splits. The tolerance never exceeds ``min_move``: in a volatile
  series 3σ would cover most of the gap between factors and any big move would "match" one.
* ``level_drop``: not reversed, not a split ratio, and a fall to at most ``drop_ratio`` (2/3) of
  the previous close — deeper than the smallest standard split. That is the spin-off signature
  (the parent keeps trading at what is left); a genuine news crash that deep is rare, and the
  cost of a false flag is only a few training rows (see ``near_flags``), while a missed one is a
  fake −40 % label.

What it cannot see: a spin-off worth less than a third of the parent that lands on no split ratio
(YUM's −30 % on 2016-11-01 passes unflagged), a glitch that lasts two bars, or one too small to be
a jump. Thresholds are stated in σ of the symbol's own history, never fitted to a data file.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from tradesignals.domain.bar_quality import CORPORATE_ACTION_FLAGS, QualityReason

__all__ = [
    "SPLIT_FACTORS",
    "ActionRules",
    "CorporateActionFlags",
    "detect_corporate_actions",
    "flag_closes",
    "near_flags",
]

#: Price factors (new / old) of standard splits, forward and reverse: 2:1, 3:2, 3:1, 4:1, 5:1, 10:1.
SPLIT_FACTORS: Final = tuple(sorted({f for k in (2.0, 1.5, 3.0, 4.0, 5.0, 10.0) for f in (1.0 / k, k)}))
_LOG_FACTORS: Final = np.log(np.array(SPLIT_FACTORS))
_MAD_TO_SIGMA: Final = 0.6745

# Codes in the int8 arrays: 0 = not flagged, i + 1 = CORPORATE_ACTION_FLAGS[i].
_CODE = {reason: i + 1 for i, reason in enumerate(CORPORATE_ACTION_FLAGS)}


@dataclass(frozen=True, slots=True)
class ActionRules:
    """The thresholds of the module docstring; defaults are the documented ones."""

    window: int = 60
    min_history: int = 20
    jump_sigma: float = 8.0
    min_move: float = 0.05
    ratio_sigma: float = 3.0
    drop_ratio: float = 2.0 / 3.0

    def __post_init__(self) -> None:
        if not 1 <= self.min_history <= self.window:
            raise ValueError(f"need 1 <= min_history <= window (got {self.min_history}, {self.window})")
        for name in ("jump_sigma", "ratio_sigma"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0 (got {getattr(self, name)})")
        if not self.min_move >= 0:
            raise ValueError(f"min_move must be >= 0 (got {self.min_move})")
        if not 0 < self.drop_ratio < 1:
            raise ValueError(f"drop_ratio must be in (0, 1) (got {self.drop_ratio})")


def flag_closes(close: npt.ArrayLike, rules: ActionRules = ActionRules()) -> npt.NDArray[np.int8]:
    """One symbol's closes in time order → a code per bar (0, or 1 + index in ``CORPORATE_ACTION_FLAGS``).

    Closes that are NaN or not positive are skipped (never flagged, never a reference price).
    """
    c = np.asarray(close, dtype=np.float64)
    codes = np.zeros(len(c), dtype=np.int8)
    with np.errstate(invalid="ignore"):
        valid = np.flatnonzero(np.isfinite(c) & (c > 0))
    if len(valid) < rules.min_history + 2:
        return codes
    logc = np.log(c[valid])
    r = np.full(len(logc), np.nan)
    r[1:] = np.diff(logc)
    sigma = (
        pd.Series(np.abs(r)).shift(1).rolling(rules.window, min_periods=rules.min_history).median().to_numpy()
        / _MAD_TO_SIGMA
    )
    with np.errstate(invalid="ignore"):
        jump = (np.abs(r) >= rules.jump_sigma * sigma) & (np.abs(r) >= rules.min_move)
    # Reversed: the next close is nearer the close before the jump than the jump's close.
    reversed_ = np.zeros(len(logc), dtype=bool)
    reversed_[1:-1] = np.abs(logc[2:] - logc[:-2]) < np.abs(logc[2:] - logc[1:-1])
    reversed_ &= jump
    # The bar after a reversed jump is its undoing, not a jump of its own.
    undoing = np.zeros(len(logc), dtype=bool)
    undoing[1:] = reversed_[:-1]
    jump &= ~undoing
    reversed_ &= ~undoing
    lasting = jump & ~reversed_
    with np.errstate(invalid="ignore"):
        nearest = np.min(np.abs(r[:, None] - _LOG_FACTORS[None, :]), axis=1)
        split = lasting & (nearest <= np.minimum(rules.ratio_sigma * sigma, rules.min_move))
        drop = lasting & ~split & (r <= math.log(rules.drop_ratio))
    out = np.zeros(len(logc), dtype=np.int8)
    out[reversed_] = _CODE[QualityReason.REVERSED_JUMP]
    out[split] = _CODE[QualityReason.SPLIT_RATIO]
    out[drop] = _CODE[QualityReason.LEVEL_DROP]
    codes[valid] = out
    return codes


@dataclass(frozen=True, eq=False)
class CorporateActionFlags:
    """Per row of the frame given to ``detect_corporate_actions`` (same order): the flag code."""

    codes: npt.NDArray[np.int8]

    @property
    def mask(self) -> npt.NDArray[np.bool_]:
        """True for flagged rows."""
        return np.asarray(self.codes != 0, dtype=bool)

    def reasons(self) -> list[QualityReason | None]:
        """The reason per row (None when not flagged)."""
        table: list[QualityReason | None] = [None, *CORPORATE_ACTION_FLAGS]
        return [table[i] for i in self.codes.tolist()]

    def counts(self) -> dict[QualityReason, int]:
        """Flagged rows by reason (reasons with no row left out), in ``CORPORATE_ACTION_FLAGS`` order."""
        got = Counter(self.codes[self.codes != 0].tolist())
        return {r: got[_CODE[r]] for r in CORPORATE_ACTION_FLAGS if got[_CODE[r]]}

    def masked(self, frame: pd.DataFrame) -> pd.DataFrame:
        """A copy of ``frame`` with the flagged rows' prices NaN: what the feature engine should see.

        The feature engines treat a bar with a NaN price as *bad* and restart the symbol after it,
        so no indicator is computed across the flagged bar and warm-up starts again on the far
        side (on the new price scale after a split or spin-off).
        """
        out = frame.copy()
        if self.mask.any():
            out.loc[self.mask, ["open", "high", "low", "close"]] = np.nan
        return out


def detect_corporate_actions(frame: pd.DataFrame, rules: ActionRules = ActionRules()) -> CorporateActionFlags:
    """Flags for a canonical OHLCV frame (``read_ohlcv``'s columns), in the frame's own row order.

    Each symbol is taken in time order; rows are not assumed sorted. Judged on ``close`` only.
    """
    n = len(frame)
    codes = np.zeros(n, dtype=np.int8)
    if n == 0:
        return CorporateActionFlags(codes)
    sym, _ = pd.factorize(frame["symbol"])
    ts = frame["ts"].to_numpy(dtype=np.int64)
    close = frame["close"].to_numpy(dtype=np.float64)
    order = np.lexsort((ts, sym))
    cuts = np.flatnonzero(np.diff(sym[order])) + 1
    for rows in np.split(order, cuts):
        codes[rows] = flag_closes(close[rows], rules)
    return CorporateActionFlags(codes)


def near_flags(
    symbol: npt.ArrayLike,
    ts: npt.ArrayLike,
    flagged: npt.ArrayLike,
    *,
    ahead: int,
    behind: int = 0,
) -> npt.NDArray[np.bool_]:
    """Rows with a flagged bar of the same symbol among themselves, the next ``ahead`` bars or the
    previous ``behind`` bars (bars counted per symbol in time order; rows in any order).

    For labels: ``near_flags(sym, ts, flags, ahead=horizon_bars)`` is True for every row whose
    label window (its own bar, where the entry is decided, and the bars the barriers are checked
    on) holds a flagged bar: such a row gets no label. For feature warm-up:
    ``behind=lookback`` marks the rows whose indicators saw the flagged bar.
    """
    if ahead < 0 or behind < 0:
        raise ValueError(f"ahead and behind must be >= 0 (got {ahead}, {behind})")
    f = np.asarray(flagged, dtype=bool)
    n = len(f)
    out = np.zeros(n, dtype=bool)
    if n == 0 or not f.any():
        return out
    sym, _ = pd.factorize(pd.Series(np.asarray(symbol)))
    order = np.lexsort((np.asarray(ts, dtype=np.int64), sym))
    s, fs = sym[order], f[order].astype(np.int64)
    csum = np.concatenate(([0], np.cumsum(fs)))  # csum[i] = flags before sorted row i
    pos = np.arange(n)
    new = np.ones(n, dtype=bool)
    new[1:] = s[1:] != s[:-1]
    start = np.maximum.accumulate(np.where(new, pos, 0))  # first row of this row's symbol
    end = np.empty(n, dtype=np.int64)  # one past the last row of this row's symbol
    bounds = np.append(np.flatnonzero(new), n)
    end[:] = np.repeat(bounds[1:], np.diff(bounds))
    lo = np.maximum(pos - behind, start)
    hi = np.minimum(pos + ahead + 1, end)
    out[order] = (csum[hi] - csum[lo]) > 0
    return out
