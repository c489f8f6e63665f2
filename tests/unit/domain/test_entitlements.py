"""The one rule of who may see what (domain.entitlements), on its own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tradesignals.domain.entitlements import (
    ANONYMOUS,
    Caller,
    Upgrade,
    channel_error,
    is_conflated,
    live_channel,
    may_read_metrics,
    may_see_news,
    may_see_signal,
    may_subscribe_push,
    news_visible_until,
    sees_open_signals,
    upgrades_in_force,
)
from tradesignals.domain.tiers import Role, Tier

SID = "0123456789abcdef012345"
OTHER = "fedcba9876543210fedcba"
FREE = Caller(1)
PREMIUM = Caller(2, Tier.PREMIUM)
UPGRADED = Caller(3, upgrades=frozenset({SID}))
ADMIN = Caller(4, role=Role.ADMIN)


@pytest.mark.parametrize(
    ("caller", "sid", "is_open", "allowed"),
    [
        (ANONYMOUS, SID, False, True),  # the track record is public
        (ANONYMOUS, SID, True, False),
        (FREE, SID, True, False),
        (ADMIN, SID, True, False),  # an admin is not a customer
        (PREMIUM, SID, True, True),
        (UPGRADED, SID, True, True),
        (UPGRADED, OTHER, True, False),  # an upgrade is one signal, not a tier
    ],
)
def test_may_see_signal(caller: Caller, sid: str, is_open: bool, allowed: bool) -> None:
    assert may_see_signal(caller, sid, is_open=is_open) is allowed


def test_only_premium_lists_open_signals() -> None:
    assert [sees_open_signals(c) for c in (ANONYMOUS, FREE, PREMIUM, UPGRADED, ADMIN)] == [
        False, False, True, False, False,
    ]  # fmt: skip
    assert not sees_open_signals(Caller(None, Tier.PREMIUM))  # a tier without an account means nothing


def test_upgrades_lapse() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    ups = [Upgrade(SID, now + timedelta(hours=1)), Upgrade(OTHER, now)]
    assert upgrades_in_force(ups, now) == frozenset({SID})


@pytest.mark.parametrize(
    ("caller", "channel", "code"),
    [
        (ANONYMOUS, "system:alerts", None),
        (ANONYMOUS, "market:AAPL:updates", None),
        (ANONYMOUS, "signals", None),  # closed outcomes only: the public track record
        (FREE, "signals", None),
        (PREMIUM, "signals", None),
        (ANONYMOUS, "market:AAPL:updates\n", "unknown_channel"),
        (ANONYMOUS, "market:status\n", "unknown_channel"),
        (FREE, "user:1:notifications", None),
        (FREE, "user:1:signals", "forbidden"),  # live signals: premium only, even one's own
        (PREMIUM, "user:2:signals", None),
        (PREMIUM, "user:1:signals", "forbidden"),  # someone else's
        (ADMIN, "user:1:watchlist", "forbidden"),
        (ANONYMOUS, "user:1:watchlist", "forbidden"),
        (UPGRADED, live_channel(SID), None),
        (UPGRADED, live_channel(OTHER), "forbidden"),
        (PREMIUM, live_channel(OTHER), "forbidden"),  # the live stream is the upgrade's product
        (FREE, "signal:XYZ:live", "unknown_channel"),
        (PREMIUM, "everything", "unknown_channel"),
        # full matches only: "$" alone would accept a trailing newline
        (PREMIUM, "signals\n", "unknown_channel"),
        (ANONYMOUS, "system:alerts\n", "unknown_channel"),
        (PREMIUM, "user:2:signals\n", "unknown_channel"),
        (UPGRADED, live_channel(SID) + "\n", "unknown_channel"),
    ],
)
def test_channel_error(caller: Caller, channel: str, code: str | None) -> None:
    err = channel_error(caller, channel)
    assert (err[0] if err else None) == code
    assert err is None or err[1]


def test_metrics_are_for_operators() -> None:
    assert may_read_metrics(ANONYMOUS, operator_token_ok=True)
    assert may_read_metrics(ADMIN, operator_token_ok=False)
    assert not may_read_metrics(PREMIUM, operator_token_ok=False)
    assert not may_read_metrics(Caller(None, role=Role.ADMIN), operator_token_ok=False)


def test_push_notifications_are_for_those_who_may_receive_a_live_signal() -> None:
    assert may_subscribe_push(PREMIUM) and may_subscribe_push(UPGRADED)
    assert (
        not may_subscribe_push(FREE) and not may_subscribe_push(ADMIN) and not may_subscribe_push(ANONYMOUS)
    )
    assert not may_subscribe_push(Caller(None, Tier.PREMIUM))  # premium needs an account behind it


def test_only_market_updates_are_conflated() -> None:
    assert is_conflated("market:AAPL:updates") and is_conflated("market:BTC/USD:updates")
    assert not any(
        is_conflated(c)
        for c in ("signals", "market:status", "user:1:signals", "system:alerts", "market:AAPL:updates\n")
    )


NOW = 1_800_000_000 * 10**9
DELAY = 60 * 60 * 10**9


@pytest.mark.parametrize(
    ("caller", "upgraded_symbol", "sees_live"),
    [
        (ANONYMOUS, False, False),
        (FREE, False, False),
        (ADMIN, False, False),  # an admin manages; it does not read the paid feed for free
        (UPGRADED, False, False),  # an upgrade to a signal on another symbol
        (UPGRADED, True, True),  # an upgrade to a signal on the symbol asked about
        (PREMIUM, False, True),
        (Caller(None, Tier.PREMIUM), False, False),  # a tier without an account is anonymous
    ],
)
def test_fresh_news_is_for_premium_and_the_symbols_upgrade_holders(
    caller: Caller, upgraded_symbol: bool, sees_live: bool
) -> None:
    kw = {"upgraded_symbol": upgraded_symbol}
    assert may_see_news(caller, NOW - DELAY - 1, NOW, DELAY, **kw)  # history: everyone's
    assert may_see_news(caller, NOW - DELAY, NOW, DELAY, **kw)  # the bound itself is history
    assert may_see_news(caller, NOW - DELAY + 1, NOW, DELAY, **kw) is sees_live
    assert may_see_news(caller, NOW, NOW, DELAY, **kw) is sees_live
    until = news_visible_until(caller, NOW, DELAY, **kw)
    assert until == (None if sees_live else NOW - DELAY)


def test_a_zero_delay_makes_all_news_public() -> None:
    assert may_see_news(ANONYMOUS, NOW, NOW, 0)
    assert not may_see_news(ANONYMOUS, NOW + 1, NOW, 0)  # received "after now": not yet, for anyone free
