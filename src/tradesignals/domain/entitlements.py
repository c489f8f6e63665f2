"""The one answer to "may this caller see this?" — every route, WebSocket channel and operator page asks here.

Rules (the business, issue 11):

- anonymous and free callers see the track record only: closed signals, never an open one;
- premium callers see open signals (the API fits them to their risk profile and sizes them);
- a dynamic upgrade entitles its holder to ONE signal — its live details and its live channel
  ``signal:{id}:live`` — until the upgrade lapses or the signal closes (then it is public anyway);
  the live channel is the upgrade's alone: premium sees the signal, not its live stream;
- per-user channels ``user:{id}:…`` belong to that user alone; an admin reads no one else's either
  (an admin manages, it does not trade on someone else's feed); ``user:{id}:signals`` (live signals
  fitted to that user) is premium only;
- the ``signals`` channel is the public track record as it is written: closed outcomes only, so
  anyone may read it (open signals reach premium users on ``user:{id}:signals`` alone);
- push notifications carry live signals: premium callers, or holders of an upgrade in force, may
  subscribe (``may_subscribe_push``); nobody else;
- news received within the last ``delay`` (``TS_NEWS_PUBLIC_DELAY_MIN``) is live: premium callers,
  or the holder of an upgrade in force to a signal on the symbol asked about, see it; everyone else
  sees the older items (public history) and is told the newest are delayed (``news_visible_until``);
- ``/metrics`` is for operators: an admin account or the operator token (checked by the caller of
  ``may_read_metrics``, which only states the rule).

Pure: the caller's facts (tier, role, upgrades held now) are gathered by the API from storage and
handed in, so this module can be read and tested on its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from tradesignals.domain.tiers import PUBLIC_CHANNELS, Role, Tier

SIGNALS_CHANNEL = "signals"
"""Closed outcomes as they are written: public, like the track record (never an open signal)."""

CHANNEL_PATTERNS: dict[str, re.Pattern[str]] = {
    "public": re.compile(r"^(system:alerts|market:status|market:[A-Z0-9.\-_/]{1,32}:updates)$"),
    "signals": re.compile(r"^signals$"),
    "user": re.compile(r"^user:(\d+):(signals|watchlist|notifications)$"),
    "signal_live": re.compile(r"^signal:([0-9a-f]{22}):live$"),
}
"""Every WebSocket channel there is, by kind; a name matching none is unknown."""


def live_channel(signal_id: str) -> str:
    """The WebSocket channel of one signal's live updates (the holder of an upgrade to it)."""
    return f"signal:{signal_id}:live"


def user_channel(user_id: int, kind: str) -> str:
    """``user:{id}:{kind}`` (signals, watchlist, notifications): that user's alone."""
    return f"user:{user_id}:{kind}"


def market_channel(symbol: str) -> str:
    """Bars and last price of one symbol: public, conflated for slow readers."""
    return f"market:{symbol}:updates"


_MARKET = re.compile(r"market:[A-Z0-9.\-_/]{1,32}:updates")


def is_conflated(channel: str) -> bool:
    """Whether a slow reader gets only the latest message of ``channel`` (market updates: a price is
    stale once the next exists) rather than every one (signals, notifications: never dropped)."""
    return channel.startswith("market:") and _MARKET.fullmatch(channel) is not None


