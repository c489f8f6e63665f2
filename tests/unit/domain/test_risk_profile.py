"""Questionnaire scoring and signal fitting: the rules users' money rides on."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradesignals.domain.market import AssetClass, Timeframe
from tradesignals.domain.risk import (
    NO_BASE_RATE,
    NO_RANK,
    PRESETS,
    QUESTIONNAIRE,
    TOLERANCE_BANDS,
    UNCLASSIFIED_SECTOR,
    VOLATILITY_BARS,
    InvalidAnswers,
    ProfileName,
    annualised_volatility,
    assess,
    edge_of,
    fit,
    profile_for_tolerance,
    rank_of,
)
from tradesignals.domain.signals import Direction, Signal, SignalType

T0 = datetime(2026, 3, 2, 21, 0, tzinfo=UTC)
ORDERED = [PRESETS[n] for n in (ProfileName.CONSERVATIVE, ProfileName.MODERATE, ProfileName.AGGRESSIVE)]
TOP_RANK = 0.95
"""A rank in the model's top tenth: every profile's rank filter takes it, so a hand example that
does not name a rank tests the other filters."""


def answers_at(index: int) -> dict[str, str]:
    """The same option position for every question (clamped to the question's option count)."""
    return {q.id: q.options[min(index, len(q.options) - 1)].id for q in QUESTIONNAIRE}


def boldest() -> dict[str, str]:
    return {q.id: max(q.options, key=lambda o: o.score).id for q in QUESTIONNAIRE}


def make_signal(
    *,
    entry: float = 100.0,
    stop: float = 98.0,
    confidence: float = 0.7,
    type: SignalType = SignalType.SWING,
    direction: Direction = Direction.LONG,
    base_rate: float | None = None,
    confidence_rank: float | None = TOP_RANK,
) -> Signal:
    s = direction.sign
    risk = abs(entry - stop)
    return Signal(
        id="0" * 22,
        symbol="AAPL",
        type=type,
        direction=direction,
        entry=entry,
        stop=stop,
        targets=tuple(entry + s * k * risk for k in (1, 2, 3)),
        confidence=confidence,
        created_at=T0,
        expires_at=T0 + timedelta(days=5),
        model_version="t",
        base_rate=base_rate,
        confidence_rank=confidence_rank,
    )


# --- questionnaire ------------------------------------------------------------------------------


def test_questionnaire_is_small_well_formed_and_spans_zero_to_one() -> None:
    assert 1 <= len(QUESTIONNAIRE) <= 10
    assert len({q.id for q in QUESTIONNAIRE}) == len(QUESTIONNAIRE)
    for q in QUESTIONNAIRE:
        assert q.weight > 0 and len(q.options) >= 2
        assert len({o.id for o in q.options}) == len(q.options)
        scores = [o.score for o in q.options]
        # options are listed cautious first, and every question can pull the score to either end
        assert scores == sorted(scores) and scores[0] == 0.0 and scores[-1] == 1.0


def test_most_cautious_answers_give_zero_and_conservative() -> None:
    a = assess(answers_at(0))
    assert a.risk_tolerance == 0.0
    assert a.profile is PRESETS[ProfileName.CONSERVATIVE]


def test_boldest_answers_give_one_and_aggressive() -> None:
    a = assess(boldest())
    assert a.risk_tolerance == 1.0
    assert a.profile is PRESETS[ProfileName.AGGRESSIVE]
    assert a.capped_by == ()


def test_score_is_the_weighted_mean_of_the_chosen_options() -> None:
    answers = boldest()
    answers["loss_tolerance"] = "10pct"  # score 0.33, weight 2
    answers["leverage"] = "never"  # score 0, weight 0.5
    total = sum(q.weight for q in QUESTIONNAIRE)
    expected = (total - 2.0 - 0.5 + 2.0 * 0.33) / total
    assert assess(answers).risk_tolerance == pytest.approx(expected, abs=1e-6)


def test_middle_answers_are_moderate() -> None:
    # second option everywhere: scores 0.33–0.5
    a = assess(answers_at(1))
    assert 0.35 <= a.risk_tolerance < 0.65
    assert a.profile.name is ProfileName.MODERATE


@pytest.mark.parametrize(
    ("tolerance", "expected"),
    [
        (0.0, ProfileName.CONSERVATIVE),
        (0.349999, ProfileName.CONSERVATIVE),
        (0.35, ProfileName.MODERATE),
        (0.649999, ProfileName.MODERATE),
        (0.65, ProfileName.AGGRESSIVE),
        (1.0, ProfileName.AGGRESSIVE),
    ],
)
def test_band_thresholds(tolerance: float, expected: ProfileName) -> None:
    assert profile_for_tolerance(tolerance) is expected


def test_tolerance_outside_unit_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="outside"):
        profile_for_tolerance(1.01)


