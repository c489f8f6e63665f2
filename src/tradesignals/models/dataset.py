"""The training table: one row per (symbol, bar, direction) the engine could have signalled, with the
features it would have seen at that bar and the outcome that signal would have had.

What a row means is what the engine's confidence means: **P(win)** — the rulebook's one win event
(``domain.exits.is_win``: net R above zero at the plan's exit, after the fill at the next bar's open
and the costs of the symbol's asset class) — for a signal decided at the bar's close. The plan is the
engine's (``domain.trade_plan.PlanParams``: stop 1.5 × ATR, targets 1R/2R/3R, a swing signal lives
five sessions, a day signal to its session's close). The ATR is the feature engine's ``atr_14``, the
one the engine hands ``build_signal``, so a label's levels are the live signal's levels. Decisions
whose next open was already beyond the stop or first target are never filled and are not samples.

Choices, and why:

* **Long only by default.** The baselines the model must beat (always long; 20-bar momentum) are
  long-side rules, and over the S&P 500 sample the long and short labels are near complements (with
  1R = the stop distance a long win is mostly a short loss, only time-outs and double touches count
  against both), so pooling both directions mostly teaches the model the sign of the market's drift
  and inflates a pooled AUC with it. ``directions=(LONG, SHORT)`` is supported: each bar then gives
  two rows with a ``direction`` feature (+1 / -1), each row's uniqueness weight halved because the
  pair shares the same bars, and the evaluation reports the directions separately.
* **Scale-free features only.** A tree split on ``sma_20 > 83.4`` learns which stocks and which
  years traded at that price — a lookup of the past that cannot carry to a new symbol or a later
  year. The model takes the feature set's columns that are ratios, oscillators or returns
  (``SCALE_FREE_FEATURES``) and leaves price and volume levels (SMA, EMA, bands, ATR in dollars, OBV,
  VWAP, volume-profile prices, MACD in price units) out. The model still records the feature set's
  ref: its columns are *defined* by that set, and a changed definition must refuse the model.
* **Only warm rows with a label.** Warm-up rows are never scored live (the scorer skips them), and a
  censored or impossible label (``labels`` module) is not a sample.
* **No corporate action or glitch in a label or a warm-up.** One-bar moves that look like an
  unadjusted split, a spin-off or a one-day vendor glitch (``marketdata.corporate_actions``) are
  flagged. The features are computed with the flagged bars' prices blanked, so the feature engine
  treats them as bad bars and restarts warm-up after them (no indicator spans a level shift), and
  a row whose label window holds a flagged bar gets no label (``label_window_flagged``). Counted
  in ``counts`` (``flagged_bars``, ``flagged_<reason>``).
* **News, when the feature set has it** (``core_news``): the rolling news features of
  ``features/news.py`` at each row's decision time — the bar's real close
  (``domain.sessions.bar_close_ns``) — from the items passed as ``news``, through the same
  ``NewsFeatureState.features`` the live pipeline answers with. An item received after the close
  never reaches the row. A set without news columns ignores ``news``; one with them refuses to
  build without it (no silent zeros).
* **Point in time.** Features at bar ``t`` come from bars ``<= t`` (``features.batch`` by
  construction; ``tests/unit/models/test_dataset.py`` moves the future and checks nothing at ``t``
  moves). Only the label looks ahead, and it carries ``t_end`` so validation can purge on it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from tradesignals.domain.market import AssetClass, Timeframe
from tradesignals.domain.news import ScoredNews
from tradesignals.domain.sessions import bar_close_ns
from tradesignals.domain.signals import Direction, SignalType
from tradesignals.features.catalog import FeatureSet
from tradesignals.features.catalog import latest as latest_feature_set
from tradesignals.features.news import feature_names as news_feature_names
from tradesignals.features.news import news_feature_matrix
from tradesignals.marketdata.calendar import SessionCalendar, calendar_resolver
from tradesignals.marketdata.corporate_actions import detect_corporate_actions, near_flags
from tradesignals.marketdata.ohlcv_file import PriceChoice, infer_timeframe, read_ohlcv
from tradesignals.models.labels import LabelSpec, triple_barrier_labels

__all__ = [
    "ATR_COLUMN",
    "DIRECTION_FEATURE",
    "MOMENTUM_COLUMN",
    "NEWS_FEATURES",
    "SCALE_FREE_FEATURES",
    "SUPPORTED_SIGNAL_TYPES",
    "Dataset",
    "DatasetError",
    "build_dataset",
    "dataset_summary",
    "decision_times",
    "label_window_flagged",
    "load_bars",
    "model_columns",
    "parse_directions",
    "parse_signal_type",
]

#: Columns a model may take: free of the price and volume scale (see the module docstring).
SCALE_FREE_FEATURES = frozenset(
    {
        "rsi_14",
        "adx_14",
        "ret_1",
        "ret_5",
        "ret_20",
        "bb_pctb",
        "bb_bandwidth",
        "stoch_k",
        "stoch_d",
        "rvol_20",
        "volume_z_20",
        "vwap_dist",
        "gap_pct",
        "cdl_engulfing",
        "cdl_doji",
        "cdl_hammer",
        "prev_close_dist",
        "prev_high_dist",
        "prev_low_dist",
    }
)
#: The news columns (counts, sentiment, surprise, catalyst flags): scale-free too, and taken by a
#: model only when its feature set has them.
NEWS_FEATURES = frozenset(news_feature_names())
DIRECTION_FEATURE = "direction"
ATR_COLUMN = "atr_14"  # the barriers' ATR: the engine's
MOMENTUM_COLUMN = "ret_20"  # the momentum baseline's input, kept whether or not the model uses it
SUPPORTED_SIGNAL_TYPES = (SignalType.SWING, SignalType.DAY)
LABEL_FIELDS = ("label", "t_end", "weight", "ret", "net_r", "outcome")


class DatasetError(ValueError):
    """Input that cannot make a training table (wrong timeframe, no rows…); a one-line message."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