@dataclass(frozen=True, slots=True)
class Upgrade:
    """An entitlement to one signal's live details, until ``expires_at`` (or the signal closes)."""

    signal_id: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking. ``user_id`` None: anonymous. ``upgrades``: those in force now."""

    user_id: int | None = None
    tier: Tier = Tier.FREE
    role: Role = Role.USER
    upgrades: frozenset[str] = field(default_factory=frozenset)

    @property
    def anonymous(self) -> bool:
        return self.user_id is None

    @property
    def premium(self) -> bool:
        return self.user_id is not None and self.tier is Tier.PREMIUM


ANONYMOUS = Caller()


def sees_open_signals(caller: Caller) -> bool:
    """Whether lists and the live ``signals`` channel may hold open signals for this caller."""
    return caller.premium


def may_see_signal(caller: Caller, signal_id: str, *, is_open: bool) -> bool:
    """A closed signal is the public track record; an open one needs premium or an upgrade to it."""
    if not is_open:
        return True
    return caller.premium or signal_id in caller.upgrades


def may_subscribe_push(caller: Caller) -> bool:
    """Push notifications carry live signals: premium (each new signal fitted to their profile), or
    the holder of an upgrade in force (that signal's target, stop and expiry). Anyone else: 403."""
    return caller.premium or bool(caller.upgrades)


def upgrades_in_force(upgrades: list[Upgrade], now: datetime) -> frozenset[str]:
    """The signal ids whose upgrade has not lapsed at ``now`` (closing is judged by ``may_see_signal``)."""
    return frozenset(u.signal_id for u in upgrades if u.expires_at > now)


def channel_error(caller: Caller, channel: str) -> tuple[str, str] | None:
    """Why ``caller`` may not subscribe to ``channel`` (code, message); None when it may."""
    if CHANNEL_PATTERNS["public"].fullmatch(channel):
        return None
    if CHANNEL_PATTERNS["signals"].fullmatch(channel):
        return None  # closed outcomes: the public track record
    m = CHANNEL_PATTERNS["user"].fullmatch(channel)
    if m:
        if caller.user_id is None or int(m.group(1)) != caller.user_id:
            return ("forbidden", f"channel {channel!r} belongs to another user")
        if m.group(2) == "signals" and not caller.premium:
            return ("forbidden", "your signals channel carries live signals: premium only")
        return None
    m = CHANNEL_PATTERNS["signal_live"].fullmatch(channel)
    if m:
        # The live stream (price, P/L, re-scored probability, news) is what the dynamic upgrade
        # sells: premium alone does not include it, or the $4.99 product would be empty for them.
        if m.group(1) in caller.upgrades:
            return None
        return ("forbidden", f"channel {channel!r} needs an upgrade to that signal")
    return ("unknown_channel", f"no such channel {channel!r}")


def news_visible_until(
    caller: Caller, now_ns: int, delay_ns: int, *, upgraded_symbol: bool = False
) -> int | None:
    """The newest ``received_at`` (ns, inclusive) whose news ``caller`` may see; None: all of it.

    Fresh news is what moves a live signal, so it is sold like one: premium callers, and the holder
    of an upgrade in force to a signal on the symbol asked about (``upgraded_symbol``, checked by the
    API), see it as it arrives. Older news is public history. A bound, not a filter on a page, so
    the store can apply it before its LIMIT and pages stay full.
    """
    if caller.premium or upgraded_symbol:
        return None
    return now_ns - delay_ns


def may_see_news(
    caller: Caller, received_at_ns: int, now_ns: int, delay_ns: int, *, upgraded_symbol: bool = False
) -> bool:
    """Whether ``caller`` may see one news item received at ``received_at_ns`` (see ``news_visible_until``)."""
    until = news_visible_until(caller, now_ns, delay_ns, upgraded_symbol=upgraded_symbol)
    return until is None or received_at_ns <= until


def may_read_metrics(caller: Caller, *, operator_token_ok: bool) -> bool:
    """Operators only: the operator token, or an admin account."""
    return operator_token_ok or (caller.user_id is not None and caller.role is Role.ADMIN)


__all__ = [
    "ANONYMOUS",
    "CHANNEL_PATTERNS",
    "PUBLIC_CHANNELS",
    "SIGNALS_CHANNEL",
    "Caller",
    "Upgrade",
    "channel_error",
    "is_conflated",
    "live_channel",
    "market_channel",
    "may_read_metrics",
    "may_see_news",
    "may_see_signal",
    "may_subscribe_push",
    "news_visible_until",
    "sees_open_signals",
    "upgrades_in_force",
    "user_channel",
]