def test_each_preset_sits_inside_its_own_band() -> None:
    for p in ORDERED:
        assert profile_for_tolerance(p.risk_tolerance) is p.name
    assert [name for _, name in TOLERANCE_BANDS] == [p.name for p in ORDERED]


def test_selling_everything_in_a_drawdown_caps_at_conservative() -> None:
    answers = boldest()
    answers["drawdown_reaction"] = "sell_all"
    a = assess(answers)
    assert a.risk_tolerance >= 0.65  # the score alone would be aggressive
    assert a.profile.name is ProfileName.CONSERVATIVE
    assert a.capped_by == ("drawdown_reaction",)


def test_needing_the_money_soon_caps_at_moderate() -> None:
    answers = boldest()
    answers["horizon"] = "under_1y"
    a = assess(answers)
    assert a.profile.name is ProfileName.MODERATE and a.capped_by == ("horizon",)


def test_a_cap_above_the_band_changes_nothing_and_is_not_reported() -> None:
    answers = answers_at(0)  # conservative anyway; horizon under_1y caps at moderate
    a = assess(answers)
    assert a.profile.name is ProfileName.CONSERVATIVE
    assert "horizon" not in a.capped_by


def test_unknown_question_is_named() -> None:
    answers = boldest() | {"favourite_colour": "red"}
    with pytest.raises(InvalidAnswers, match="favourite_colour") as info:
        assess(answers)
    assert info.value.problems == {"favourite_colour": "unknown question"}


def test_missing_answer_is_named() -> None:
    answers = boldest()
    del answers["goal"]
    with pytest.raises(InvalidAnswers, match="goal: missing answer") as info:
        assess(answers)
    assert info.value.question_ids == ["goal"]


def test_option_not_offered_is_named_with_the_choices() -> None:
    answers = boldest() | {"horizon": "forever"}
    with pytest.raises(InvalidAnswers) as info:
        assess(answers)
    why = info.value.problems["horizon"]
    assert "'forever' is not offered" in why and "over_10y" in why
    assert isinstance(info.value, ValueError)


def test_every_problem_is_reported_at_once() -> None:
    answers = boldest() | {"horizon": "forever", "x": "y"}
    del answers["goal"]
    with pytest.raises(InvalidAnswers) as info:
        assess(answers)
    assert set(info.value.question_ids) == {"horizon", "x", "goal"}


@given(
    base=st.lists(st.integers(0, 3), min_size=len(QUESTIONNAIRE), max_size=len(QUESTIONNAIRE)),
    which=st.integers(0, len(QUESTIONNAIRE) - 1),
)
def test_a_bolder_answer_never_gives_a_more_cautious_profile(base: list[int], which: int) -> None:
    answers = {
        q.id: q.options[min(i, len(q.options) - 1)].id for q, i in zip(QUESTIONNAIRE, base, strict=True)
    }
    q = QUESTIONNAIRE[which]
    pos = min(base[which], len(q.options) - 1)
    if pos == len(q.options) - 1:
        return
    bolder = answers | {q.id: q.options[pos + 1].id}
    before, after = assess(answers), assess(bolder)
    assert after.risk_tolerance >= before.risk_tolerance
    assert after.profile.name.rank >= before.profile.name.rank


# --- presets ------------------------------------------------------------------------------------