@dataclass(frozen=True, eq=False)
class Dataset:
    """Rows in time order (``ts``, then symbol, then direction) and what they were built with.

    ``frame`` holds ``ts`` (int ns), ``symbol``, ``direction`` (+1 long, -1 short), every feature the
    batch engine computes, and the label fields ``label`` (0/1), ``t_end`` (int ns), ``weight``
    (uniqueness), ``ret`` and ``outcome``. ``feature_names`` are the model's input columns, in order.
    ``counts`` says what was dropped on the way: ``bars`` read, ``flagged_bars`` (and
    ``flagged_<reason>``, see ``marketdata.corporate_actions``), then per (bar, direction)
    ``not_warm``, ``unlabelled`` and ``label_window_flagged``, and the ``rows`` kept.
    """

    frame: pd.DataFrame
    feature_names: tuple[str, ...]
    feature_set: FeatureSet
    spec: LabelSpec
    directions: tuple[Direction, ...]
    timeframe: Timeframe
    counts: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frame)

    def matrix(self, names: Sequence[str] | None = None) -> npt.NDArray[np.float64]:
        """Feature matrix (C order, float64) in ``names`` order (default the model's columns)."""
        cols = list(self.feature_names if names is None else names)
        missing = [c for c in cols if c not in self.frame.columns]
        if missing:
            raise DatasetError(f"the dataset has no column(s) {missing}")
        return np.ascontiguousarray(self.frame[cols].to_numpy(dtype=np.float64))

    @property
    def y(self) -> npt.NDArray[np.float64]:
        return self.frame["label"].to_numpy(dtype=np.float64)

    @property
    def weight(self) -> npt.NDArray[np.float64]:
        return self.frame["weight"].to_numpy(dtype=np.float64)

    @property
    def ts(self) -> npt.NDArray[np.int64]:
        return self.frame["ts"].to_numpy(dtype=np.int64)

    @property
    def t_end(self) -> npt.NDArray[np.int64]:
        return self.frame["t_end"].to_numpy(dtype=np.int64)

    @property
    def direction(self) -> npt.NDArray[np.float64]:
        return self.frame[DIRECTION_FEATURE].to_numpy(dtype=np.float64)

    @property
    def symbols(self) -> list[str]:
        return sorted(self.frame["symbol"].astype(str).unique().tolist())

    def subset(self, idx: npt.ArrayLike) -> Dataset:
        """The rows at positions ``idx`` (order kept), with the same definitions."""
        rows = self.frame.iloc[np.asarray(idx, dtype=np.int64)].reset_index(drop=True)
        return Dataset(
            rows,
            self.feature_names,
            self.feature_set,
            self.spec,
            self.directions,
            self.timeframe,
            {**self.counts, "rows": len(rows)},
        )

    def with_labels(self, y: npt.ArrayLike) -> Dataset:
        """A copy with other labels (tests: shuffled labels must leave nothing to learn)."""
        frame = self.frame.copy()
        frame["label"] = np.asarray(y, dtype=np.float64)
        return Dataset(
            frame,
            self.feature_names,
            self.feature_set,
            self.spec,
            self.directions,
            self.timeframe,
            dict(self.counts),
        )


