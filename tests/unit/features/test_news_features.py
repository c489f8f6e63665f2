"""News features are point-in-time on received_at: a property test against a brute-force reading."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradesignals.domain.news import NewsItem, ScoredNews
from tradesignals.features.news import DAY_NS, WINDOWS, NewsFeatureState, feature_names, news_feature_matrix

SIGN = {"positive": 1.0, "negative": -1.0, "neutral": 0.0}
CATS = ["earnings", "guidance", "mna", "analyst", "none"]

news_st = st.lists(
    st.tuples(
        st.integers(0, 40 * DAY_NS),  # received_at
        st.integers(0, 3 * DAY_NS),  # published before received by up to 3 days
        st.sampled_from(["A", "B"]),
        st.sampled_from(list(SIGN)),
        st.floats(0.34, 1.0),
        st.sampled_from(CATS),
    ),
    max_size=40,
)


def make(rows: list[tuple[int, int, str, str, float, str]]) -> list[ScoredNews]:
    out = []
    for n, (received, lag, symbol, label, score, cat) in enumerate(rows):
        item = NewsItem(f"t:{n}", "t", max(0, received - lag), received, (symbol,), f"h{n}")
        out.append(ScoredNews(item, label, score, (cat,), received))
    return out


def brute(items: list[ScoredNews], symbol: str, at: int) -> dict[str, float]:
    out: dict[str, float] = {}
    means = {}
    for name, width in WINDOWS.items():
        w = [s for s in items if symbol in s.item.symbols and at - width < s.item.received_at <= at]
        mean = sum(SIGN[s.sentiment] * s.sentiment_score for s in w) / len(w) if w else 0.0
        means[name] = mean
        out[f"news_count_{name}"] = float(len(w))
        out[f"news_sentiment_{name}"] = mean
        cats = {c for s in w for c in s.catalysts}
        for c in (
            "earnings",
            "guidance",
            "fda_clinical",
            "mna",
            "analyst",
            "offering",
            "legal_regulatory",
            "management",
        ):
            out[f"news_{c}_{name}"] = 1.0 if c in cats else 0.0
    out["news_sentiment_surprise"] = means["1d"] - means["20d"] if out["news_count_1d"] else 0.0
    return out


@settings(max_examples=150, deadline=None)
@given(rows=news_st, at=st.integers(0, 45 * DAY_NS), symbol=st.sampled_from(["A", "B", "C"]))
def test_research_state_is_point_in_time(
    rows: list[tuple[int, int, str, str, float, str]], at: int, symbol: str
) -> None:
    items = make(rows)
    state = NewsFeatureState(live=False)
    state.add_all(items)
    got = state.features(symbol, at)
    assert list(got) == feature_names()
    assert got == pytest.approx(brute(items, symbol, at))
    # Only what was received by `at` matters: items received later change nothing (no leak via
    # published_at, which can be earlier than `at` for an item received after it).
    early = NewsFeatureState(live=False)
    early.add_all(s for s in items if s.item.received_at <= at)
    assert early.features(symbol, at) == pytest.approx(got)


@settings(max_examples=100, deadline=None)
@given(rows=news_st, after=st.integers(0, 2 * DAY_NS))
def test_live_state_matches_at_or_after_the_newest_item(
    rows: list[tuple[int, int, str, str, float, str]], after: int
) -> None:
    items = make(rows)
    live = NewsFeatureState()
    for s in items:  # arrival order, not sorted
        live.add(s)
    for symbol in ("A", "B"):
        newest = max((s.item.received_at for s in items if symbol in s.item.symbols), default=0)
        assert live.features(symbol, newest + after) == pytest.approx(brute(items, symbol, newest + after))


@settings(max_examples=100, deadline=None)
@given(rows=news_st, times=st.lists(st.integers(0, 45 * DAY_NS), min_size=1, max_size=20))
def test_training_matrix_equals_what_the_live_state_answered_at_each_time(
    rows: list[tuple[int, int, str, str, float, str]], times: list[int]
) -> None:
    """Replay items and decision times in time order through the live (bounded) state, as the
    pipeline and a scorer would see them: each answer equals training's row for that time."""
    items = make(rows)
    events = sorted((t, symbol) for t in times for symbol in ("A", "B", "C"))
    batch = news_feature_matrix(items, np.array([s for _, s in events]), np.array([t for t, _ in events]))
    live = NewsFeatureState()
    pending = sorted(items, key=lambda s: s.item.received_at)
    names = feature_names()
    for k, (t, symbol) in enumerate(events):
        while pending and pending[0].item.received_at <= t:
            live.add(pending.pop(0))
        got = live.features(symbol, t)
        assert [got[n] for n in names] == pytest.approx(batch[k].tolist())