def test_presets_are_ordered_from_cautious_to_bold() -> None:
    c, m, a = ORDERED
    assert c.is_at_most_as_bold_as(m) and m.is_at_most_as_bold_as(a) and c.is_at_most_as_bold_as(a)
    assert not a.is_at_most_as_bold_as(c)
    assert c.max_position_pct < m.max_position_pct < a.max_position_pct
    assert c.risk_per_trade_pct < m.risk_per_trade_pct < a.risk_per_trade_pct
    # Every profile asks for a non-negative edge; the rank is what makes one more selective.
    assert c.min_edge == m.min_edge == a.min_edge == 0.0
    assert c.min_rank > m.min_rank > a.min_rank
    # The ordering reads the rank: a conservative preset with a lower bar than aggressive is bolder.
    assert not replace(c, min_rank=a.min_rank - 0.01).is_at_most_as_bold_as(a)


def test_sector_cap_lookup_is_case_insensitive_and_defaults() -> None:
    c = PRESETS[ProfileName.CONSERVATIVE]
    assert c.sector_cap_pct("Technology ") == 15.0
    assert c.sector_cap_pct("utilities") == c.default_sector_cap_pct == 20.0
    assert c.sector_cap_pct(None) == c.sector_cap_pct(UNCLASSIFIED_SECTOR) == 20.0


def test_badly_named_or_out_of_range_sector_caps_are_refused() -> None:
    base = PRESETS[ProfileName.MODERATE]
    with pytest.raises(ValueError, match="lower case"):
        replace(base, sector_caps_pct=(("Tech", 10.0),))
    with pytest.raises(ValueError, match=r"\(0, 100\]"):
        replace(base, default_sector_cap_pct=0.0)
    with pytest.raises(ValueError, match="max_volatility"):
        replace(base, max_volatility=float("inf"))
    with pytest.raises(ValueError, match="min_rank"):
        replace(base, min_rank=1.01)


# --- fit: hand examples -------------------------------------------------------------------------


def test_size_is_risk_over_stop_distance_when_uncapped() -> None:
    # moderate: 1 % risk, stop 20 % away → 5 % position (under the 10 % max)
    f = fit(
        make_signal(entry=100, stop=80),
        PRESETS[ProfileName.MODERATE],
        volatility=0.2,
        sector="health care",
        open_exposure_by_sector={},
    )
    assert f.accepted and f.reasons == []
    assert f.position_pct == pytest.approx(5.0)


def test_size_is_capped_by_max_position_and_says_so() -> None:
    # moderate: 1 % risk, stop 2 % away → 50 %, capped at 10 %
    f = fit(
        make_signal(entry=100, stop=98),
        PRESETS[ProfileName.MODERATE],
        volatility=0.2,
        sector=None,
        open_exposure_by_sector={},
    )
    assert f.accepted and f.position_pct == 10.0
    assert f.reasons == ["size capped by the maximum position 10 %"]


def test_size_is_capped_by_room_left_in_the_sector() -> None:
    f = fit(
        make_signal(entry=100, stop=98),
        PRESETS[ProfileName.MODERATE],
        volatility=0.2,
        sector="Technology",
        open_exposure_by_sector={"technology": 18.0, "energy": 29.0},
    )
    assert f.accepted and f.position_pct == pytest.approx(7.0)  # 25 % cap − 18 % open
    assert "room left in sector technology" in f.reasons[-1]


def test_full_sector_is_refused() -> None:
    f = fit(
        make_signal(),
        PRESETS[ProfileName.MODERATE],
        volatility=0.2,
        sector="technology",
        open_exposure_by_sector={"TECHNOLOGY": 25.0},
    )
    assert not f.accepted and f.position_pct == 0.0
    assert f.reasons == ["sector technology is at its cap: 25 % open of 25 %"]


def test_every_failing_filter_is_reported() -> None:
    f = fit(
        make_signal(confidence=0.27, base_rate=0.28, confidence_rank=0.8, type=SignalType.DAY),
        PRESETS[ProfileName.CONSERVATIVE],
        volatility=0.45,
        sector=None,
        open_exposure_by_sector={UNCLASSIFIED_SECTOR: 30.0},
    )
    assert not f.accepted and f.position_pct == 0.0
    assert len(f.reasons) == 5
    joined = " | ".join(f.reasons)
    edge = "edge -1.0 points over the base rate is below the minimum +0.0"  # 0.27 − 0.28
    rank = "confidence ranks at 80% of the model's own confidences, below this profile's 90%"
    for words in (edge, rank, "volatility 0.45", "type day", "unclassified"):
        assert words in joined