def parse_signal_type(value: str | SignalType) -> SignalType:
    """A signal type the labels can define; a one-line error naming the choices otherwise."""
    try:
        kind = SignalType(str(value).strip().lower())
    except ValueError:
        kind = None
    if kind not in SUPPORTED_SIGNAL_TYPES:
        choices = ", ".join(t.value for t in SUPPORTED_SIGNAL_TYPES)
        raise DatasetError(f"unknown signal type {str(value)!r}: models are trained for {choices}")
    assert kind is not None
    return kind


def parse_directions(values: Iterable[str | Direction]) -> tuple[Direction, ...]:
    """Distinct directions in a fixed order (long before short), refusing unknown names."""
    out: set[Direction] = set()
    for v in values:
        try:
            out.add(Direction(str(v).strip().lower()))
        except ValueError:
            raise DatasetError(f"unknown direction {str(v)!r}: long or short") from None
    if not out:
        raise DatasetError("at least one direction is needed")
    return tuple(d for d in Direction if d in out)


def model_columns(feature_set: FeatureSet, directions: Sequence[Direction]) -> tuple[str, ...]:
    """The model's inputs: the set's scale-free columns in the set's order, then ``direction`` if both."""
    cols = tuple(c for c in feature_set.columns if c in SCALE_FREE_FEATURES or c in NEWS_FEATURES)
    if not cols:
        raise DatasetError(
            f"feature set {feature_set.ref} has no scale-free column for a model "
            f"(it has {list(feature_set.columns)})"
        )
    return (*cols, DIRECTION_FEATURE) if len(directions) > 1 else cols


def load_bars(paths: str | Path | Sequence[str | Path], *, prices: PriceChoice | None = None) -> pd.DataFrame:
    """Every file's bars in one canonical frame; a (symbol, ts) given twice is refused, not guessed.

    ``prices`` is ``read_ohlcv``'s (adjusted when a file has an adjusted close, unless ``raw``).
    """
    items = [paths] if isinstance(paths, str | Path) else list(paths)
    if not items:
        raise DatasetError("no data file given")
    frames = []
    for p in items:
        path = Path(p)
        if not path.exists():
            raise DatasetError(f"{path}: no such file")
        frames.append(read_ohlcv(path, prices=prices))
    bars = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    dup = bars.duplicated(["symbol", "ts"])
    if dup.any():
        row = bars.loc[dup].iloc[0]
        raise DatasetError(
            f"{int(dup.sum())} bars appear twice across the data files (first: {row['symbol']} at ts "
            f"{int(row['ts'])}); give each bar once"
        )
    return bars


