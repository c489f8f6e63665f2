"""Who a real-time message is for: the facts the WebSocket relay reads to address per-user channels.

- premium users, with their risk profile and stated capital (``user:{id}:signals``);
- holders of an upgrade in force to a signal (``user:{id}:notifications``);
- watchers of a symbol, and each user's watchlist (``user:{id}:watchlist``, ``PUT /api/me/watchlist``).

Reads are one query per relayed batch, never per message.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from tradesignals.domain.risk import ProfileName
from tradesignals.domain.tiers import Tier
from tradesignals.storage.db import storage_errors, writer
from tradesignals.storage.tables import SignalUpgradeRow, UserRow, WatchlistRow

MAX_WATCHLIST = 100
"""Symbols one user may watch (a bound, like the channels of one socket)."""


@dataclass(frozen=True, slots=True)
class Subscriber:
    """A premium user as live signals are fitted for them: profile (moderate until answered), capital."""

    user_id: int
    profile: ProfileName
    capital: float | None


class SqlAudience:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._read = sessionmaker(engine, expire_on_commit=False)
        self._write = sessionmaker(writer(engine), expire_on_commit=False)

    def premium_users(self) -> list[Subscriber]:
        with storage_errors("reading premium users", self.engine), self._read() as session:
            rows = session.execute(
                sa.select(UserRow.id, UserRow.risk_profile, UserRow.profile_answered, UserRow.capital)
                .where(UserRow.tier == Tier.PREMIUM)
                .order_by(UserRow.id)
            ).all()
        return [Subscriber(r[0], r[1] if r[2] else ProfileName.MODERATE, r[3]) for r in rows]

    def upgrade_holders(self, signal_ids: Iterable[str], now: datetime) -> dict[str, list[int]]:
        ids = sorted(set(signal_ids))
        if not ids:
            return {}
        with storage_errors("reading upgrade holders", self.engine), self._read() as session:
            rows = session.execute(
                sa.select(SignalUpgradeRow.signal_id, SignalUpgradeRow.user_id)
                .where(
                    SignalUpgradeRow.signal_id.in_(ids),
                    SignalUpgradeRow.revoked_at.is_(None),
                    SignalUpgradeRow.expires_at > now,
                )
                .distinct()
            ).all()
        out: dict[str, list[int]] = {}
        for signal_id, user_id in rows:
            out.setdefault(signal_id, []).append(user_id)
        return out

    def watchers(self, symbols: Iterable[str]) -> dict[str, list[int]]:
        wanted = sorted(set(symbols))
        if not wanted:
            return {}
        with storage_errors("reading watchers", self.engine), self._read() as session:
            rows = session.execute(
                sa.select(WatchlistRow.symbol, WatchlistRow.user_id).where(WatchlistRow.symbol.in_(wanted))
            ).all()
        out: dict[str, list[int]] = {}
        for symbol, user_id in rows:
            out.setdefault(symbol, []).append(user_id)
        return out

    def watchlist(self, user_id: int) -> list[str]:
        with storage_errors(f"reading the watchlist of user {user_id}", self.engine), self._read() as session:
            return list(
                session.scalars(
                    sa.select(WatchlistRow.symbol)
                    .where(WatchlistRow.user_id == user_id)
                    .order_by(WatchlistRow.symbol)
                )
            )

    def set_watchlist(self, user_id: int, symbols: Sequence[str]) -> list[str]:
        """Replace the user's watchlist (one transaction); returns it sorted."""
        unique = sorted(set(symbols))
        if len(unique) > MAX_WATCHLIST:
            raise ValueError(f"a watchlist holds at most {MAX_WATCHLIST} symbols")  # the API says 422 first
        with (
            storage_errors(f"setting the watchlist of user {user_id}", self.engine),
            self._write.begin() as session,
        ):
            session.execute(sa.delete(WatchlistRow).where(WatchlistRow.user_id == user_id))
            if unique:
                session.execute(sa.insert(WatchlistRow), [{"user_id": user_id, "symbol": s} for s in unique])
        return unique

    def capital(self, user_id: int) -> float | None:
        with storage_errors(f"reading the capital of user {user_id}", self.engine), self._read() as session:
            value = session.scalar(sa.select(UserRow.capital).where(UserRow.id == user_id))
        return None if value is None else float(value)

    def set_capital(self, user_id: int, capital: float | None) -> None:
        with (
            storage_errors(f"setting the capital of user {user_id}", self.engine),
            self._write.begin() as session,
        ):
            session.execute(sa.update(UserRow).where(UserRow.id == user_id).values(capital=capital))


__all__ = ["MAX_WATCHLIST", "SqlAudience", "Subscriber"]