def test_unknown_volatility_is_refused_by_every_profile() -> None:
    for p in ORDERED:
        for vol in (None, float("nan")):
            f = fit(make_signal(), p, volatility=vol, sector=None, open_exposure_by_sector={})
            assert not f.accepted and "volatility is unknown" in f.reasons[0]


def test_short_is_sized_like_the_mirrored_long() -> None:
    p = PRESETS[ProfileName.AGGRESSIVE]
    long = fit(make_signal(entry=50, stop=45), p, volatility=0.5, sector=None, open_exposure_by_sector={})
    short = fit(
        make_signal(entry=50, stop=55, direction=Direction.SHORT),
        p,
        volatility=0.5,
        sector=None,
        open_exposure_by_sector={},
    )
    assert long.position_pct == short.position_pct == pytest.approx(20.0)


# --- fit: properties ----------------------------------------------------------------------------

SECTORS = st.sampled_from([None, "technology", "Technology", "crypto", "energy", "utilities"])


@st.composite
def signals(
    draw: st.DrawFn,
    types: list[SignalType] | None = None,
    min_edge: float | None = None,
    min_rank: float | None = None,
) -> Signal:
    """Any signal (with a base rate and rank or without); with ``min_edge``/``min_rank``, one that meets them."""
    if min_rank is not None and min_rank > NO_RANK:
        rank = draw(st.floats(min_rank, 1.0))
    else:
        rank = draw(st.one_of(st.none(), st.floats(0.0 if min_rank is None else min_rank, 1.0)))
    base_rate = draw(st.one_of(st.none(), st.floats(0.01, 0.6)))
    base = NO_BASE_RATE if base_rate is None else base_rate
    # 1e-9: base + min_edge rounded down would leave the edge one ulp short.
    low = 0.0 if min_edge is None else base + min_edge + 1e-9
    entry = draw(st.floats(1.0, 10_000.0))
    stop_frac = draw(st.floats(0.001, 0.3))  # a short's 3R target must stay above 0
    direction = draw(st.sampled_from(list(Direction)))
    stop = entry * (1 - direction.sign * stop_frac)
    return make_signal(
        entry=entry,
        stop=stop,
        confidence=draw(st.floats(low, 1.0)),
        type=draw(st.sampled_from(types or [SignalType.SWING, SignalType.SWING, *SignalType])),
        direction=direction,
        base_rate=base_rate,
        confidence_rank=rank,
    )


exposures = st.dictionaries(
    st.sampled_from(["technology", "Crypto", "energy", "utilities", UNCLASSIFIED_SECTOR]),
    st.one_of(st.floats(0.0, 20.0), st.floats(0.0, 60.0)),
    max_size=5,
)
volatilities = st.one_of(st.none(), st.floats(0.0, 0.7), st.floats(0.0, 3.0))


@given(data=st.data(), k=st.integers(0, 1), sector=SECTORS)
def test_what_a_cautious_profile_accepts_every_bolder_one_accepts_with_no_smaller_size(
    data: st.DataObject, k: int, sector: str | None
) -> None:
    # inputs drawn inside what profile k accepts, so the implication is never vacuously true
    cautious = ORDERED[k]
    signal = data.draw(
        signals(types=sorted(cautious.allowed_types), min_edge=cautious.min_edge, min_rank=cautious.min_rank)
    )
    vol = data.draw(st.floats(0.0, cautious.max_volatility))
    key = (sector or UNCLASSIFIED_SECTOR).lower()
    used = data.draw(st.floats(0.0, cautious.sector_cap_pct(sector), exclude_max=True))
    others = {s: v for s, v in data.draw(exposures).items() if s.lower() != key}
    exposure = others | {key: used}
    fits = [fit(signal, p, volatility=vol, sector=sector, open_exposure_by_sector=exposure) for p in ORDERED]
    assert fits[k].accepted, fits[k].reasons
    for bold in fits[k + 1 :]:
        assert bold.accepted
        assert bold.position_pct >= fits[k].position_pct


