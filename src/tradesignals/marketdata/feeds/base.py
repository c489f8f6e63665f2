"""The feed contract: an async stream of Ticks and/or Bars in time order per symbol."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from tradesignals.domain.market import Bar, Tick

MarketEvent = Tick | Bar


class FeedError(Exception):
    """A feed cannot start (missing file, missing columns, bad parameters). One line, says where."""


class Feed(Protocol):
    name: str

    def symbols(self) -> list[str]:
        """Symbols this feed will emit (known up front for sim and replay)."""
        ...

    def stream(self) -> AsyncIterator[MarketEvent]:
        """Events in non-decreasing time order; ends when the source is exhausted (live feeds never end)."""
        ...

    async def close(self) -> None: ...