def build_dataset(
    bars: pd.DataFrame,
    *,
    signal_type: str | SignalType = SignalType.SWING,
    directions: Sequence[str | Direction] = (Direction.LONG,),
    feature_set: FeatureSet | None = None,
    spec: LabelSpec | None = None,
    calendar: SessionCalendar | Callable[[str], SessionCalendar] | None = None,
    asset_class: AssetClass | None = None,
    news: Sequence[ScoredNews] | None = None,
) -> Dataset:
    """Features (batch) plus triple-barrier labels for ``signal_type``, warm and labelled rows only.

    ``news``: scored items for a feature set with news columns (see the module docstring); counted
    in ``counts`` as ``news_items`` and ``rows_with_news`` (bars with an item in the longest window).

    ``bars`` is ``read_ohlcv``'s frame. ``feature_set`` defaults to the catalog's current default set.
    The labels follow ``spec`` (default: the product's plan and costs for ``signal_type``); evaluation
    re-labels with the spec a model was trained on, whatever the engine's defaults are now.
    ``swing`` needs daily bars and ``day`` intraday bars, as the engine pairs them
    (``decide.signal_type_for``): a swing model fitted on minute bars would mean nothing live.
    Features and labels keep one clock per symbol: ``calendar``, else the one rule
    (``calendar_resolver``: the declared ``asset_class``, else the symbol's spelling).
    """
    from tradesignals.features.batch import compute_features  # TA-Lib: imported when needed

    kind = parse_signal_type(signal_type)
    dirs = parse_directions(directions)
    fs = feature_set or latest_feature_set()
    names = model_columns(fs, dirs)
    if bars.empty:
        raise DatasetError("the data holds no bars")
    tf = infer_timeframe(bars)
    if tf is None:
        raise DatasetError("cannot tell the bars' timeframe (too few bars per symbol?)")
    if (kind is SignalType.SWING) != (tf is Timeframe.D1):
        want = "daily" if kind is SignalType.SWING else "intraday"
        raise DatasetError(f"{kind.value} models are trained on {want} bars; these are {tf.value}")
    params = spec or LabelSpec(signal_type=kind)
    if params.signal_type is not kind:
        raise DatasetError(f"the label spec is for {params.signal_type.value} labels, not {kind.value}")

    if calendar is None:
        calendar = calendar_resolver(asset_class)
    elif asset_class is not None:
        raise DatasetError("give a calendar or an asset class, not both")
    flags = detect_corporate_actions(bars)
    feats = compute_features(flags.masked(bars), timeframe=tf, calendar=calendar)
    news_cols = [c for c in fs.columns if c in NEWS_FEATURES]
    news_counts: dict[str, int] = {}
    if news_cols:
        if news is None:
            raise DatasetError(f"feature set {fs.ref} has news columns: build it with the news items")
        names_all = news_feature_names()
        at = decision_times(bars, tf, calendar)
        matrix = news_feature_matrix(news, bars["symbol"].to_numpy(), at)
        for j, name in enumerate(names_all):
            feats[name] = matrix[:, j]
        longest = [n for n in names_all if n.startswith("news_count_")][-1]
        news_counts = {"news_items": len(news), "bars_with_news": int((feats[longest] > 0).sum())}
    missing = [c for c in fs.columns if c not in feats.columns]
    if missing:
        raise DatasetError(f"feature set {fs.ref} has columns the batch features lack: {missing}")
    feature_cols = [c for c in feats.columns if c not in ("ts", "symbol", "warm", "status")]
    values = feats[feature_cols].to_numpy(dtype=np.float64, copy=True)
    values[~np.isfinite(values)] = np.nan  # an inf ratio is as unknown as a NaN, to every member
    warm = feats["warm"].to_numpy(dtype=bool)
    atr = feats[ATR_COLUMN].to_numpy(dtype=np.float64)

    blocked = label_window_flagged(bars, flags.mask, params, tf)
    parts = []
    counts = {"bars": len(bars), "not_warm": 0, "unlabelled": 0, "not_filled": 0, "label_window_flagged": 0}
    counts["flagged_bars"] = int(flags.mask.sum())
    counts.update(news_counts)
    counts.update({f"flagged_{reason.value}": n for reason, n in flags.counts().items()})
    for d in dirs:
        lab = triple_barrier_labels(bars, atr, direction=d, spec=params, timeframe=tf, calendar=calendar)
        has_label = lab["label"].notna().to_numpy()
        keep = warm & has_label & ~blocked
        counts["not_warm"] += int((~warm).sum())
        counts["unlabelled"] += int((warm & ~has_label).sum())
        counts["not_filled"] += int((warm & (lab["outcome"] == "not_filled").to_numpy()).sum())
        counts["label_window_flagged"] += int((warm & has_label & blocked).sum())
        part = pd.DataFrame(values[keep], columns=feature_cols)
        part.insert(0, DIRECTION_FEATURE, float(d.sign))
        part.insert(0, "symbol", bars["symbol"].to_numpy()[keep])
        part.insert(0, "ts", bars["ts"].to_numpy(dtype=np.int64)[keep])
        part["label"] = lab["label"].to_numpy(dtype=np.float64)[keep]
        part["t_end"] = lab["t_end"].to_numpy(dtype=np.int64, na_value=0)[keep]
        part["weight"] = lab["weight"].to_numpy(dtype=np.float64)[keep] / len(dirs)
        part["ret"] = lab["ret"].to_numpy(dtype=np.float64)[keep]
        part["net_r"] = lab["net_r"].to_numpy(dtype=np.float64)[keep]
        part["outcome"] = lab["outcome"].to_numpy()[keep]
        parts.append(part)
    frame = pd.concat(parts, ignore_index=True)
    frame = frame.sort_values(
        ["ts", "symbol", DIRECTION_FEATURE], ascending=[True, True, False], kind="stable"
    )
    frame = frame.reset_index(drop=True)
    frame["outcome"] = frame["outcome"].astype("category")
    counts["rows"] = len(frame)
    return Dataset(frame, names, fs, params, dirs, tf, counts)