@given(signal=signals(), vol=volatilities, sector=SECTORS, exposure=exposures)
def test_a_bolder_profile_accepts_everything_a_cautious_one_does_with_no_smaller_size(
    signal: Signal, vol: float | None, sector: str | None, exposure: dict[str, float]
) -> None:
    fits = [fit(signal, p, volatility=vol, sector=sector, open_exposure_by_sector=exposure) for p in ORDERED]
    for cautious, bold in pairwise(fits):
        if cautious.accepted:
            assert bold.accepted
            assert bold.position_pct >= cautious.position_pct


@given(signal=signals(), vol=volatilities, sector=SECTORS, exposure=exposures, i=st.integers(0, 2))
def test_a_size_never_breaks_its_caps_nor_the_risk_budget(
    signal: Signal, vol: float | None, sector: str | None, exposure: dict[str, float], i: int
) -> None:
    p = ORDERED[i]
    f = fit(signal, p, volatility=vol, sector=sector, open_exposure_by_sector=exposure)
    if not f.accepted:
        assert f.position_pct == 0.0 and f.reasons
        return
    key = (sector or UNCLASSIFIED_SECTOR).lower()
    open_in_sector = sum(v for s, v in exposure.items() if s.lower() == key)
    assert 0 < f.position_pct <= p.max_position_pct
    assert open_in_sector + f.position_pct <= p.sector_cap_pct(sector) + 1e-9
    distance = signal.risk_per_unit / signal.entry
    assert f.position_pct * distance <= p.risk_per_trade_pct * (1 + 1e-9)  # loss at the stop
    assert edge_of(signal) >= p.min_edge and rank_of(signal) >= p.min_rank and signal.type in p.allowed_types
    assert vol is not None and vol <= p.max_volatility


@given(
    entry=st.floats(1.0, 10_000.0),
    stop_frac=st.floats(0.001, 0.5),
    i=st.integers(0, 2),
)
def test_size_is_exactly_risk_over_distance_when_no_cap_binds(entry: float, stop_frac: float, i: int) -> None:
    p = ORDERED[i]
    signal = make_signal(entry=entry, stop=entry * (1 - stop_frac))
    f = fit(signal, p, volatility=0.1, sector="health care", open_exposure_by_sector={})
    expected = p.risk_per_trade_pct / (signal.risk_per_unit / signal.entry)
    if expected < min(p.max_position_pct, p.sector_cap_pct("health care")):
        assert f.reasons == []
        assert f.position_pct == pytest.approx(expected, rel=1e-12)
    else:
        assert f.position_pct == pytest.approx(min(p.max_position_pct, p.sector_cap_pct("health care")))


# --- edge and volatility ------------------------------------------------------------------------


def test_the_edge_is_over_the_models_base_rate_or_a_coin_flip_without_one() -> None:
    assert edge_of(make_signal(confidence=0.31, base_rate=0.25)) == pytest.approx(0.06)
    assert edge_of(make_signal(confidence=0.55)) == pytest.approx(0.05)  # rule-based: against 0.5
    # A calibrated 0.30 over a 0.25 base rate passes every profile; the same 0.30 with no base rate
    # (a coin flip's -20 points) passes none.
    calibrated = make_signal(confidence=0.30, base_rate=0.25)
    placeholder = make_signal(confidence=0.30, confidence_rank=None)
    for p in ORDERED:
        assert fit(calibrated, p, volatility=0.2, sector=None, open_exposure_by_sector={}).accepted
        refused = fit(placeholder, p, volatility=0.2, sector=None, open_exposure_by_sector={})
        assert not refused.accepted and refused.reasons[0].startswith("edge -20.0 points")


def fits_of(signal: Signal) -> list[bool]:
    """Whether conservative, moderate and aggressive take ``signal`` (calm volatility, empty book)."""
    return [fit(signal, p, volatility=0.2, sector=None, open_exposure_by_sector={}).accepted for p in ORDERED]


@pytest.mark.parametrize(
    ("confidence", "accepted_by"),
    [(0.20, 0), (0.2499, 0), (0.25, 3), (0.251, 3), (0.35, 3)],
)
def test_the_edge_threshold_is_the_base_rate_for_every_profile(confidence: float, accepted_by: int) -> None:
    """Base rate 0.25, rank in the top tenth: below 0.25 nobody takes it, from 0.25 everybody does."""
    s = make_signal(confidence=confidence, base_rate=0.25, confidence_rank=1.0)
    assert fits_of(s) == [False] * (3 - accepted_by) + [True] * accepted_by


