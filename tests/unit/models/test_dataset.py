"""The training table: what a row is, which rows are kept, and that nothing at bar t sees bar t + 1."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tradesignals.domain.market import Timeframe
from tradesignals.domain.signals import Direction
from tradesignals.features.batch import compute_features
from tradesignals.features.catalog import FeatureSet
from tradesignals.features.catalog import latest as latest_feature_set
from tradesignals.marketdata.calendar import calendar_for, utc_date_ns
from tradesignals.models.dataset import (
    DIRECTION_FEATURE,
    SCALE_FREE_FEATURES,
    Dataset,
    DatasetError,
    build_dataset,
    load_bars,
    model_columns,
    parse_signal_type,
)
from tradesignals.models.labels import LabelSpec, triple_barrier_labels


def sessions(start: tuple[int, int, int], end: tuple[int, int, int]) -> np.ndarray:
    """NYSE session dates at 00:00 UTC, as the daily file stamps its bars."""
    cal = calendar_for("SYN")
    return np.array([s.label for s in cal.sessions_between(utc_date_ns(*start), utc_date_ns(*end))])


def random_walk(n_symbols: int, ts: np.ndarray, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    n = len(ts)
    for k in range(n_symbols):
        sigma = 0.01 + 0.01 * rng.random()
        close = 40.0 * np.exp(np.cumsum(sigma * rng.standard_normal(n)))
        prev = np.r_[close[0], close[:-1]]
        open_ = prev * np.exp(0.2 * sigma * rng.standard_normal(n))
        high = np.maximum(open_, close) * np.exp(0.5 * sigma * np.abs(rng.standard_normal(n)))
        low = np.minimum(open_, close) * np.exp(-0.5 * sigma * np.abs(rng.standard_normal(n)))
        frames.append(
            pd.DataFrame(
                {
                    "ts": ts,
                    "symbol": f"S{k:02d}",
                    "open": open_,
                    "high": high,
                    "low": low,
                    "close": close,
                    "volume": rng.lognormal(12, 0.3, n),
                }
            )
        )
    return (
        pd.concat(frames, ignore_index=True)
        .sort_values(["ts", "symbol"], kind="stable")
        .reset_index(drop=True)
    )


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return random_walk(4, sessions((2016, 1, 1), (2016, 12, 31)), seed=3)


@pytest.fixture(scope="module")
def long_ds(bars: pd.DataFrame) -> Dataset:
    return build_dataset(bars)


def test_rows_are_the_warm_labelled_bars_with_the_engines_barriers(
    bars: pd.DataFrame, long_ds: Dataset
) -> None:
    feats = compute_features(bars)
    labels = triple_barrier_labels(bars, feats["atr_14"].to_numpy(), spec=LabelSpec())
    keep = feats["warm"].to_numpy() & labels["label"].notna().to_numpy()
    assert len(long_ds) == int(keep.sum()) > 0
    assert long_ds.counts["not_warm"] == int((~feats["warm"]).sum())
    assert long_ds.counts["unlabelled"] == int((feats["warm"] & labels["label"].isna()).sum())
    not_filled = (labels["outcome"] == "not_filled").to_numpy()
    assert long_ds.counts["not_filled"] == int((feats["warm"].to_numpy() & not_filled).sum())

    # Row for row (after the dataset's sort), the same features, label, t_end and weight.
    want = pd.concat([bars[["ts", "symbol"]], feats[["rsi_14", "ret_5"]], labels], axis=1)[keep]
    want = want.sort_values(["ts", "symbol"], kind="stable").reset_index(drop=True)
    got = long_ds.frame
    assert (got["symbol"].to_numpy() == want["symbol"].to_numpy()).all()
    np.testing.assert_array_equal(got["ts"], want["ts"])
    np.testing.assert_array_equal(got["rsi_14"], want["rsi_14"])
    np.testing.assert_array_equal(got["label"], want["label"])
    np.testing.assert_array_equal(got["t_end"], want["t_end"].astype(np.int64))
    np.testing.assert_array_equal(got["weight"], want["weight"])


def test_a_row_is_time_ordered_with_its_label_window_after_it(long_ds: Dataset) -> None:
    ts, t_end = long_ds.ts, long_ds.t_end
    assert np.all(np.diff(ts) >= 0)
    assert np.all(t_end > ts)
    assert set(np.unique(long_ds.y)) == {0.0, 1.0}
    assert np.all((long_ds.weight > 0) & (long_ds.weight <= 1))
    assert (long_ds.direction == 1.0).all()
    assert long_ds.timeframe is Timeframe.D1
    assert long_ds.spec == LabelSpec()  # the product's plan and cost schedule: the engine's


def test_model_columns_are_the_feature_sets_scale_free_columns_in_its_order(long_ds: Dataset) -> None:
    fs = latest_feature_set()
    assert long_ds.feature_set == fs
    cols = long_ds.feature_names
    assert cols == tuple(c for c in fs.columns if c in SCALE_FREE_FEATURES)
    for level in ("sma_20", "ema_20", "bb_upper", "atr_14", "obv", "vwap", "vp_poc"):
        assert level not in cols
    assert long_ds.matrix().shape == (len(long_ds), len(cols))


def test_model_columns_refuse_a_set_with_nothing_scale_free() -> None:
    prices_only = FeatureSet("levels", 1, ("sma_20", "ema_20"), {})
    with pytest.raises(DatasetError, match="no scale-free column"):
        model_columns(prices_only, (Direction.LONG,))
    both = model_columns(FeatureSet("osc", 1, ("sma_20", "rsi_14"), {}), (Direction.LONG, Direction.SHORT))
    assert both == ("rsi_14", DIRECTION_FEATURE)


def test_both_directions_give_paired_rows_with_a_direction_feature_and_half_weights(
    bars: pd.DataFrame,
    long_ds: Dataset,
) -> None:
    both = build_dataset(bars, directions=("short", "long"))
    assert both.directions == (Direction.LONG, Direction.SHORT)
    assert both.feature_names[-1] == DIRECTION_FEATURE
    frame = both.frame
    longs = frame[frame[DIRECTION_FEATURE] == 1.0].reset_index(drop=True)
    shorts = frame[frame[DIRECTION_FEATURE] == -1.0]
    assert len(longs) == len(long_ds) and len(shorts) > 0
    np.testing.assert_allclose(longs["weight"], long_ds.weight / 2)
    np.testing.assert_array_equal(longs["label"], long_ds.y)
    # A bar's long and short rows share its features; only the label and direction differ.
    pair = frame.groupby(["ts", "symbol"]).size()
    assert pair.max() == 2


def test_features_at_t_do_not_change_when_the_future_does(bars: pd.DataFrame, long_ds: Dataset) -> None:
    """Point in time: perturb every bar after a cut-off (and drop some) — nothing known at the cut moves."""
    times = np.unique(bars["ts"])
    cut = int(times[len(times) * 2 // 3])
    future = bars["ts"] > cut
    moved = bars.copy()
    rng = np.random.default_rng(11)
    scale = np.exp(0.05 * rng.standard_normal(int(future.sum())))
    for col in ("open", "high", "low", "close"):
        moved.loc[future, col] = moved.loc[future, col] * scale
    moved.loc[future, "volume"] *= 3.0
    moved = moved.drop(moved.index[future.to_numpy()][::7])  # and some future bars vanish

    truncated = build_dataset(bars[~future].reset_index(drop=True))
    changed = build_dataset(moved.reset_index(drop=True))
    base = long_ds.frame
    cols = [c for c in compute_features(bars.head(1)).columns if c not in ("ts", "symbol", "warm", "status")]
    for other in (truncated.frame, changed.frame):
        known = other[other["ts"] <= cut]
        ref = base.merge(known[["ts", "symbol"]], on=["ts", "symbol"])
        assert len(ref) == len(known) > 100
        pd.testing.assert_frame_equal(
            ref[cols].reset_index(drop=True), known[cols].reset_index(drop=True), check_exact=True
        )
        # A label that resolved by the cut-off is history too.
        resolved = known["t_end"] <= cut
        ref_resolved = ref["t_end"] <= cut
        np.testing.assert_array_equal(ref.loc[ref_resolved, "label"], known.loc[resolved, "label"])
    # And the truncated data never labels a bar whose window it cannot see to the end.
    assert (truncated.frame["t_end"] <= cut).all()


def test_swing_needs_daily_bars_and_unknown_types_are_refused(bars: pd.DataFrame) -> None:
    minutes = bars.copy()
    minutes["ts"] = (
        utc_date_ns(2016, 3, 1) + 14 * 3600 * 10**9 + (minutes.groupby("symbol").cumcount() * 60 * 10**9)
    )
    with pytest.raises(DatasetError, match="swing models are trained on daily bars; these are 1m"):
        build_dataset(minutes)
    with pytest.raises(DatasetError, match="unknown signal type 'event'"):
        parse_signal_type("event")
    with pytest.raises(DatasetError, match="unknown signal type 'weekly'"):
        build_dataset(bars, signal_type="weekly")
    with pytest.raises(DatasetError, match="unknown direction"):
        build_dataset(bars, directions=("up",))
    with pytest.raises(DatasetError, match="no bars"):
        build_dataset(bars.iloc[:0])


def test_load_bars_joins_files_and_refuses_a_bar_given_twice(bars: pd.DataFrame, tmp_path: Path) -> None:
    def write(frame: pd.DataFrame, name: str) -> Path:
        out = frame.assign(date=pd.to_datetime(frame["ts"], utc=True).dt.strftime("%Y-%m-%d"))
        path = tmp_path / name
        out[["date", "symbol", "open", "high", "low", "close", "volume"]].to_csv(path, index=False)
        return path

    a = write(bars[bars["symbol"] == "S00"], "a.csv")
    b = write(bars[bars["symbol"] == "S01"], "b.csv")
    both = load_bars([a, b])
    assert sorted(both["symbol"].unique()) == ["S00", "S01"]
    assert len(both) == int(bars["symbol"].isin(["S00", "S01"]).sum())
    with pytest.raises(DatasetError, match="appear twice"):
        load_bars([a, a])
    with pytest.raises(DatasetError, match="no such file"):
        load_bars([tmp_path / "missing.csv"])


def test_a_split_bar_is_kept_out_of_labels_and_feature_warm_up(bars: pd.DataFrame) -> None:
    """An unadjusted 2:1 split on S01: rows whose label window holds it get no label, features restart
    after it (not warm for the warm-up length), and the other symbols are untouched."""
    split = bars.copy()
    s01 = np.flatnonzero(split["symbol"].to_numpy() == "S01")
    at = 150
    split.loc[s01[at:], ["open", "high", "low", "close"]] /= 2.0
    clean, flagged = build_dataset(bars), build_dataset(split)

    assert clean.counts["flagged_bars"] == 0 and clean.counts["label_window_flagged"] == 0
    assert flagged.counts["flagged_bars"] == flagged.counts["flagged_split_ratio"] == 1
    assert flagged.counts["label_window_flagged"] > 0
    ts01 = split["ts"].to_numpy()[s01]
    horizon = flagged.spec.plan.swing_sessions
    kept = set(flagged.frame.loc[flagged.frame["symbol"] == "S01", "ts"].tolist())
    assert not kept & set(ts01[at - horizon : at + 1].tolist())  # label window holds the split
    warm_again = at + 34  # the segment restarts at at + 1 and warms on its 34th bar
    assert not kept & set(ts01[at + 1 : warm_again].tolist())
    assert ts01[warm_again] in kept
    # Other symbols: identical rows, features and labels.
    a, b = (f.loc[f["symbol"] != "S01"].reset_index(drop=True) for f in (clean.frame, flagged.frame))
    pd.testing.assert_frame_equal(a, b)
    # Before the split S01's rows are the clean ones (point in time: the flag changes no past row
    # outside the label window).
    early = ts01[at - horizon - 1]
    pa = clean.frame.loc[(clean.frame["symbol"] == "S01") & (clean.frame["ts"] <= early)].reset_index(
        drop=True
    )
    pb = flagged.frame.loc[(flagged.frame["symbol"] == "S01") & (flagged.frame["ts"] <= early)]
    pd.testing.assert_frame_equal(pa, pb.reset_index(drop=True))


def test_news_columns_are_read_at_the_bars_close_and_never_after(
    bars: pd.DataFrame, long_ds: Dataset
) -> None:
    from tradesignals.domain.news import NewsItem, ScoredNews
    from tradesignals.features.catalog import CORE_NEWS_V1
    from tradesignals.models.dataset import NEWS_FEATURES, decision_times

    with pytest.raises(DatasetError, match="news"):
        build_dataset(bars, feature_set=CORE_NEWS_V1)
    row = long_ds.frame.iloc[len(long_ds) // 2]
    symbol, ts = str(row["symbol"]), int(row["ts"])
    one = bars[(bars["symbol"] == symbol) & (bars["ts"] == ts)]
    close = int(decision_times(one, Timeframe.D1, calendar_for(symbol))[0])
    assert ts < close <= ts + Timeframe.D1.ns  # 16:00 New York (or 13:00 on a half day), not midnight

    def item(n: str, received: int, label: str) -> ScoredNews:
        # Published well before the close: only received_at decides what a row may know.
        news = NewsItem(n, "t", close - 3_600_000_000_000, received, (symbol,), f"headline {n}")
        return ScoredNews(news, label, 1.0, ("earnings",), received)

    news = [item("at-close", close, "positive"), item("after-close", close + 1, "negative")]
    ds = build_dataset(bars, feature_set=CORE_NEWS_V1, news=news)
    assert ds.feature_names == (
        *long_ds.feature_names,
        *[c for c in CORE_NEWS_V1.columns if c in NEWS_FEATURES],
    )
    assert ds.counts["news_items"] == 2
    # Same rows, same labels, same bar features: the news columns are the only difference.
    pd.testing.assert_frame_equal(ds.frame[list(long_ds.frame.columns)], long_ds.frame)
    frame = ds.frame.set_index(["symbol", "ts"])
    mine = frame.loc[(symbol, ts)]
    assert mine["news_count_1d"] == 1.0  # the item received at the close, not the one 1 ns later
    assert mine["news_sentiment_1d"] == 1.0
    assert mine["news_earnings_1d"] == 1.0
    later = frame.loc[symbol].loc[ts + 1 :].iloc[0]
    assert later["news_count_1d"] == 1.0 and later["news_sentiment_1d"] == -1.0  # the next close sees it
    assert later["news_count_5d"] == 2.0
    earlier = frame.loc[symbol].loc[: ts - 1].iloc[-1]
    assert earlier["news_count_20d"] == 0.0
    others = ds.frame[ds.frame["symbol"] != symbol]
    assert (others[sorted(NEWS_FEATURES)].to_numpy() == 0.0).all()