def decision_times(
    bars: pd.DataFrame, timeframe: Timeframe, calendar: SessionCalendar | Callable[[str], SessionCalendar]
) -> npt.NDArray[np.int64]:
    """When each bar's decision is taken: its real close (``bar_close_ns``), by its symbol's calendar.

    The time a row's news features are read at, as the lifecycle and the labels read it; asked
    once per distinct (calendar, bar time).
    """
    ts = bars["ts"].to_numpy(dtype=np.int64)
    symbols = bars["symbol"].astype(str).to_numpy()
    out = np.empty(len(ts), dtype=np.int64)
    by_cal: dict[int, tuple[SessionCalendar, list[str]]] = {}
    for symbol in pd.unique(symbols).tolist():
        cal = calendar if isinstance(calendar, SessionCalendar) else calendar(symbol)
        by_cal.setdefault(id(cal), (cal, []))[1].append(symbol)
    for cal, members in by_cal.values():
        rows = np.flatnonzero(np.isin(symbols, members))
        times, where = np.unique(ts[rows], return_inverse=True)
        closes = np.array([bar_close_ns(int(t), timeframe, cal) for t in times.tolist()], dtype=np.int64)
        out[rows] = closes[where]
    return out


def label_window_flagged(
    bars: pd.DataFrame, flagged: npt.ArrayLike, params: LabelSpec, timeframe: Timeframe
) -> npt.NDArray[np.bool_]:
    """Rows of ``bars`` whose label window holds a flagged bar: they must get no label.

    The window is the row's own bar (the entry is decided at its close) and the next
    ``swing_sessions`` bars for swing labels (the fill bar and the sessions held); a day label runs to its session's close, so every bar
    of a day (``1d / timeframe`` bars) is taken as its horizon — a bound, never short of it.
    """
    if params.signal_type is SignalType.SWING:
        ahead = params.plan.swing_sessions
    else:
        ahead = max(Timeframe.D1.ns // timeframe.ns, 1)
    return near_flags(bars["symbol"].to_numpy(), bars["ts"].to_numpy(), flagged, ahead=ahead)


def dataset_summary(ds: Dataset) -> dict[str, Any]:
    """What a person checks first: size, span, symbols, base rate per direction, outcome mix."""
    frame = ds.frame
    sign = frame[DIRECTION_FEATURE].to_numpy()
    label = frame["label"].to_numpy()
    by_dir = {d.value: float(label[sign == d.sign].mean()) for d in ds.directions}
    return {
        "rows": len(frame),
        "symbols": int(frame["symbol"].nunique()),
        "first_ts": int(frame["ts"].min()) if len(frame) else None,
        "last_ts": int(frame["ts"].max()) if len(frame) else None,
        "base_rate": by_dir,
        "outcomes": {str(k): int(v) for k, v in frame["outcome"].value_counts().items()},
        "dropped": {k: v for k, v in ds.counts.items() if k != "rows"},
    }