@pytest.mark.parametrize(
    ("rank", "accepted_by"),
    [(0.0, 0), (0.4999, 0), (0.5, 1), (0.7499, 1), (0.75, 2), (0.8999, 2), (0.9, 3), (1.0, 3)],
)
def test_the_rank_thresholds_separate_the_profiles_for_the_same_edge(rank: float, accepted_by: int) -> None:
    """The same +1 point over a 0.25 base rate: aggressive from the median rank, moderate from the
    top quarter (0.75), conservative from the top tenth (0.90) — the rank alone decides."""
    s = make_signal(confidence=0.26, base_rate=0.25, confidence_rank=rank)
    assert rank_of(s) == rank
    assert fits_of(s) == [False] * (3 - accepted_by) + [True] * accepted_by


def test_a_refused_rank_says_where_it_ranks_and_what_the_profile_needs() -> None:
    s = make_signal(confidence=0.26, base_rate=0.25, confidence_rank=0.6)
    conservative = fit(s, ORDERED[0], volatility=0.2, sector=None, open_exposure_by_sector={})
    moderate = fit(s, ORDERED[1], volatility=0.2, sector=None, open_exposure_by_sector={})
    assert conservative.reasons == [
        "confidence ranks at 60% of the model's own confidences, below this profile's 90%"
    ]
    assert moderate.reasons == [
        "confidence ranks at 60% of the model's own confidences, below this profile's 75%"
    ]


@pytest.mark.parametrize(
    ("confidence", "base_rate"),
    [(0.55, None), (0.30, 0.25)],  # rule-based: +5 over a coin flip; calibrated: +5 over its base rate
)
def test_a_signal_without_a_rank_is_taken_by_aggressive_only(
    confidence: float, base_rate: float | None
) -> None:
    s = make_signal(confidence=confidence, base_rate=base_rate, confidence_rank=None)
    assert edge_of(s) == pytest.approx(0.05)
    assert rank_of(s) == NO_RANK == 0.5  # the median: no evidence of being in the top quarter
    assert fits_of(s) == [False, False, True]
    refused = fit(s, ORDERED[1], volatility=0.2, sector=None, open_exposure_by_sector={})
    assert refused.reasons == [
        "confidence ranks at 50% of the model's own confidences, below this profile's 75%"
    ]


def test_annualised_volatility_of_a_known_path() -> None:
    # Alternating +1 % / -1 % log returns: RMS 0.01 per bar; daily equity → 0.01 × √252.
    closes = [100.0 * math.exp(0.01 * (i % 2)) for i in range(VOLATILITY_BARS + 1)]
    vol = annualised_volatility(closes, Timeframe.D1, AssetClass.EQUITY)
    assert vol == pytest.approx(0.01 * math.sqrt(252))
    assert annualised_volatility(closes, Timeframe.D1, AssetClass.CRYPTO) == pytest.approx(
        0.01 * math.sqrt(365)
    )
    # 5-minute equity bars: 78 a session.
    assert annualised_volatility(closes, Timeframe.M5, AssetClass.EQUITY) == pytest.approx(
        0.01 * math.sqrt(252 * 78)
    )
    # Only the last VOLATILITY_BARS returns count: an older crash does not.
    assert annualised_volatility([1.0, *closes], Timeframe.D1, AssetClass.EQUITY) == pytest.approx(vol)
    flat = annualised_volatility([50.0] * (VOLATILITY_BARS + 1), Timeframe.D1, AssetClass.EQUITY)
    assert flat == 0.0


@pytest.mark.parametrize(
    "closes",
    [
        [],
        [100.0] * VOLATILITY_BARS,
        [100.0] * VOLATILITY_BARS + [0.0],
        [100.0] * VOLATILITY_BARS + [math.nan],
    ],
)
def test_a_volatility_that_cannot_be_measured_is_unknown(closes: list[float]) -> None:
    assert annualised_volatility(closes, Timeframe.D1, AssetClass.EQUITY) is None
