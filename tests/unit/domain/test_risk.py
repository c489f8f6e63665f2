import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradesignals.domain.risk import PRESETS, ProfileName, RiskProfile
from tradesignals.domain.signals import SignalType


@given(
    entry=st.floats(1, 10_000),
    stop_frac=st.floats(0.0005, 0.5),
    name=st.sampled_from(list(ProfileName)),
)
def test_position_never_breaks_the_cap_and_risks_at_most_the_budget(
    entry: float, stop_frac: float, name: ProfileName
) -> None:
    p = PRESETS[name]
    stop = entry * (1 - stop_frac)
    pct = p.position_pct(entry, stop)
    assert 0 < pct <= p.max_position_pct
    # loss at the stop, as % of equity, never exceeds the per-trade risk budget
    assert pct * stop_frac <= p.risk_per_trade_pct + 1e-9


def test_presets_get_bolder_in_order() -> None:
    c, m, a = (PRESETS[n] for n in ProfileName)
    assert c.risk_tolerance < m.risk_tolerance < a.risk_tolerance
    assert c.min_rank > m.min_rank > a.min_rank == 0.5
    assert c.min_edge == m.min_edge == a.min_edge == 0.0
    assert c.allowed_types <= m.allowed_types <= a.allowed_types
    assert a.allowed_types == frozenset(SignalType)


def test_inconsistent_profile_is_refused() -> None:
    with pytest.raises(ValueError, match="risk_tolerance"):
        RiskProfile(ProfileName.MODERATE, 1.5, 10, 1, 0.0, 0.5, 1, frozenset())
    with pytest.raises(ValueError, match="risk_per_trade_pct <= max_position_pct"):
        RiskProfile(ProfileName.MODERATE, 0.5, 1, 2, 0.0, 0.5, 1, frozenset())
