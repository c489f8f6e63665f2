"""``domain.live.live_update``: an open signal marked at a price, net of the rulebook's costs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tradesignals.domain.costs import DEFAULT_COSTS, ZERO_COSTS
from tradesignals.domain.live import live_update
from tradesignals.domain.market import AssetClass
from tradesignals.domain.signals import Direction, Signal, SignalType

T0 = datetime(2024, 3, 4, 21, tzinfo=UTC)
DAY_NS = 86_400 * 10**9
EQUITY = DEFAULT_COSTS[AssetClass.EQUITY]


def signal(direction: Direction) -> Signal:
    s = direction.sign
    return Signal(
        id="s1",
        symbol="AAPL",
        type=SignalType.SWING,
        direction=direction,
        entry=100.0,
        stop=100.0 - s * 3.0,
        targets=(100.0 + s * 3.0, 100.0 + s * 6.0, 100.0 + s * 9.0),
        confidence=0.6,
        created_at=T0,
        expires_at=T0 + timedelta(days=7),
        model_version="swing:1",
    )


def test_a_pending_long_has_distances_but_no_pnl() -> None:
    u = live_update(
        signal(Direction.LONG),
        ts_ns=5,
        price=101.0,
        fill=None,
        filled_ns=None,
        costs=EQUITY,
        probability=0.55,
        model_version="swing:1",
    )
    assert not u.filled and u.unrealised_net_pct is None and u.unrealised_net_r is None
    assert u.fill_price is None and u.filled_ns is None
    assert u.distance_to_stop_pct == pytest.approx((101 - 97) / 101 * 100)
    assert u.distance_to_targets_pct == pytest.approx(
        ((103 - 101) / 101 * 100, (106 - 101) / 101 * 100, (109 - 101) / 101 * 100)
    )
    assert (u.price, u.ts_ns, u.probability, u.model_version) == (101.0, 5, 0.55, "swing:1")


def test_a_filled_long_books_the_costs_of_domain_costs() -> None:
    sig = signal(Direction.LONG)
    u = live_update(
        sig,
        ts_ns=DAY_NS,
        price=104.0,
        fill=100.5,
        filled_ns=0,
        costs=EQUITY,
        probability=None,
        model_version="x",
    )
    gross = (104.0 - 100.5) / 100.5 * 100
    costs = EQUITY.costs_pct(1, 100.5, 104.0, DAY_NS)
    assert costs > 0
    assert u.filled and u.unrealised_net_pct == pytest.approx(gross - costs)
    assert (u.fill_price, u.filled_ns) == (100.5, 0)  # the fill itself: the relay announces it
    # R is measured in the plan's risk (entry to stop: 3.0), from the fill.
    assert u.unrealised_net_r == pytest.approx((gross - costs) * 100.5 / 100 / 3.0)
    # Past the first target: its distance is negative (passed), the others still ahead.
    assert u.distance_to_targets_pct[0] < 0 < u.distance_to_targets_pct[1]
    zero = live_update(
        sig,
        ts_ns=DAY_NS,
        price=104.0,
        fill=100.5,
        filled_ns=0,
        costs=ZERO_COSTS,
        probability=None,
        model_version="x",
    )
    assert zero.unrealised_net_pct == pytest.approx(gross)


def test_a_filled_short_gains_when_price_falls_and_pays_borrow() -> None:
    sig = signal(Direction.SHORT)
    one_day = live_update(
        sig,
        ts_ns=DAY_NS,
        price=98.0,
        fill=100.0,
        filled_ns=0,
        costs=EQUITY,
        probability=None,
        model_version="x",
    )
    two_days = live_update(
        sig,
        ts_ns=2 * DAY_NS,
        price=98.0,
        fill=100.0,
        filled_ns=0,
        costs=EQUITY,
        probability=None,
        model_version="x",
    )
    assert one_day.unrealised_net_pct == pytest.approx(2.0 - EQUITY.costs_pct(-1, 100.0, 98.0, DAY_NS))
    # A short pays borrow per day held: the same price a day later is worth less.
    assert two_days.unrealised_net_pct == pytest.approx(
        one_day.unrealised_net_pct - EQUITY.borrow_bp_per_day / 100
    )
    assert one_day.unrealised_net_r == pytest.approx(one_day.unrealised_net_pct / 3.0)
    # Distances are signed for the short: the stop (103) is above, targets below, all still ahead.
    assert one_day.distance_to_stop_pct == pytest.approx((103 - 98) / 98 * 100)
    assert one_day.distance_to_targets_pct[0] == pytest.approx(-(97 - 98) / 98 * 100)
    assert one_day.distance_to_targets_pct[0] > 0


def test_a_short_through_its_stop_shows_a_negative_distance_and_a_loss() -> None:
    u = live_update(
        signal(Direction.SHORT),
        ts_ns=DAY_NS,
        price=104.0,
        fill=100.0,
        filled_ns=0,
        costs=EQUITY,
        probability=None,
        model_version="x",
    )
    assert u.distance_to_stop_pct < 0 and u.unrealised_net_r is not None and u.unrealised_net_r < -1.0
