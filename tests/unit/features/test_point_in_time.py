"""Point-in-time joins: a row at time t sees only what was known at t, proven by hypothesis.

The property: join events to feature rows, then change anything that becomes known after a cutoff c
(revise those rows' values, drop them, add new rows — late rows for old bars included) and join again:
every event at or before c gets exactly the same features. Beside it, the join equals a brute-force
reading of the rule, and replaying the rows through the online store gives the same vectors, so
training sees what live scoring would have seen.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradesignals.domain.market import Timeframe
from tradesignals.features.catalog import FeatureSet
from tradesignals.features.store_memory import MemoryOnlineFeatureStore
from tradesignals.features.store_parquet import JoinEngine, ParquetOfflineFeatureStore

FS = FeatureSet("pit", 1, ("f_a", "f_b"), {"k": 1})
DAY = 86_400 * 1_000_000_000
UNIT = 60 * DAY  # grid step: 0..90 units spans 15 years, so files of two decades take part
SYMBOLS = ("AAA", "BBB", "CCC")
ENGINES: tuple[JoinEngine, ...] = ("duckdb", "pandas")
ADDED = ["f_a", "f_b", "feature_ts", "feature_available_at"]


@pytest.fixture(params=ENGINES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ParquetOfflineFeatureStore]:
    s = ParquetOfflineFeatureStore(tmp_path / "lake", durable=False, engine=request.param)
    yield s
    s.close()


# ---- generated data -----------------------------------------------------------------------------

values = st.floats(allow_nan=True, allow_infinity=False, width=64)


@st.composite
def feature_rows(draw: st.DrawFn) -> pd.DataFrame:
    """Rows of a few symbols on a coarse grid, so events often land exactly on an ``available_at``.

    Delays vary (0 = known at the bar's open, large = a late row), so ``available_at`` order and
    ``ts`` order disagree often: the case a naive as-of join on ``available_at`` gets wrong.
    """
    out = []
    for symbol in SYMBOLS:
        for k in sorted(draw(st.sets(st.integers(0, 80), max_size=10))):
            delay = draw(st.integers(0, 12))
            out.append((symbol, k * UNIT, (k + delay) * UNIT, draw(values), draw(values)))
    return frame(out)


def frame(rows: list[tuple[str, int, int, float, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "symbol": pd.array([r[0] for r in rows], dtype="str"),
            "ts": np.array([r[1] for r in rows], dtype=np.int64),
            "available_at": np.array([r[2] for r in rows], dtype=np.int64),
            "f_a": np.array([r[3] for r in rows], dtype=np.float64),
            "f_b": np.array([r[4] for r in rows], dtype=np.float64),
        }
    )


event_lists = st.lists(
    st.tuples(st.sampled_from((*SYMBOLS, "ZZZ")), st.integers(-3, 95), st.integers(0, 2)),
    min_size=1,
    max_size=40,
)


def events_frame(events: list[tuple[str, int, int]]) -> pd.DataFrame:
    """Events on the grid and just off it (+1 ns), with a shuffled, non-default index to keep."""
    return pd.DataFrame(
        {
            "symbol": pd.array([e[0] for e in events], dtype="str"),
            "ts": np.array(
                [k * UNIT + (1 if off == 1 else 0) - (1 if off == 2 else 0) for _, k, off in events]
            ),
            "label": np.arange(len(events)) % 2,
        },
        index=pd.Index(np.arange(len(events))[::-1] * 10),
    )


def reference_join(events: pd.DataFrame, rows: pd.DataFrame, tolerance_ns: int | None = None) -> pd.DataFrame:
    """The rule read literally: the largest-``ts`` row with ``available_at <= t``, unless that row
    became known more than ``tolerance_ns`` before ``t`` (then nothing: the freshest is too stale)."""
    out: list[tuple[Any, ...]] = []
    for symbol, t in zip(events["symbol"], events["ts"], strict=True):
        known = rows[(rows["symbol"] == symbol) & (rows["available_at"] <= t)]
        best = None if known.empty else known.loc[known["ts"].idxmax()]
        if best is None or (tolerance_ns is not None and t - best["available_at"] > tolerance_ns):
            out.append((np.nan, np.nan, pd.NA, pd.NA))
        else:
            out.append((best["f_a"], best["f_b"], int(best["ts"]), int(best["available_at"])))
    added = pd.DataFrame(out, columns=ADDED, index=events.index)
    added["f_a"] = added["f_a"].astype(np.float64)
    added["f_b"] = added["f_b"].astype(np.float64)
    added["feature_ts"] = added["feature_ts"].astype("Int64")
    added["feature_available_at"] = added["feature_available_at"].astype("Int64")
    return pd.concat([events, added], axis=1)


def join(
    rows: pd.DataFrame, events: pd.DataFrame, engine: JoinEngine, tolerance_ns: int | None = None
) -> pd.DataFrame:
    with tempfile.TemporaryDirectory() as tmp:
        store = ParquetOfflineFeatureStore(tmp, durable=False, engine=engine)
        try:
            if len(rows):
                store.write(FS, rows)
            return store.point_in_time_join(events, FS, tolerance_ns=tolerance_ns)
        finally:
            store.close()


# ---- properties ---------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=feature_rows(), events=event_lists, cutoff=st.integers(-3, 95), data=st.data())
@pytest.mark.parametrize("engine", ENGINES)
def test_changing_data_known_after_t_never_changes_features_at_t(
    engine: JoinEngine,
    rows: pd.DataFrame,
    events: list[tuple[str, int, int]],
    cutoff: int,
    data: st.DataObject,
) -> None:
    ev = events_frame(events)
    before = join(rows, ev, engine)
    pd.testing.assert_frame_equal(before, reference_join(ev, rows))

    c = cutoff * UNIT
    later = rows["available_at"].to_numpy() > c  # not yet known at c
    mutated = rows.copy()
    # Revise values of rows known only after c, and drop some of them.
    for i in np.flatnonzero(later):
        mutated.loc[i, "f_a"] = data.draw(values)
        mutated.loc[i, "f_b"] = data.draw(values)
    drop = [i for i in np.flatnonzero(later) if data.draw(st.booleans())]
    mutated = mutated.drop(index=drop)
    # Add rows that become known after c: new bars, and late rows for old bars (small ts, late available_at).
    taken = {(s, t) for s, t in zip(mutated["symbol"], mutated["ts"], strict=True)}
    extra = []
    for symbol, k, delay in data.draw(
        st.lists(st.tuples(st.sampled_from(SYMBOLS), st.integers(-5, 95), st.integers(1, 40)), max_size=8)
    ):
        ts, at = k * UNIT, max(k * UNIT, c + delay * UNIT // 7)
        if (symbol, ts) not in taken and at > c:
            taken.add((symbol, ts))
            extra.append((symbol, ts, at, data.draw(values), data.draw(values)))
    mutated = pd.concat([mutated, frame(extra)], ignore_index=True)

    after = join(mutated, ev, engine)
    pd.testing.assert_frame_equal(after, reference_join(ev, mutated))
    at_or_before = (ev["ts"] <= c).to_numpy()
    pd.testing.assert_frame_equal(after[at_or_before], before[at_or_before])


@settings(max_examples=40, deadline=None)
@given(rows=feature_rows(), events=event_lists, tolerance=st.integers(0, 20))
def test_engines_agree_with_the_rule_under_a_tolerance(
    rows: pd.DataFrame, events: list[tuple[str, int, int]], tolerance: int
) -> None:
    ev = events_frame(events)
    expected = reference_join(ev, rows, tolerance * UNIT)
    for engine in ENGINES:
        pd.testing.assert_frame_equal(join(rows, ev, engine, tolerance * UNIT), expected)


@settings(max_examples=40, deadline=None)
@given(rows=feature_rows(), events=event_lists)
def test_training_sees_what_the_online_store_served_at_the_time(
    rows: pd.DataFrame, events: list[tuple[str, int, int]]
) -> None:
    """Replay rows into the online store as they become known; at each event, get == the join."""
    ev = events_frame(events).sort_values("ts", kind="stable")
    joined = join(rows, ev, "duckdb")
    replay = rows.sort_values(["available_at", "ts"], kind="stable")

    async def served() -> list[tuple[int, float, float] | None]:
        online = MemoryOnlineFeatureStore(FS)
        out: list[tuple[int, float, float] | None] = []
        i = 0
        for symbol, t in zip(ev["symbol"], ev["ts"], strict=True):
            while i < len(replay) and replay["available_at"].iat[i] <= t:
                r = replay.iloc[i]
                await online.put(
                    r["symbol"], int(r["ts"]), np.array([r["f_a"], r["f_b"]]), FS.ref,
                    available_at_ns=int(r["available_at"]),
                )  # fmt: skip
                i += 1
            got = await online.get(symbol)
            out.append(None if got is None else (got.ts, float(got.vector[0]), float(got.vector[1])))
        return out

    for (_, j), live in zip(joined.iterrows(), asyncio.run(served()), strict=True):
        if live is None:
            assert pd.isna(j["feature_ts"])
        else:
            assert j["feature_ts"] == live[0]
            np.testing.assert_array_equal([j["f_a"], j["f_b"]], live[1:])


# ---- the rule, case by case ---------------------------------------------------------------------


def daily(symbol: str, days: list[str], values: list[float]) -> pd.DataFrame:
    ts = pd.to_datetime(days, utc=True).as_unit("ns").asi8
    return pd.DataFrame({"ts": ts, "symbol": symbol, "f_a": values, "f_b": values})


def at(when: str) -> int:
    return int(pd.Timestamp(when, tz="UTC").value)


def test_a_bar_is_not_joined_before_it_closes_even_though_it_opened_before(
    store: ParquetOfflineFeatureStore,
) -> None:
    """A daily bar opened at midnight: an event at noon that day sees the previous day's features."""
    store.write(FS, daily("AAPL", ["2024-03-04", "2024-03-05"], [1.0, 2.0]), timeframe=Timeframe.D1)
    events = pd.DataFrame({"symbol": ["AAPL"] * 4, "ts": [at("2024-03-05 12:00"), at("2024-03-04 23:59"),
                                                       at("2024-03-05 00:00"), at("2024-03-06 00:00")]})  # fmt: skip
    got = store.point_in_time_join(events, FS)
    # noon of the 5th: the 5th opened (ts <= t) but is known only at the 6th's midnight.
    assert got["f_a"].iat[0] == 1.0 and got["feature_ts"].iat[0] == at("2024-03-04")
    assert got["f_a"].isna().iat[1] and got["feature_ts"].isna().iat[1]  # nothing had closed yet
    assert got["f_a"].iat[2] == 1.0  # exactly at a close: that bar is known (inclusive)
    assert got["f_a"].iat[3] == 2.0
    assert got["feature_available_at"].iat[3] == at("2024-03-06")


def test_a_late_row_never_beats_a_newer_bar_already_known(store: ParquetOfflineFeatureStore) -> None:
    rows = frame([("A", 10 * DAY, 11 * DAY, 10.0, 10.0), ("A", 5 * DAY, 20 * DAY, 5.0, 5.0)])
    store.write(FS, rows)
    events = pd.DataFrame({"symbol": ["A", "A", "A"], "ts": [9 * DAY, 12 * DAY, 25 * DAY]})
    got = store.point_in_time_join(events, FS)
    assert got["f_a"].isna().iat[0]
    assert got["f_a"].tolist()[1:] == [10.0, 10.0]  # the ts=5 row, known at 20, is older than ts=10


def test_tolerance_drops_features_that_are_too_old(store: ParquetOfflineFeatureStore) -> None:
    store.write(FS, frame([("A", 0, DAY, 1.0, 1.0)]))
    events = pd.DataFrame({"symbol": ["A", "A"], "ts": [3 * DAY, 3 * DAY + 1]})
    got = store.point_in_time_join(events, FS, tolerance_ns=2 * DAY)
    assert got["f_a"].iat[0] == 1.0 and got["f_a"].isna().iat[1]
    with pytest.raises(ValueError, match="tolerance_ns must be >= 0"):
        store.point_in_time_join(events, FS, tolerance_ns=-1)


def test_join_keeps_the_events_rows_order_index_and_columns(store: ParquetOfflineFeatureStore) -> None:
    store.write(FS, frame([("A", 0, DAY, 1.0, 2.0), ("B", 0, DAY, 3.0, 4.0)]))
    events = pd.DataFrame(
        {"symbol": ["B", "Q", "A", "B"], "ts": [DAY, DAY, 0, 5 * DAY], "y": [1, 0, 1, 0]}, index=[7, 3, 9, 1]
    )
    got = store.point_in_time_join(events, FS)
    assert list(got.columns) == ["symbol", "ts", "y", *ADDED]
    assert got.index.tolist() == [7, 3, 9, 1]
    pd.testing.assert_frame_equal(got[["symbol", "ts", "y"]], events)
    assert got["f_b"].tolist()[0] == 4.0 and got["f_b"].isna().tolist() == [False, True, True, False]
    assert str(got["feature_ts"].dtype) == "Int64"


def test_events_may_carry_tz_aware_datetimes(store: ParquetOfflineFeatureStore) -> None:
    store.write(FS, daily("AAPL", ["2024-03-04"], [1.0]), timeframe=Timeframe.D1)
    events = pd.DataFrame(
        {"symbol": ["AAPL"], "ts": pd.to_datetime(["2024-03-05 09:30"]).tz_localize("America/New_York")}
    )
    assert store.point_in_time_join(events, FS)["f_a"].iat[0] == 1.0


def test_no_events_or_no_rows_give_the_added_columns_empty_or_nan(store: ParquetOfflineFeatureStore) -> None:
    none = store.point_in_time_join(pd.DataFrame({"symbol": ["A"], "ts": [DAY]}), FS)
    assert none["f_a"].isna().all() and none["feature_ts"].isna().all()
    store.write(FS, frame([("A", 0, DAY, 1.0, 1.0)]))
    empty = store.point_in_time_join(
        pd.DataFrame({"symbol": pd.Series([], dtype="str"), "ts": np.empty(0, np.int64)}), FS
    )
    assert empty.empty and list(empty.columns) == ["symbol", "ts", *ADDED]


def test_bad_events_are_refused(store: ParquetOfflineFeatureStore) -> None:
    with pytest.raises(ValueError, match="events need a 'ts' column"):
        store.point_in_time_join(pd.DataFrame({"symbol": ["A"]}), FS)
    with pytest.raises(ValueError, match="already have column"):
        store.point_in_time_join(pd.DataFrame({"symbol": ["A"], "ts": [1], "f_a": [0.0]}), FS)
    with pytest.raises(ValueError, match="missing symbol"):
        store.point_in_time_join(pd.DataFrame({"symbol": ["A", None], "ts": [1, 2]}), FS)
    with pytest.raises(ValueError, match="naive datetimes"):
        store.point_in_time_join(pd.DataFrame({"symbol": ["A"], "ts": pd.to_datetime(["2024-01-01"])}), FS)


# ---- news features: point-in-time on received_at -------------------------------------------------
# The news columns of ``core_news`` do not go through the offline store's as-of join: the dataset
# reads them from ``features.news`` at each row's decision time (the bar's close). The same property
# holds them: nothing received after a row's time reaches the row, whatever its published_at says.

NEWS_DAY = 86_400 * 1_000_000_000
NEWS_STEP = NEWS_DAY // 4  # a coarse grid, so rows often sit exactly on an item's received_at
NEWS_SIGN = {"positive": 1.0, "negative": -1.0, "neutral": 0.0}

news_rows = st.lists(
    st.tuples(
        st.integers(0, 120).map(lambda k: k * NEWS_STEP),  # received_at
        st.integers(0, 2 * NEWS_DAY),  # published up to 2 days before it was received
        st.sampled_from(SYMBOLS),
        st.sampled_from(list(NEWS_SIGN)),
        st.floats(0.34, 1.0),
        st.sampled_from(["earnings", "mna", "analyst", "fda_clinical", "none"]),
    ),
    max_size=30,
)
news_events = st.lists(
    st.tuples(
        st.sampled_from((*SYMBOLS, "ZZZ")),
        st.builds(lambda k, off: k * NEWS_STEP + off, st.integers(-4, 128), st.sampled_from([-1, 0, 0, 1])),
    ),
    min_size=1,
    max_size=25,
)


def scored(rows: list[tuple[int, int, str, str, float, str]], prefix: str = "n") -> list[Any]:
    from tradesignals.domain.news import NewsItem, ScoredNews

    out = []
    for k, (received, lag, symbol, label, score, cat) in enumerate(rows):
        item = NewsItem(f"{prefix}:{k}", "t", received - lag, received, (symbol,), f"headline {k}")
        out.append(ScoredNews(item, label, score, (cat,), received))
    return out


def news_by_rule(items: list[Any], symbol: str, at: int) -> dict[str, float]:
    """The rule read literally: items of the symbol received in (at - w, at], per window."""
    from tradesignals.domain.catalysts import CATALYSTS
    from tradesignals.features.news import LONG, SHORT, WINDOWS

    out: dict[str, float] = {}
    means = {}
    for name, width in WINDOWS.items():
        w = [s for s in items if symbol in s.item.symbols and at - width < s.item.received_at <= at]
        means[name] = sum(NEWS_SIGN[s.sentiment] * s.sentiment_score for s in w) / len(w) if w else 0.0
        out[f"news_count_{name}"] = float(len(w))
        out[f"news_sentiment_{name}"] = means[name]
        for c in CATALYSTS:
            out[f"news_{c.value}_{name}"] = 1.0 if any(c.value in s.catalysts for s in w) else 0.0
    out["news_sentiment_surprise"] = means[SHORT] - means[LONG] if out[f"news_count_{SHORT}"] else 0.0
    return out


@settings(max_examples=80, deadline=None)
@given(rows=news_rows, events=news_events, cutoff=st.integers(-NEWS_DAY, 32 * NEWS_DAY), data=st.data())
def test_news_features_never_see_an_item_received_after_the_rows_time(
    rows: list[tuple[int, int, str, str, float, str]],
    events: list[tuple[str, int]],
    cutoff: int,
    data: st.DataObject,
) -> None:
    from tradesignals.features.news import feature_names, news_feature_matrix

    names = feature_names()
    items = scored(rows)
    symbols = np.array([e[0] for e in events])
    at = np.array([e[1] for e in events], dtype=np.int64)
    before = news_feature_matrix(items, symbols, at)
    for i, (symbol, t) in enumerate(events):
        want = news_by_rule(items, symbol, t)
        assert before[i] == pytest.approx([want[n] for n in names])

    # Everything received after the cutoff is revised, dropped or added to (new items published
    # long before the cutoff but received after it included): rows at or before it do not move.
    kept = [s for s in items if s.item.received_at <= cutoff or data.draw(st.booleans())]
    revised = [
        scored([(s.item.received_at, 0, s.item.symbols[0], "negative", 1.0, "offering")], f"r{k}")[0]
        if s.item.received_at > cutoff
        else s
        for k, s in enumerate(kept)
    ]
    late = data.draw(
        st.lists(
            st.tuples(
                st.integers(cutoff + 1, cutoff + 10 * NEWS_DAY),
                st.integers(0, 10 * NEWS_DAY),
                st.sampled_from(SYMBOLS),
                st.sampled_from(list(NEWS_SIGN)),
                st.floats(0.34, 1.0),
                st.sampled_from(["earnings", "mna", "none"]),
            ),
            max_size=10,
        )
    )
    after = news_feature_matrix([*revised, *scored(late, "late")], symbols, at)
    known = at <= cutoff
    np.testing.assert_array_equal(after[known], before[known])
